"""API tokens are stored hashed; DRF's plaintext tokens are re-hashed by a migration and keep
working with the same header; files the site writes are readable by its user alone."""

from __future__ import annotations

import hashlib
import importlib
import io
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.factories import ScanFactory, UserFactory, api_token

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


def run_migration() -> None:
    """Call the migration's function as Django does, without entering the schema editor:
    SQLite's refuses to open inside the transaction a test runs in, and the function only
    reads its connection."""
    migration.hash_legacy_tokens(apps, connection.schema_editor())


def test_the_migration_rehashes_drf_tokens_which_keep_working(clinician: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created timestamp with time zone NOT NULL, user_id integer NOT NULL)"
            if connection.vendor == "postgresql"
            else "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created datetime NOT NULL, user_id integer NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)",
            [LEGACY_KEY, "2025-01-02 03:04:05+00:00", clinician.pk],
        )
    run_migration()
    assert calls_with(LEGACY_KEY) == 200  # the same "Authorization: Token <key>" header
    assert AuthToken.objects.get(user=clinician).created.year == 2025
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0  # the plaintext is gone


def test_without_the_legacy_table_the_migration_does_nothing(clinician: Any) -> None:
    run_migration()
    assert not AuthToken.objects.exists()


def mode(path: str | Path) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


def test_uploaded_scans_and_heat_maps_are_private_files(media_root: Path) -> None:
    scan = ScanFactory()
    assert mode(scan.image.path) == 0o600
    assert mode(Path(scan.image.path).parent) == 0o700


def test_a_token_of_a_user_without_an_organisation_is_refused(db: None) -> None:
    loner = UserFactory(membership=None)
    assert calls_with(api_token(loner)) == 403


def test_a_token_request_reads_the_organisation_once(clinician: Any, organisation: Any) -> None:
    key = api_token(clinician)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/api/v1/jobs/").status_code == 200
    tables = ('"predictions_membership"', '"predictions_organisation"')
    reads = [q["sql"] for q in captured if any(table in q["sql"] for table in tables)]
    assert len(reads) == 1 and all(table in reads[0] for table in tables)  # one join


def test_an_expired_token_is_refused_and_deleted(clinician: Any) -> None:
    _, key = AuthToken.objects.create(clinician, expiry=timedelta(seconds=-1))
    assert calls_with(key) == 401
    assert not AuthToken.objects.exists()


def test_a_users_other_expired_tokens_are_deleted_by_the_sweeper(clinician: Any) -> None:
    expired, _ = AuthToken.objects.create(clinician, expiry=timedelta(seconds=-1))
    current, key = AuthToken.objects.create(clinician, expiry=timedelta(days=1))
    assert calls_with(key) == 200
    assert AuthToken.objects.filter(pk=expired.pk).exists()  # left for the sweeper
    out = io.StringIO()
    call_command("sweep_jobs", stdout=out)
    assert list(AuthToken.objects.all()) == [current]
    assert "1 expired API token(s) deleted" in out.getvalue()


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
