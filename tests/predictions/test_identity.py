"""Identity safety: one patient per identifier however typed, no silent cuts, no silent duplicates,
and scans that can be moved or voided with the reason on record."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from predictions.models import Patient, Review, ScanCorrection
from tests.factories import PatientFactory
from tests.images import png_bytes

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("spelling", [" mrn-1001 ", "MRN-1001", "mrn-1001", "MRN-1001\t"])
def test_spellings_of_one_identifier_are_one_patient_in_the_portal(
    portal: Client, organisation: Any, spelling: str
) -> None:
    PatientFactory(organisation=organisation, external_id="MRN-1001")
    response = portal.post("/patients/new/", {"external_id": spelling})
    assert response.status_code == 200
    assert (
        "A patient with this external_id already exists. (as “MRN-1001”)"
        in response.content.decode()
    )
    assert Patient.objects.count() == 1


def test_spellings_of_one_identifier_are_one_patient_in_the_api(
    api: Any, organisation: Any
) -> None:
    PatientFactory(organisation=organisation, external_id="MRN-1001")
    response = api.post("/api/v1/patients/", {"external_id": " mrn-1001 "}, format="json")
    assert response.status_code == 400 and "already exists" in response.json()["external_id"][0]
    found = api.get("/api/v1/patients/", {"external_id": "  Mrn-1001"}).json()["results"]
    assert [p["external_id"] for p in found] == ["MRN-1001"]


def test_an_identifier_is_shown_as_entered_and_found_in_any_case(portal: Client) -> None:
    portal.post("/patients/new/", {"external_id": "  Mrn-Äb 7 "})
    patient = Patient.objects.get()
    assert (patient.external_id, patient.identifier_key) == ("Mrn-Äb 7", "mrn-äb 7")
    page = portal.get("/patients/", {"q": "MRN-äB"}).content.decode()
    assert "Mrn-Äb 7" in page


def test_an_over_long_identifier_is_refused_not_cut(portal: Client, api: Any) -> None:
    long_id = "M" * 70
    page = portal.post("/patients/new/", {"external_id": long_id}).content.decode()
    assert "The identifier is 70 characters long; the limit is 64 characters." in page
    assert 'maxlength="64"' not in portal.get("/patients/new/").content.decode()
    response = api.post("/api/v1/patients/", {"external_id": long_id}, format="json")
    assert response.status_code == 400
    assert "the limit is 64 characters" in response.json()["external_id"][0]
    assert not Patient.objects.exists()


def upload(client: Client, patient: Any, content: bytes, **extra: str) -> Any:
    data = {"image": SimpleUploadedFile("slice 1.png", content), **extra}
    return client.post(f"/patients/{patient.public_id}/scans/", data)


def test_the_same_image_twice_is_a_409_naming_the_earlier_result(
    portal: Client, patient: Any
) -> None:
    first = upload(portal, patient, png_bytes(seed=4)).json()["job"]
    again = upload(portal, patient, png_bytes(seed=4))
    assert again.status_code == 409
    body = again.json()
    assert "already has this exact image" in body["errors"][0]
    assert body["duplicate_of"] == {"id": first["id"], "url": first["url"]}
    allowed = upload(portal, patient, png_bytes(seed=4), allow_duplicate="on")
    assert allowed.status_code == 202
    assert upload(portal, patient, png_bytes(seed=5)).status_code == 202


def test_the_api_answers_409_with_the_existing_job_unless_allow_duplicate(
    api: Any, patient: Any
) -> None:
    def submit(**extra: Any) -> Any:
        image = SimpleUploadedFile("a.png", png_bytes(seed=9))
        return api.post(
            "/api/v1/scans/", {"image": image, "patient": str(patient.public_id), **extra}
        )

    first = submit().json()["job"]
    again = submit()
    assert again.status_code == 409
    assert again.json()["job"]["id"] == first["id"] and "identical" in again.json()["detail"]
    assert submit(allow_duplicate="true").status_code == 202


def test_the_original_file_name_is_kept_and_shown_inside_the_organisation(
    portal: Client, outsider_portal: Client, patient: Any
) -> None:
    state = upload(portal, patient, png_bytes(seed=6)).json()["job"]
    page = portal.get(state["url"]).content.decode()
    assert 'id="original-name">slice 1.png<' in page
    assert outsider_portal.get(state["url"]).status_code == 404


@pytest.fixture
def other_patient(organisation: Any) -> Any:
    return PatientFactory(organisation=organisation, external_id="MRN-RIGHT")


def test_a_scan_moves_to_another_patient_with_the_reason_on_record(
    portal: Client, prediction: Any, other_patient: Any, clinician: Any
) -> None:
    scan = prediction.job.scan
    wrong = scan.patient
    response = portal.post(
        f"/scans/{scan.public_id}/move/",
        {"move-patient": " mrn-right ", "move-reason": "Filed under the neighbour's MRN."},
    )
    assert response.status_code == 302
    scan.refresh_from_db()
    assert scan.patient == other_patient
    correction = ScanCorrection.objects.get()
    assert (correction.kind, correction.from_patient, correction.to_patient) == (
        "move",
        wrong,
        other_patient,
    )
    assert correction.corrected_by == clinician
    page = portal.get(response["Location"]).content.decode()
    assert f"moved from patient {wrong.external_id} to patient MRN-RIGHT" in page
    assert "Filed under the neighbour" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"move-patient": "MRN-RIGHT", "move-reason": " "}, "Give the reason"),
        ({"move-patient": "NOBODY", "move-reason": "x"}, "No patient of your organisation"),
    ],
)
def test_a_move_without_a_reason_or_target_is_refused(
    portal: Client, prediction: Any, other_patient: Any, data: dict[str, str], message: str
) -> None:
    scan = prediction.job.scan
    page = portal.post(f"/scans/{scan.public_id}/move/", data, follow=True).content.decode()
    assert message in page and not ScanCorrection.objects.exists()


def test_a_scan_cannot_be_moved_to_another_organisations_patient(
    portal: Client, prediction: Any
) -> None:
    stranger = PatientFactory(external_id="MRN-ELSEWHERE")
    data = {"move-patient": "MRN-ELSEWHERE", "move-reason": "x"}
    page = portal.post(f"/scans/{prediction.job.scan.public_id}/move/", data, follow=True)
    assert "No patient of your organisation" in page.content.decode()
    assert not stranger.scans.exists()


def test_another_organisation_cannot_move_or_void(outsider_portal: Client, prediction: Any) -> None:
    scan = prediction.job.scan
    assert (
        outsider_portal.post(f"/scans/{scan.public_id}/void/", {"void-reason": "x"}).status_code
        == 404
    )
    assert outsider_portal.post(f"/scans/{scan.public_id}/move/", {}).status_code == 404
    assert not ScanCorrection.objects.exists()


def test_anonymous_cannot_move_or_void(client: Client, prediction: Any) -> None:
    response = client.post(f"/scans/{prediction.job.scan.public_id}/void/", {"void-reason": "x"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_voided_scan_stays_on_record_but_leaves_the_worklist_and_the_export(
    portal: Client, prediction: Any, clinician: Any
) -> None:
    scan = prediction.job.scan
    Review.objects.create(job=prediction.job, label="glioma", confirmed=True, reviewed_by=clinician)
    portal.post(f"/scans/{scan.public_id}/void/", {"void-reason": "Test image, not a patient."})
    scan.refresh_from_db()
    assert scan.is_voided
    page = portal.get(f"/jobs/{prediction.job.public_id}/").content.decode()
    assert 'id="voided-notice"' in page and "Test image, not a patient." in page
    assert portal.get("/worklist/?status=succeeded").context["rows"] == []
    from predictions import reviews

    assert list(reviews.reviewed_scans()) == []
    again = portal.post(f"/scans/{scan.public_id}/void/", {"void-reason": "twice"}, follow=True)
    assert "already voided" in again.content.decode()
