from __future__ import annotations

from typing import Any

import pytest

from predictions.models import Patient
from tests.factories import PatientFactory

URL = "/api/v1/patients/"


def test_creates_a_patient_in_the_callers_organisation(api: Any, organisation: Any) -> None:
    response = api.post(URL, {"external_id": "MRN-1"}, format="json")
    assert response.status_code == 201
    patient = Patient.objects.get(public_id=response.json()["id"])
    assert (patient.external_id, patient.organisation) == ("MRN-1", organisation)


def test_refuses_a_duplicate_external_id(api: Any, patient: Any) -> None:
    response = api.post(URL, {"external_id": patient.external_id}, format="json")
    assert response.status_code == 400
    assert "already exists" in response.json()["external_id"][0]


def test_same_external_id_is_fine_in_another_organisation(api: Any) -> None:
    other = PatientFactory()
    assert api.post(URL, {"external_id": other.external_id}, format="json").status_code == 201


def test_lists_only_the_callers_patients(api: Any, patient: Any) -> None:
    PatientFactory()
    body = api.get(URL).json()
    assert [row["id"] for row in body["results"]] == [str(patient.public_id)]


def test_another_organisations_patient_is_a_404(outsider_api: Any, patient: Any) -> None:
    assert outsider_api.get(f"{URL}{patient.public_id}/").status_code == 404


@pytest.mark.parametrize("method", ["get", "post"])
def test_requires_authentication(anonymous_api: Any, db: None, method: str) -> None:
    assert getattr(anonymous_api, method)(URL).status_code == 401


def test_a_user_without_organisation_is_forbidden(db: None) -> None:
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("loner"))
    assert client.get(URL).status_code == 403
