from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.factories import PatientFactory, UserFactory


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
