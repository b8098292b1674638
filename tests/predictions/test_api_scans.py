from __future__ import annotations

import io
from typing import Any

import pytest

from predictions.models import Job, Scan
from tests.api import SCANS_URL, submit, upload
from tests.factories import PatientFactory, ScanFactory
from tests.images import (
    jpeg_bytes,
    png_bytes,
    png_claiming_size,
    png_with_text_bomb,
    truncated_jpeg,
)

URL = SCANS_URL


@pytest.mark.parametrize("content", [png_bytes(), jpeg_bytes()], ids=["png", "jpeg"])
def test_submission_is_accepted_with_a_job_to_poll(
    api: Any, patient: Any, content: bytes, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks():
        response = submit(api, patient, content)
    assert response.status_code == 202
    job = response.json()["job"]
    assert job["status"] == "queued"
    assert response["Location"] == job["url"]
    assert job["url"].endswith(f"/api/v1/jobs/{job['id']}/")
    assert Job.objects.get(public_id=job["id"]).scan.patient == patient


def test_stores_the_image_under_a_random_name_with_its_facts(api: Any, patient: Any) -> None:
    content = jpeg_bytes(64)
    submit(api, patient, content, name="Smith_John_1970-01-01.jpg")
    scan = Scan.objects.get()
    assert "Smith" not in scan.image.name and scan.image.name.endswith(".jpg")
    assert (scan.content_type, scan.width, scan.height) == ("image/jpeg", 64, 64)
    assert scan.size_bytes == len(content)
    assert scan.image.read() == content


BAD_UPLOADS = {
    "empty file": (b"", "empty"),
    "not an image": (b"%PDF-1.4 this is a report, not a scan", "not an image"),
    "truncated": (truncated_jpeg(), "truncated or corrupt"),
    "corrupt": (png_bytes()[:60] + b"\x00" * 200, "truncated or corrupt"),
    "bomb beyond Pillow's limit": (png_claiming_size(50_000, 50_000), "too large in pixels"),
    "over our pixel limit": (png_claiming_size(6_300, 6_300), "the limit is 16,777,216 pixels"),
    "unsupported format": (None, "not accepted"),
    "text bomb before the pixels": (png_with_text_bomb(before_pixels=True), "malicious metadata"),
    "text bomb after the pixels": (png_with_text_bomb(before_pixels=False), "malicious metadata"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=list(BAD_UPLOADS))
def test_bad_images_get_a_400_saying_why_and_leave_no_job(
    api: Any, patient: Any, case: str
) -> None:
    content, message = BAD_UPLOADS[case]
    if content is None:
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("L", (8, 8)).save(buffer, format="GIF")
        content = buffer.getvalue()
    response = submit(api, patient, content)
    assert response.status_code == 400
    assert message in response.json()["image"][0]
    assert not Job.objects.exists() and not Scan.objects.exists()


def test_a_file_over_the_size_limit_is_cut_off_with_413(
    api: Any, patient: Any, settings: Any
) -> None:
    settings.MAX_UPLOAD_BYTES = 1000
    response = submit(api, patient, png_bytes(256))
    assert response.status_code == 413
    assert response.json()["detail"] == "The file is over the limit of 1,000 bytes."
    assert not Job.objects.exists()


def test_two_image_parts_are_refused_not_last_wins(api: Any, patient: Any) -> None:
    images = [upload(png_bytes(), "first.png"), upload(png_bytes(96), "second.png")]
    response = api.post(URL, {"image": images, "patient": str(patient.public_id)})
    assert response.status_code == 400
    assert "one image per request; this one has 2" in response.json()["image"][0]
    assert not Job.objects.exists() and not Scan.objects.exists()


def test_no_file_is_a_400(api: Any, patient: Any) -> None:
    response = api.post(URL, {"patient": str(patient.public_id)})
    assert response.status_code == 400
    assert "multipart field 'image'" in response.json()["image"][0]
    assert not Job.objects.exists()


@pytest.mark.parametrize("patient_id", ["00000000-0000-0000-0000-000000000000", "other-org"])
def test_an_unknown_patient_is_a_400(api: Any, db: None, patient_id: str) -> None:
    if patient_id == "other-org":
        patient_id = str(PatientFactory().public_id)
    response = api.post(URL, {"image": upload(png_bytes()), "patient": patient_id})
    assert response.status_code == 400
    assert "Unknown patient" in response.json()["patient"][0]
    assert not Job.objects.exists()


def test_anonymous_submission_is_refused(anonymous_api: Any, patient: Any) -> None:
    assert submit(anonymous_api, patient, png_bytes()).status_code == 401
    assert not Job.objects.exists()


def test_scan_image_is_served_to_its_organisation_only(
    api: Any, outsider_api: Any, patient: Any
) -> None:
    scan = ScanFactory(patient=patient)
    own = api.get(f"{URL}{scan.public_id}/image/")
    assert own.status_code == 200 and own["Content-Type"] == "image/png"
    assert outsider_api.get(f"{URL}{scan.public_id}/image/").status_code == 404
    assert outsider_api.get(f"{URL}{scan.public_id}/").status_code == 404
