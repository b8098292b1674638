from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from predictions.models import Patient
from predictions.portal.views import PATIENTS_PER_PAGE
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def test_the_list_shows_only_the_organisations_patients(
    portal: Client, patient: Any, organisation: Any
) -> None:
    stranger = PatientFactory()
    page = portal.get("/patients/").content.decode()
    assert patient.external_id in page and stranger.external_id not in page


def test_search_by_external_id(portal: Client, organisation: Any) -> None:
    PatientFactory(organisation=organisation, external_id="MRN-ALPHA-1")
    PatientFactory(organisation=organisation, external_id="MRN-BETA-2")
    page = portal.get("/patients/?q=alpha").content.decode()
    assert "MRN-ALPHA-1" in page and "MRN-BETA-2" not in page


def test_the_list_is_paginated(portal: Client, organisation: Any) -> None:
    PatientFactory.create_batch(PATIENTS_PER_PAGE + 1, organisation=organisation)
    first, second = portal.get("/patients/"), portal.get("/patients/?page=2")
    assert first.context["page"].paginator.num_pages == 2
    assert len(first.context["page"].object_list) == PATIENTS_PER_PAGE
    assert len(second.context["page"].object_list) == 1
    assert 'rel="next"' in first.content.decode()


def test_register_a_patient(portal: Client, clinician: Any, organisation: Any) -> None:
    response = portal.post("/patients/new/", {"external_id": "  MRN-7 "})
    patient = Patient.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/patients/{patient.public_id}/"
    assert (patient.external_id, patient.organisation, patient.created_by) == (
        "MRN-7",
        organisation,
        clinician,
    )


def test_a_duplicate_external_id_is_refused_in_the_apis_words(portal: Client, patient: Any) -> None:
    response = portal.post("/patients/new/", {"external_id": patient.external_id})
    assert response.status_code == 200
    assert "A patient with this external_id already exists." in response.content.decode()
    assert Patient.objects.count() == 1


def test_the_same_external_id_may_exist_in_another_organisation(portal: Client) -> None:
    other = PatientFactory(external_id="MRN-SHARED")
    assert portal.post("/patients/new/", {"external_id": "MRN-SHARED"}).status_code == 302
    assert Patient.objects.filter(external_id="MRN-SHARED").count() == 2
    assert other.organisation != Patient.objects.latest("created").organisation
