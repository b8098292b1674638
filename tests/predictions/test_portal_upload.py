"""Uploads through the portal: one file per request, the API's checks and the API's words."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from predictions.models import Job, Scan
from tests.images import (
    jpeg_bytes,
    png_bytes,
    png_claiming_size,
    png_with_text_bomb,
    truncated_jpeg,
)


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="GIF")
    return buffer.getvalue()


def upload_url(patient: Any) -> str:
    return f"/patients/{patient.public_id}/scans/"


def send(client: Client, patient: Any, content: bytes, name: str = "slice.png") -> Any:
    return client.post(upload_url(patient), {"image": SimpleUploadedFile(name, content)})


@pytest.mark.parametrize("content", [png_bytes(), jpeg_bytes()], ids=["png", "jpeg"])
def test_each_accepted_file_becomes_a_queued_job(
    portal: Client, patient: Any, content: bytes, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = send(portal, patient, content, name="Smith_John.png")
    assert response.status_code == 202
    state = response.json()["job"]
    job = Job.objects.get(public_id=state["id"])
    assert (job.scan.patient, job.status, state["status_text"]) == (patient, "queued", "queued")
    assert state["url"] == f"/jobs/{job.public_id}/"
    assert "Smith" not in job.scan.image.name
    assert len(callbacks) == 1, "the job is sent to the broker once the row commits"


BAD_UPLOADS = {
    "empty file": b"",
    "not an image": b"%PDF-1.4 this is a report, not a scan",
    "truncated": truncated_jpeg(),
    "corrupt": png_bytes()[:60] + b"\x00" * 200,
    "bomb beyond Pillow's limit": png_claiming_size(50_000, 50_000),
    "over our pixel limit": png_claiming_size(8_000, 8_000),
    "unsupported format": gif_bytes(),
    "text bomb before the pixels": png_with_text_bomb(before_pixels=True),
    "text bomb after the pixels": png_with_text_bomb(before_pixels=False),
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=list(BAD_UPLOADS))
def test_bad_files_get_the_apis_message_and_leave_no_job(
    portal: Client, api: Any, patient: Any, case: str
) -> None:
    content = BAD_UPLOADS[case]
    response = send(portal, patient, content)
    from_api = api.post(
        "/api/v1/scans/",
        {"image": SimpleUploadedFile("slice.png", content), "patient": str(patient.public_id)},
    )
    assert response.status_code == 400
    assert response.json()["errors"] == from_api.json()["image"]
    assert not Job.objects.exists() and not Scan.objects.exists()


def test_a_file_over_the_size_limit_is_cut_off_with_413(
    portal: Client, patient: Any, settings: Any
) -> None:
    settings.MAX_UPLOAD_BYTES = 1000
    response = send(portal, patient, png_bytes(256))
    assert response.status_code == 413
    assert response.json()["errors"] == ["The file is over the limit of 1,000 bytes."]
    assert not Job.objects.exists()


def test_two_image_parts_are_refused(portal: Client, patient: Any) -> None:
    images = [SimpleUploadedFile("a.png", png_bytes()), SimpleUploadedFile("b.png", png_bytes())]
    response = portal.post(upload_url(patient), {"image": images})
    assert response.status_code == 400
    assert "one image per request" in response.json()["errors"][0]
    assert not Job.objects.exists()


def test_a_request_without_a_file_says_so(portal: Client, patient: Any) -> None:
    response = portal.post(upload_url(patient))
    assert response.status_code == 400
    assert "multipart field 'image'" in response.json()["errors"][0]


def test_upload_needs_the_csrf_token(clinician: Any, patient: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician)
    assert send(client, patient, png_bytes()).status_code == 403
    assert not Job.objects.exists()


def test_the_patient_page_has_the_upload_form_and_lists_jobs_newest_first(
    portal: Client, patient: Any
) -> None:
    first = send(portal, patient, png_bytes(seed=1)).json()["job"]["id"]
    second = send(portal, patient, png_bytes(seed=2)).json()["job"]["id"]
    page = portal.get(f"/patients/{patient.public_id}/").content.decode()
    assert 'type="file"' in page and "multiple" in page and 'id="dropzone"' in page
    assert page.index(second) < page.index(first)
    assert page.count('data-finished="false"') == 2


def test_the_upload_answer_carries_the_servers_own_row_and_upload_line(
    portal: Client, patient: Any
) -> None:
    body = send(portal, patient, png_bytes(seed=11), name="axial 7.png").json()
    job_id = body["job"]["id"]
    assert body["row_html"].startswith(f'<tr id="job-{job_id}"')
    assert f'hx-get="/jobs/{job_id}/row/" hx-trigger="every 2s"' in body["row_html"]
    assert "axial 7.png" in body["row_html"]
    assert (
        f'href="/jobs/{job_id}/"' in body["upload_html"]
        and "uploaded: queued" in body["upload_html"]
    )


def test_a_finished_row_and_upload_line_show_the_outcome_and_stop_polling(
    portal: Client, patient: Any
) -> None:
    from predictions.models import Prediction

    job_id = send(portal, patient, png_bytes(seed=12), name="b.png").json()["job"]["id"]
    job = Job.objects.get(public_id=job_id)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    Prediction.objects.create(
        job=job,
        label="no_tumor",
        probabilities={"glioma": 0.1, "meningioma": 0.1, "no_tumor": 0.7, "pituitary": 0.1},
        model_version="m",
        inference_ms=1.0,
    )
    row = portal.get(f"/jobs/{job_id}/row/", HTTP_HX_REQUEST="true").content.decode()
    line = portal.get(f"/jobs/{job_id}/upload-item/", HTTP_HX_REQUEST="true").content.decode()
    for html in (row, line):
        assert "hx-get" not in html and "No tumour" in html and "70%" in html
    assert f'href="/jobs/{job_id}/"' in line
