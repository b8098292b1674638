"""Wrong passwords, API tokens and worker secrets are counted per address and refused past
the limit; API traffic is throttled per user and per address."""

from __future__ import annotations

import copy
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.cache import caches
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from predictions.security import SECURITY_CACHE, client_ip, delete_expired_counters
from tests.factories import UserFactory, api_token

PASSWORD = "correct horse battery staple"
ATTACKER = "203.0.113.7"
NEIGHBOUR = "198.51.100.9"


def log_in(username: str, password: str, address: str = ATTACKER, url: str = "/accounts/login/"):
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password})


@pytest.mark.django_db
def test_the_fifth_wrong_password_locks_the_account_for_that_address(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 5
    user = UserFactory()
    for _ in range(4):
        response = log_in(user.username, "guess")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    locked = log_in(user.username, "guess")
    assert locked.status_code == 429
    assert "Too many failed log-in attempts" in locked.content.decode()
    assert locked["Retry-After"] == str(15 * 60)
    # The sixth try is refused even with the right password: the guesser learns nothing.
    assert log_in(user.username, PASSWORD).status_code == 429
    # The same user from another address, and another user from this one, still get in.
    assert log_in(user.username, PASSWORD, address=NEIGHBOUR).status_code == 302
    assert log_in(UserFactory().username, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_the_admin_login_is_locked_out_too(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    admin = UserFactory(is_staff=True, is_superuser=True)
    for _ in range(2):
        assert log_in(admin.username, "guess", url="/admin/login/").status_code == 200
    assert log_in(admin.username, "guess", url="/admin/login/").status_code == 429
    assert log_in(admin.username, PASSWORD, url="/admin/login/").status_code == 429


@pytest.mark.django_db
def test_a_successful_login_resets_the_count(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    user = UserFactory()
    for _ in range(2):
        log_in(user.username, "guess")
    assert log_in(user.username, PASSWORD).status_code == 302
    for _ in range(2):
        assert log_in(user.username, "guess").status_code == 200


def api_from(address: str, header: str | None = None) -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


@pytest.mark.django_db
def test_wrong_api_tokens_are_refused_with_429_past_the_limit(settings: Any) -> None:
    settings.AUTH_FAILURE_LIMIT = 10
    token = api_token(UserFactory())
    for attempt in range(10):
        response = api_from(ATTACKER, f"Token wrong{attempt}").get("/api/v1/jobs/")
        assert response.status_code == 401
    refused = api_from(ATTACKER, "Token wrong-again").get("/api/v1/jobs/")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= settings.AUTH_FAILURE_WINDOW_S
    assert "Too many failed authentication attempts" in refused.json()["detail"]
    # Even the right token is refused from that address, and works from any other.
    assert api_from(ATTACKER, f"Token {token}").get("/api/v1/jobs/").status_code == 429
    assert api_from(NEIGHBOUR, f"Token {token}").get("/api/v1/jobs/").status_code == 200


@pytest.mark.django_db
def test_wrong_worker_secrets_are_refused_with_429_past_the_limit(settings: Any) -> None:
    settings.WORKER_SECRET = "the-real-secret"
    settings.WORKER_AUTH_FAILURE_LIMIT = 3
    start = "/api/v1/internal/jobs/00000000-0000-0000-0000-000000000000/start/"
    for _ in range(3):
        assert api_from(ATTACKER, "Worker guess").post(start).status_code == 401
    refused = api_from(ATTACKER, "Worker the-real-secret").post(start)
    assert refused.status_code == 429
    assert "Retry-After" in refused
    # Another worker host is unaffected (an unknown job: authenticated, then 404).
    response = api_from(NEIGHBOUR, "Worker the-real-secret").post(start, {"worker": "w"})
    assert response.status_code == 404


def rates(settings: Any, **changes: str) -> None:
    rest_framework = copy.deepcopy(settings.REST_FRAMEWORK)
    rest_framework["DEFAULT_THROTTLE_RATES"].update(changes)
    settings.REST_FRAMEWORK = rest_framework


@pytest.mark.django_db
def test_the_api_throttles_each_user(settings: Any) -> None:
    rates(settings, user="3/minute")
    token = api_token(UserFactory())
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        assert api_from(address, f"Token {token}").get("/api/v1/jobs/").status_code == 200
    throttled = api_from("192.0.2.4", f"Token {token}").get("/api/v1/jobs/")
    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert "Request was throttled" in throttled.json()["detail"]


@pytest.mark.django_db
def test_the_api_throttles_each_address_across_users(settings: Any) -> None:
    rates(settings, ip="2/minute")
    for _ in range(2):
        token = api_token(UserFactory())
        assert api_from(ATTACKER, f"Token {token}").get("/api/v1/jobs/").status_code == 200
    token = api_token(UserFactory())
    assert api_from(ATTACKER, f"Token {token}").get("/api/v1/jobs/").status_code == 429
    assert api_from(NEIGHBOUR, f"Token {token}").get("/api/v1/jobs/").status_code == 200


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "198.51.100.1", "10.0.0.2"),  # no proxy trusted: the header is the client's word
        (1, "198.51.100.1", "198.51.100.1"),
        (1, "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # a forged entry on the left is ignored
        (2, "6.6.6.6, 198.51.100.1, 10.0.0.1", "198.51.100.1"),
        (1, "", "10.0.0.2"),
    ],
)
def test_the_client_address_is_the_one_the_trusted_proxies_saw(
    settings: Any, rf: Any, proxies: int, forwarded: str, expected: str
) -> None:
    settings.TRUSTED_PROXY_COUNT = proxies
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


@pytest.mark.django_db
def test_other_clients_counters_never_wipe_an_attackers(settings: Any) -> None:
    """Django's database cache culls a third of its entries by key order past MAX_ENTRIES
    (300 unless set): enough other clients' throttle counters once deleted this one."""
    settings.AUTH_FAILURE_LIMIT = 3
    token = api_token(UserFactory())
    for attempt in range(3):
        assert api_from(ATTACKER, f"Token wrong{attempt}").get("/api/v1/jobs/").status_code == 401
    counters = caches[SECURITY_CACHE]
    for user in range(1000):  # what a thousand busy API users leave behind
        counters.set(f"throttle_user_{user}", [1.0], 60)
    assert api_from(ATTACKER, f"Token {token}").get("/api/v1/jobs/").status_code == 429


@pytest.mark.django_db
def test_the_sweeper_deletes_expired_counters_and_keeps_live_ones() -> None:
    counters = caches[SECURITY_CACHE]
    counters.set("throttle_user_1", [1.0], 60)
    counters.set("throttle_user_2", [1.0], 60)
    with time_machine.travel(timezone.now() + timedelta(seconds=120)):
        counters.set("throttle_user_3", [1.0], 60)
        out = StringIO()
        call_command("sweep_jobs", stdout=out)
        assert "2 expired security counter(s) deleted" in out.getvalue()
        assert counters.get("throttle_user_3") == [1.0]
        assert delete_expired_counters() == 0
