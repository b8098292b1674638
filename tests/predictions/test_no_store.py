from __future__ import annotations

from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from tests.factories import PredictionFactory, ScanFactory


@pytest.fixture
def prediction(patient: Any) -> Any:
    prediction = PredictionFactory(job__scan=ScanFactory(patient=patient))
    prediction.heatmap.save("h.png", ContentFile(b"\x89PNG fake"))
    return prediction


def _api_urls(prediction: Any) -> list[str]:
    job, scan = prediction.job, prediction.job.scan
    return [
        "/api/v1/jobs/",
        f"/api/v1/jobs/{job.public_id}/",
        f"/api/v1/jobs/{job.public_id}/heatmap/",
        f"/api/v1/scans/{scan.public_id}/",
        f"/api/v1/scans/{scan.public_id}/image/",
        f"/api/v1/patients/{scan.patient.public_id}/",
    ]


def _portal_urls(prediction: Any) -> list[str]:
    job, scan = prediction.job, prediction.job.scan
    return [
        "/",
        f"/patients/{scan.patient.public_id}/",
        f"/jobs/{job.public_id}/",
        f"/jobs/{job.public_id}/heatmap/",
        f"/scans/{scan.public_id}/image/",
    ]


def _assert_no_store(response: Any) -> None:
    assert response.status_code == 200, response
    assert "no-store" in response["Cache-Control"]


def test_api_responses_with_patient_data_are_never_stored(api: Any, prediction: Any) -> None:
    for url in _api_urls(prediction):
        _assert_no_store(api.get(url))


def test_portal_pages_and_images_are_never_stored(portal: Client, prediction: Any) -> None:
    for url in _portal_urls(prediction):
        _assert_no_store(portal.get(url))
