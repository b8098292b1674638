from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

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
