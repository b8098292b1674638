"""STOW-RS: request and response shapes, authentication, isolation between organisations."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from dicom.models import StowCredential, Study
from predictions.models import Job
from tests.dicom_files import mr_dataset, to_bytes
from tests.factories import OrganisationFactory, PatientFactory

pytestmark = pytest.mark.django_db

URL = "/dicomweb/studies"
BOUNDARY = "stow-test-boundary-9f8e"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
REFERENCED, FAILED, RETRIEVE_URL = "00081199", "00081198", "00081190"
SOP_UID, FAILURE_REASON, ERROR_COMMENT = "00081155", "00081197", "00000902"


def multipart(*parts: bytes) -> bytes:
    body = b""
    for part in parts:
        body += f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


@pytest.fixture
def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def credential(organisation: Any) -> str:
    _, secret = StowCredential.issue(organisation, "orthanc")
    return basic("orthanc", secret)


def stow(client: Client, auth: str, *parts: bytes, url: str = URL, **headers: str) -> Any:
    return client.post(
        url, data=multipart(*parts), content_type=CONTENT_TYPE, HTTP_AUTHORIZATION=auth, **headers
    )


def items(response: Any, key: str) -> list[dict[str, Any]]:
    return response.json().get(key, {}).get("Value", [])


def test_stores_every_instance_and_answers_200_with_references(
    csrf_client: Client, credential: str, patient: Any
) -> None:
    first = mr_dataset(patient_id=patient.external_id, study_uid="1.2.3", instance_number=1)
    second = mr_dataset(patient_id=patient.external_id, study_uid="1.2.3", instance_number=2)
    response = stow(csrf_client, credential, to_bytes(first), to_bytes(second))
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    stored = items(response, REFERENCED)
    assert [item[SOP_UID]["Value"][0] for item in stored] == [
        first.SOPInstanceUID,
        second.SOPInstanceUID,
    ]
    study = Study.objects.get(study_instance_uid="1.2.3")
    assert study.patient == patient
    assert stored[0][RETRIEVE_URL]["Value"][0].endswith(f"/api/v1/studies/{study.public_id}/")
    assert FAILED not in response.json()
    assert Job.objects.count() == 2


def test_a_mixed_request_answers_202_with_reasons_for_the_failed(
    csrf_client: Client, credential: str, patient: Any
) -> None:
    good = mr_dataset(patient_id=patient.external_id)
    ct = mr_dataset(patient_id=patient.external_id, modality="CT")
    stranger = mr_dataset(patient_id="NOBODY")
    response = stow(csrf_client, credential, to_bytes(good), to_bytes(ct), to_bytes(stranger),
                    b"not dicom")  # fmt: skip
    assert response.status_code == 202
    failed = items(response, FAILED)
    assert [(item[SOP_UID].get("Value", [""])[0], item[FAILURE_REASON]["Value"][0])
            for item in failed] == [
        (ct.SOPInstanceUID, 0x0122),
        (stranger.SOPInstanceUID, 0x0124),
        ("", 0xC000),
    ]  # fmt: skip
    assert [item[ERROR_COMMENT]["Value"][0] for item in failed] == [
        "Modality is CT: only MR series are classified.",
        "Unknown patient ID 'NOBODY': register the patient first.",
        "Part 4 is not a DICOM file (no 'DICM' marker at byte 128).",
    ]
    assert len(items(response, REFERENCED)) == 1
    refused = Study.objects.get(study_instance_uid=ct.StudyInstanceUID).series.get()
    assert refused.refusal  # recorded, not classified
    assert Job.objects.count() == 1


def test_nothing_stored_is_a_409(csrf_client: Client, credential: str, patient: Any) -> None:
    response = stow(csrf_client, credential, b"junk")
    assert response.status_code == 409
    assert len(items(response, FAILED)) == 1


def test_an_instance_of_another_study_than_the_url_names_fails(
    csrf_client: Client, credential: str, patient: Any
) -> None:
    dataset = mr_dataset(patient_id=patient.external_id, study_uid="1.2.3")
    response = stow(csrf_client, credential, to_bytes(dataset), url=f"{URL}/1.2.4")
    assert response.status_code == 409
    assert items(response, FAILED)[0][FAILURE_REASON]["Value"] == [0xA900]
    response = stow(csrf_client, credential, to_bytes(dataset), url=f"{URL}/1.2.3")
    assert response.status_code == 200


def test_sending_an_instance_again_stores_it_once(
    csrf_client: Client, credential: str, patient: Any
) -> None:
    data = to_bytes(mr_dataset(patient_id=patient.external_id))
    assert stow(csrf_client, credential, data).status_code == 200
    assert stow(csrf_client, credential, data).status_code == 200
    assert Job.objects.count() == 1


@pytest.mark.parametrize(
    "auth",
    ["", "Bearer abc", basic("orthanc", "wrong"), basic("nobody", "x"), "Basic !!!"],
    ids=["none", "not basic", "wrong secret", "unknown user", "malformed"],
)
def test_refuses_without_the_credential(
    csrf_client: Client, credential: str, patient: Any, auth: str
) -> None:
    data = to_bytes(mr_dataset(patient_id=patient.external_id))
    response = stow(csrf_client, auth, data)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="dicomweb"'
    assert not Study.objects.exists()


def test_a_revoked_credential_is_refused(
    csrf_client: Client, credential: str, patient: Any
) -> None:
    StowCredential.objects.update(revoked=True)
    response = stow(csrf_client, credential, to_bytes(mr_dataset(patient_id=patient.external_id)))
    assert response.status_code == 401


def test_refuses_other_content_types(csrf_client: Client, credential: str) -> None:
    response = csrf_client.post(
        URL, data=b"{}", content_type="application/json", HTTP_AUTHORIZATION=credential
    )
    assert response.status_code == 415
    xml = f'multipart/related; type="application/dicom+xml"; boundary={BOUNDARY}'
    response = csrf_client.post(URL, data=b"", content_type=xml, HTTP_AUTHORIZATION=credential)
    assert response.status_code == 415


def test_refuses_a_request_over_the_limit(
    csrf_client: Client, credential: str, patient: Any, settings: Any
) -> None:
    settings.DICOM_MAX_STUDY_BYTES = 1000
    response = stow(csrf_client, credential, to_bytes(mr_dataset(patient_id=patient.external_id)))
    assert response.status_code == 413


def test_a_credential_pushes_only_into_its_own_organisation(
    csrf_client: Client, credential: str, patient: Any
) -> None:
    """Same patient ID and study UID in two clinics: two separate studies, nothing shared."""
    other_clinic = OrganisationFactory()
    twin = PatientFactory(organisation=other_clinic, external_id=patient.external_id)
    _, secret = StowCredential.issue(other_clinic, "other-pacs")
    dataset = mr_dataset(patient_id=patient.external_id, study_uid="1.2.3")
    assert stow(csrf_client, credential, to_bytes(dataset)).status_code == 200
    response = stow(csrf_client, basic("other-pacs", secret), to_bytes(dataset))
    assert response.status_code == 200
    mine, theirs = (Study.objects.get(organisation=org, study_instance_uid="1.2.3")
                    for org in (patient.organisation, other_clinic))  # fmt: skip
    assert (mine.patient, theirs.patient) == (patient, twin)


def test_the_command_issues_a_credential_that_works(
    csrf_client: Client, organisation: Any, patient: Any, capsys: Any
) -> None:
    call_command("create_stow_credential", organisation.name, "pacs-1")
    out = capsys.readouterr().out
    password = out.split("password: ")[1].strip()
    data = to_bytes(mr_dataset(patient_id=patient.external_id))
    assert stow(csrf_client, basic("pacs-1", password), data).status_code == 200
    assert StowCredential.objects.get().secret_sha256 != password


def test_a_chunked_request_without_a_length_is_refused_in_words(
    credential: str, patient: Any
) -> None:
    from django.test import RequestFactory

    from dicom.stow import store_instances

    request = RequestFactory().post(URL, data=multipart(b"x"), content_type=CONTENT_TYPE,
                                    HTTP_AUTHORIZATION=credential)  # fmt: skip
    request.META.pop("CONTENT_LENGTH", None)
    assert "Content-Length" not in request.headers
    response = store_instances(request)
    assert response.status_code == 411
    assert "ChunkedTransfers" in json.loads(response.content)["detail"]
