"""Bodies over the limit and chunked bodies are refused before anything reads them, in the
shape the caller reads: JSON for the API and the portal's uploader, a page for a browser."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from predictions.models import Job

pytestmark = pytest.mark.django_db


def test_a_declared_oversized_body_is_a_413_page_for_a_browser(
    portal: Client, patient: Any
) -> None:
    response = portal.post(
        f"/patients/{patient.public_id}/scans/",
        data=b"",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(200 << 20),
        HTTP_ACCEPT="text/html,application/xhtml+xml",
    )
    assert response.status_code == 413
    assert "The request is 209,715,200 bytes" in response.content.decode()
    assert not Job.objects.exists()


def test_a_declared_oversized_body_is_json_for_the_uploader(portal: Client, patient: Any) -> None:
    response = portal.post(
        f"/patients/{patient.public_id}/scans/",
        data=b"",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(200 << 20),
    )
    assert response.status_code == 413
    assert response.json()["errors"][0].startswith("The request is 209,715,200 bytes")


def test_a_chunked_body_is_a_411(api: Any) -> None:
    response = api.post(
        "/api/v1/patients/", {"external_id": "MRN-1"}, HTTP_TRANSFER_ENCODING="chunked"
    )
    assert response.status_code == 411
    assert "chunked transfer encoding is not accepted" in response.json()["detail"]
