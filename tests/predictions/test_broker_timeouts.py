"""Every call the site makes to the broker has a time limit, even when Redis is frozen."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from predictions import broker
from tests.owned_redis import OwnedRedis, site_broker
from webapp.celery import app
from webapp.settings import postgres_timeouts
from workers.contracts import TASK_NAME


@pytest.fixture
def frozen_broker(tmp_path: Path) -> Iterator[OwnedRedis]:
    """The site's broker is a Redis that accepts connections and then never answers."""
    server = OwnedRedis(tmp_path / "redis")
    server.start()
    server.freeze()
    try:
        with site_broker(server.url):
            yield server
    finally:
        server.close()


def seconds_taken(call: Any) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def test_the_site_connects_to_the_broker_with_time_limits(settings: Any) -> None:
    options = app.conf.broker_transport_options
    assert options["socket_timeout"] == settings.BROKER_SOCKET_TIMEOUT
    assert options["socket_connect_timeout"] == settings.BROKER_CONNECT_TIMEOUT
    assert app.conf.broker_connection_timeout == settings.BROKER_CONNECT_TIMEOUT
    # The workers' own settings (acks_late, visibility) are kept alongside.
    assert "visibility_timeout" in options


def test_a_frozen_broker_fails_a_ping_and_a_queue_depth_instead_of_hanging(
    frozen_broker: OwnedRedis, settings: Any
) -> None:
    for call in (broker.ping, lambda: broker.queue_depths(["inference"])):
        error, seconds = seconds_taken(call)
        assert isinstance(error, broker.BrokerUnavailable), error
        assert seconds < settings.BROKER_SOCKET_TIMEOUT + settings.BROKER_CONNECT_TIMEOUT + 2


def test_a_frozen_broker_fails_a_send_instead_of_hanging(
    frozen_broker: OwnedRedis, settings: Any
) -> None:
    send = lambda: app.send_task(TASK_NAME, kwargs={"job_id": "x"}, queue="q", retry=False)  # noqa: E731
    error, seconds = seconds_taken(send)
    assert error is not None, "a send to a frozen broker cannot succeed"
    assert seconds < settings.BROKER_SOCKET_TIMEOUT + settings.BROKER_CONNECT_TIMEOUT + 2


def test_a_frozen_broker_fails_a_worker_inspection_instead_of_hanging(
    frozen_broker: OwnedRedis, settings: Any
) -> None:
    error, seconds = seconds_taken(lambda: broker.worker_queues(timeout_s=1.0))
    assert isinstance(error, broker.BrokerUnavailable), error
    assert seconds < settings.BROKER_SOCKET_TIMEOUT + settings.BROKER_CONNECT_TIMEOUT + 2


@pytest.mark.parametrize(
    ("connect_s", "statement_s", "expected"),
    [
        (5, 30.0, {"connect_timeout": 5,
                   "options": "-c statement_timeout=30000 "
                              "-c idle_in_transaction_session_timeout=30000",
                   "tcp_user_timeout": 30000}),
        (2, 0.0, {"connect_timeout": 2}),
    ],
)  # fmt: skip
def test_postgres_gets_connect_and_statement_limits(
    connect_s: int, statement_s: float, expected: dict[str, object]
) -> None:
    assert postgres_timeouts(connect_s, statement_s) == expected


@pytest.mark.django_db
def test_the_database_in_use_enforces_the_statement_limit(settings: Any) -> None:
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("the limits are PostgreSQL options; SQLite waits on its lock file only")
    assert database["OPTIONS"]["connect_timeout"] == settings.DATABASE_CONNECT_TIMEOUT
    assert database["CONN_HEALTH_CHECKS"] is True
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == f"{int(settings.DATABASE_STATEMENT_TIMEOUT)}s"
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        assert cursor.fetchone()[0] == f"{int(settings.DATABASE_STATEMENT_TIMEOUT)}s"
