"""API tokens are stored hashed; DRF's plaintext tokens are re-hashed by a migration and keep
working with the same header; files the site writes are readable by its user alone."""

from __future__ import annotations

import hashlib
import importlib
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.db import connection
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.factories import ScanFactory, api_token

pytestmark = pytest.mark.django_db
migration = importlib.import_module("predictions.migrations.0012_hash_existing_api_tokens")

LEGACY_KEY = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"  # DRF's format: 40 hex characters


def calls_with(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return int(client.get("/api/v1/jobs/").status_code)


def test_a_token_is_stored_as_a_sha512_digest_only(clinician: Any) -> None:
    key = api_token(clinician)
    assert calls_with(key) == 200
    row = AuthToken.objects.get(user=clinician)
    assert row.digest == hashlib.sha512(key.encode()).hexdigest()
    assert key not in str(AuthToken.objects.values())
    assert calls_with(key[:-1] + ("0" if key[-1] != "0" else "1")) == 401


@pytest.fixture
def outside_a_transaction() -> Iterator[None]:
    """SQLite's schema editor refuses to run inside the transaction a test normally runs in
    (it cannot turn off foreign-key checks there), as a real migration never does: these
    tests run outside one, and drop the legacy table they made afterwards."""
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS authtoken_token")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("outside_a_transaction")
def test_the_migration_rehashes_drf_tokens_which_keep_working(clinician: Any) -> None:
    with connection.schema_editor() as editor:
        editor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created timestamp with time zone NOT NULL, user_id integer NOT NULL)"
            if connection.vendor == "postgresql"
            else "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created datetime NOT NULL, user_id integer NOT NULL)"
        )
        editor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)",
            [LEGACY_KEY, "2025-01-02 03:04:05+00:00", clinician.pk],
        )
        migration.hash_legacy_tokens(apps, editor)
    assert calls_with(LEGACY_KEY) == 200  # the same "Authorization: Token <key>" header
    assert AuthToken.objects.get(user=clinician).created.year == 2025
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0  # the plaintext is gone


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("outside_a_transaction")
def test_without_the_legacy_table_the_migration_does_nothing(clinician: Any) -> None:
    with connection.schema_editor() as editor:
        migration.hash_legacy_tokens(apps, editor)
    assert not AuthToken.objects.exists()


def mode(path: str | Path) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


def test_uploaded_scans_and_heat_maps_are_private_files(media_root: Path) -> None:
    scan = ScanFactory()
    assert mode(scan.image.path) == 0o600
    assert mode(Path(scan.image.path).parent) == 0o700


def test_a_sqlite_database_file_is_made_private(tmp_path: Path) -> None:
    from predictions.apps import keep_sqlite_private

    database = tmp_path / "db.sqlite3"
    database.write_bytes(b"")
    database.chmod(0o644)

    class SqliteConnection:
        vendor = "sqlite"
        settings_dict = {"NAME": str(database)}

    keep_sqlite_private(sender=None, connection=SqliteConnection())
    assert mode(database) == 0o600


def test_a_superuser_issues_a_token_in_the_admin_and_sees_it_once(
    admin_client: Any, clinician: Any
) -> None:
    page = admin_client.post(
        "/admin/knox/authtoken/add/", {"user": clinician.pk, "expiry": ""}, follow=True
    ).content.decode()
    key = page.split("TOKEN ")[1].split("<")[0].strip()
    assert calls_with(key) == 200
    assert key not in admin_client.get("/admin/knox/authtoken/").content.decode()
