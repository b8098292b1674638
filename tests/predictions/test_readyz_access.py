"""/readyz keeps its status code and per-check ok for everyone; details only for operators."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client

from predictions import broker
from predictions.monitoring import health
from tests.factories import UserFactory

URL = "/readyz"
WORKER = "gpu@ward-7-imaging.internal"
DATABASE_ERROR = 'connection to server at "db.hospital.internal" (10.0.0.5), port 5432 failed'


@pytest.fixture(autouse=True)
def dependencies(db: None, settings: Any) -> Any:
    """A broker that answers, a worker on the default queue and a database that is down."""
    settings.METRICS_TOKEN = "scrape-me"
    queue = broker.queue_for()
    with (
        mock.patch.object(broker, "ping", autospec=True),
        mock.patch.object(broker, "worker_queues", autospec=True, return_value={WORKER: [queue]}),
        mock.patch.object(
            health, "check_database", autospec=True, side_effect=OperationalError(DATABASE_ERROR)
        ),
    ):
        yield


def _get(client: Client, **headers: str) -> tuple[int, dict[str, Any]]:
    response = client.get(URL, **headers)
    return response.status_code, response.json()


@pytest.mark.parametrize(
    "client",
    [
        Client(REMOTE_ADDR="10.1.2.3"),
        Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9"),
        Client(REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer wrong"),
    ],
    ids=["anonymous", "proxied", "wrong token"],
)
def test_anonymous_callers_get_the_verdict_without_names_or_hosts(client: Client) -> None:
    status, body = _get(client)
    assert status == 503
    assert body["status"] == "not ready" and body["failed"] == ["database"]
    assert body["checks"] == {
        "database": {"ok": False},
        "broker": {"ok": True},
        "workers": {"ok": True},
    }
    assert WORKER not in str(body) and "db.hospital.internal" not in str(body)


def test_a_signed_in_clinician_who_is_not_staff_gets_no_details() -> None:
    client = Client(REMOTE_ADDR="10.1.2.3")
    client.force_login(UserFactory())
    _, body = _get(client)
    assert WORKER not in str(body) and "db.hospital.internal" not in str(body)


def _assert_details(body: dict[str, Any]) -> None:
    assert body["checks"]["workers"]["detail"]["workers"] == [WORKER]
    assert "db.hospital.internal" in body["checks"]["database"]["error"]


def test_the_metrics_token_shows_the_details() -> None:
    status, body = _get(Client(REMOTE_ADDR="10.1.2.3"), HTTP_AUTHORIZATION="Bearer scrape-me")
    assert status == 503
    _assert_details(body)


def test_staff_see_the_details() -> None:
    client = Client(REMOTE_ADDR="10.1.2.3")
    client.force_login(UserFactory(is_staff=True))
    _assert_details(_get(client)[1])


def test_direct_loopback_callers_see_the_details_when_no_token_is_set(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    _assert_details(_get(Client(REMOTE_ADDR="127.0.0.1"))[1])


def test_a_session_that_cannot_be_read_gives_no_details_rather_than_a_500() -> None:
    client = Client(REMOTE_ADDR="10.1.2.3")
    client.force_login(UserFactory(is_staff=True))
    with mock.patch(
        "django.contrib.auth.get_user", autospec=True, side_effect=OperationalError("down")
    ):
        status, body = _get(client)
    assert status == 503
    assert WORKER not in str(body)
