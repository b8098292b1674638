from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.factories import PatientFactory, UserFactory
from webapp.local_redis import free_port, start_redis


def pytest_configure(config: pytest.Config) -> None:
    """Use the Redis in REDIS_URL (CI) or start a private one before Celery reads its URL."""
    if os.environ.get("REDIS_URL") or os.environ.get("CELERY_BROKER_URL"):
        return
    port = free_port()
    config.stash[_LOCAL_REDIS] = start_redis(port)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"


def pytest_unconfigure(config: pytest.Config) -> None:
    if process := config.stash.get(_LOCAL_REDIS, None):
        process.terminate()
        process.wait(timeout=10)


_LOCAL_REDIS = pytest.StashKey[Any]()


@pytest.fixture(autouse=True)
def broker_not_known_down() -> Iterator[None]:
    """Forget a failed send after each test, so the next one's requests try the broker again."""
    yield
    if dispatch := sys.modules.get("predictions.dispatch"):
        dispatch._broker_down_until = 0.0  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def clinician(db: None) -> Any:
    return UserFactory()


@pytest.fixture
def organisation(clinician: Any) -> Any:
    return clinician.membership.organisation


@pytest.fixture
def patient(organisation: Any) -> Any:
    return PatientFactory(organisation=organisation)


@pytest.fixture
def api(clinician: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(clinician)
    return client


@pytest.fixture
def anonymous_api() -> APIClient:
    return APIClient()


@pytest.fixture
def outsider_api(db: None) -> APIClient:
    """A signed-in clinician of another organisation."""
    client = APIClient()
    client.force_authenticate(UserFactory())
    return client
