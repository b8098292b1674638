"""DICOM through the existing upload paths: POST /api/v1/scans/ and the portal's upload."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from dicom.models import Instance, Series, Slice, Study
from predictions.models import Job, Scan
from tests.api import submit
from tests.dicom_files import mr_dataset, picture, to_bytes, zipped
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def dicom_for(patient: Any, **options: Any) -> bytes:
    return to_bytes(mr_dataset(patient_id=patient.external_id, **options))


def stored_files(media_root: Path) -> list[Path]:
    return [path for path in media_root.rglob("*") if path.is_file()] if media_root.exists() else []


def test_a_single_file_becomes_a_study_a_series_and_one_job(api: APIClient, patient: Any) -> None:
    response = submit(api, patient, dicom_for(patient), name="slice.dcm")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert len(body["jobs"]) == 1 and body["refused"] == []
    study = Study.objects.get(public_id=body["studies"][0]["id"])
    assert study.patient == patient and study.accession_number == "ACC-1"
    series = study.series.get()
    assert (series.modality, series.body_part, series.sequence) == ("MR", "BRAIN", "*tfl3d1")
    assert response["Location"].endswith(f"/api/v1/studies/{study.public_id}/")


def test_the_scan_is_the_rendered_slice_not_the_dicom(api: APIClient, patient: Any) -> None:
    submit(api, patient, dicom_for(patient), name="slice.dcm")
    scan = Scan.objects.get()
    assert scan.content_type == "image/png"
    with scan.image.open("rb") as handle:
        np.testing.assert_array_equal(np.asarray(Image.open(handle)), picture())
    assert Instance.objects.get().file.read()[128:132] == b"DICM"


def test_a_multi_frame_file_gives_one_job_per_frame_in_order(api: APIClient, patient: Any) -> None:
    data = dicom_for(patient, pictures=[picture(0), picture(1), picture(2)])
    response = submit(api, patient, data, name="multi.dcm")
    assert response.status_code == 202
    assert len(response.json()["jobs"]) == 3
    frames = Slice.objects.order_by("frame")
    assert [s.frame for s in frames] == [1, 2, 3]
    assert [str(s.scan.jobs.get().public_id) for s in frames] == [
        job["id"] for job in response.json()["jobs"]
    ]


def test_a_zip_of_a_study_records_each_series_and_refuses_ct(api: APIClient, patient: Any) -> None:
    study_uid = "1.2.826.0.1.3680043.8.498.1"
    files = {
        f"MR/{n}.dcm": dicom_for(patient, study_uid=study_uid, series_uid="1.2.3.1",
                                 instance_number=n, pictures=picture(n)[np.newaxis])
        for n in (2, 1)
    }  # fmt: skip
    files["CT/1.dcm"] = dicom_for(patient, study_uid=study_uid, series_uid="1.2.3.2",
                                  modality="CT", series_number=2)  # fmt: skip
    files["DICOMDIR"] = b"not an image"
    response = submit(api, patient, zipped(files), name="study.zip")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert len(body["jobs"]) == 2
    assert body["refused"] == ["Modality is CT: only MR series are classified."]
    assert Study.objects.get().series.count() == 2
    assert Series.objects.get(modality="CT").instances.count() == 0  # recorded, not stored


def test_a_series_that_is_all_refused_is_a_422_and_recorded(api: APIClient, patient: Any) -> None:
    response = submit(api, patient, dicom_for(patient, body_part="KNEE"), name="knee.dcm")
    assert response.status_code == 422
    assert response.json()["detail"] == "Body part is KNEE: only MR of the head is classified."
    assert Series.objects.get().refusal.startswith("Body part is KNEE")
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("content", "name", "words"),
    [
        (b"hello, not a scan", "slice.dcm", "not a DICOM file"),
        (b"PK\x03\x04 not really a zip", "study.zip", "zip is damaged"),
        (zipped({"notes.txt": b"hello"}), "study.zip", "'notes.txt' in the zip is not a DICOM"),
    ],
    ids=["not DICOM", "damaged zip", "zip without DICOM"],
)
def test_refuses_what_is_not_dicom_and_leaves_nothing(
    api: APIClient, patient: Any, media_root: Path, content: bytes, name: str, words: str
) -> None:
    response = submit(api, patient, content, name=name)
    assert response.status_code == 400
    assert words in response.json()["image"][0]
    assert not Study.objects.exists() and not Scan.objects.exists()
    assert stored_files(media_root) == []


def test_one_bad_file_in_a_zip_refuses_the_whole_upload(
    api: APIClient, patient: Any, media_root: Path
) -> None:
    whole = dicom_for(patient)
    archive = zipped({"a.dcm": dicom_for(patient), "b.dcm": whole[: len(whole) - 4000]})
    response = submit(api, patient, archive, name="study.zip")
    assert response.status_code == 400
    assert "'b.dcm' in the zip: its pixel data cannot be decoded" in response.json()["image"][0]
    assert not Scan.objects.exists() and stored_files(media_root) == []


def test_refuses_a_file_of_another_patient(api: APIClient, patient: Any, media_root: Path) -> None:
    data = to_bytes(mr_dataset(patient_id="SOMEONE-ELSE"))
    response = submit(api, patient, data, name="slice.dcm")
    assert response.status_code == 400
    assert "is for patient ID 'SOMEONE-ELSE'" in response.json()["image"][0]
    assert stored_files(media_root) == []


def test_refuses_a_study_already_recorded_for_another_patient(
    api: APIClient, patient: Any, organisation: Any
) -> None:
    other = PatientFactory(organisation=organisation)
    submit(api, other, dicom_for(other, study_uid="1.2.3.4"), name="a.dcm")
    response = submit(api, patient, dicom_for(patient, study_uid="1.2.3.4"), name="b.dcm")
    assert response.status_code == 400
    assert "another patient" in response.json()["image"][0]


def test_sending_the_same_instance_twice_queues_it_once(api: APIClient, patient: Any) -> None:
    data = dicom_for(patient)
    submit(api, patient, data, name="slice.dcm")
    response = submit(api, patient, data, name="slice.dcm")
    assert response.status_code == 202
    assert response.json()["duplicates"] == 1 and response.json()["jobs"] == []
    assert Job.objects.count() == 1


def test_the_patient_must_be_of_the_callers_organisation(
    outsider_api: APIClient, patient: Any
) -> None:
    response = submit(outsider_api, patient, dicom_for(patient), name="slice.dcm")
    assert response.status_code == 400
    assert "Unknown patient" in str(response.json())


def test_anonymous_callers_cannot_upload(anonymous_api: APIClient, patient: Any) -> None:
    response = submit(anonymous_api, patient, dicom_for(patient), name="slice.dcm")
    assert response.status_code in (401, 403)
    assert not Study.objects.exists()


def test_jpeg_and_png_uploads_are_unchanged(api: APIClient, patient: Any) -> None:
    response = submit(api, patient)
    assert response.status_code == 202 and "job" in response.json()
    assert not Study.objects.exists()


def portal_upload(client: Client, patient: Any, data: bytes, name: str) -> Any:
    file = io.BytesIO(data)
    file.name = name
    return client.post(f"/patients/{patient.public_id}/scans/", {"image": file})


def test_the_portal_takes_a_dicom_upload(client: Client, clinician: Any, patient: Any) -> None:
    client.force_login(clinician)
    data = dicom_for(patient, pictures=[picture(0), picture(1)])
    response = portal_upload(client, patient, data, "multi.dcm")
    assert response.status_code == 202
    body = response.json()
    assert len(body["jobs"]) == 2 and body["job"] == body["jobs"][0]
    page = client.get(body["studies"][0])
    assert page.status_code == 200
    assert page.content.decode().count('data-job="') == 2


def test_the_portal_names_the_problem_with_a_bad_file(
    client: Client, clinician: Any, patient: Any
) -> None:
    client.force_login(clinician)
    response = portal_upload(client, patient, b"junk", "slice.dcm")
    assert response.status_code == 400
    assert "not a DICOM file" in response.json()["errors"][0]
