from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from knox.auth import TokenAuthentication
from rest_framework.test import APIClient

from predictions.api.views import JobViewSet, PatientViewSet
from tests.factories import api_token

DATABASE_ERRORS = [OperationalError("connection refused"), InterfaceError("connection closed")]


@pytest.mark.parametrize("error", DATABASE_ERRORS, ids=lambda error: type(error).__name__)
@pytest.mark.parametrize(
    ("view", "url"), [(JobViewSet, "/api/v1/jobs/"), (PatientViewSet, "/api/v1/patients/")]
)
def test_a_lost_database_is_a_json_503(api: Any, view: type, url: str, error: Exception) -> None:
    with mock.patch.object(view, "get_queryset", autospec=True, side_effect=error):
        response = api.get(url)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert "database unavailable" in response.json()["detail"].lower()
    assert response["Retry-After"] == "30"


def test_a_lost_database_while_checking_the_token_is_a_json_503(clinician: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(clinician)}")
    with mock.patch.object(
        TokenAuthentication,
        "authenticate_credentials",
        autospec=True,
        side_effect=OperationalError("the database system is shutting down"),
    ):
        response = client.get("/api/v1/jobs/")
    assert response.status_code == 503
    assert "database unavailable" in response.json()["detail"].lower()


def test_other_errors_still_reach_django_as_500s(api: Any) -> None:
    api.raise_request_exception = False
    with mock.patch.object(JobViewSet, "get_queryset", autospec=True, side_effect=KeyError("x")):
        assert api.get("/api/v1/jobs/").status_code == 500
