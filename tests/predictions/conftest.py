from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import PredictionFactory, UserFactory


@pytest.fixture
def portal(clinician: Any) -> Client:
    """A browser session of the clinician (the portal uses session login, not tokens)."""
    client = Client()
    client.force_login(clinician)
    return client


@pytest.fixture
def outsider_portal(db: None) -> Client:
    """A signed-in clinician of another organisation."""
    client = Client()
    client.force_login(UserFactory())
    return client


@pytest.fixture
def prediction(patient: Any) -> Any:
    """A succeeded job of the clinician's patient, with its prediction."""
    return PredictionFactory(job__scan__patient=patient)


WORKER_SECRET = "test-worker-secret"


@pytest.fixture
def worker_api(settings: Any) -> APIClient:
    """A client of the workers' internal API, with the site's worker secret."""
    settings.WORKER_SECRET = WORKER_SECRET
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Worker {WORKER_SECRET}")
    return client
