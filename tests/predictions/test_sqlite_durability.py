"""The SQLite database (`make run`, the benchmark): a write-ahead log, synced at every commit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import ConnectionHandler


@pytest.fixture
def sqlite_file(tmp_path: Path, django_db_blocker: Any) -> Iterator[BaseDatabaseWrapper]:
    """A connection with the site's SQLite options to a new database file, made as umask 022."""
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(tmp_path / "db.sqlite3"),
                "OPTIONS": {"init_command": settings.SQLITE_INIT_COMMAND},
            }
        }
    )
    previous = os.umask(0o022)
    try:
        # Not the test database: a database of its own, which pytest-django knows nothing of.
        with django_db_blocker.unblock():
            yield handler["default"]
    finally:
        os.umask(previous)
        handler.close_all()


def test_commits_go_to_a_write_ahead_log_synced_at_every_commit(
    sqlite_file: BaseDatabaseWrapper,
) -> None:
    with sqlite_file.cursor() as cursor:
        assert cursor.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        # FULL (2): the log is synced at every commit, so a job answered 202 survives a
        # power loss. NORMAL would sync only at checkpoints.
        assert cursor.execute("PRAGMA synchronous").fetchone() == (2,)


def test_the_log_files_are_private_like_the_database(
    sqlite_file: BaseDatabaseWrapper, tmp_path: Path
) -> None:
    with sqlite_file.cursor() as cursor:
        cursor.execute("CREATE TABLE scan (id INTEGER)")
        cursor.execute("INSERT INTO scan VALUES (1)")
    for name in ("db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
