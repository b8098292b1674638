"""GET/POST /api/v1/jobs/{id}/reviews/: verdicts for other systems, kept as a history."""

from __future__ import annotations

from typing import Any

import pytest

from predictions.models import Review
from tests.factories import JobFactory, ScanFactory

pytestmark = pytest.mark.django_db


def url(job: Any) -> str:
    return f"/api/v1/jobs/{job.public_id}/reviews/"


def test_posting_adds_a_review_and_listing_shows_the_history_newest_first(
    api: Any, prediction: Any, clinician: Any
) -> None:
    first = api.post(url(prediction.job), {"label": "meningioma", "comment": "dural tail"})
    assert first.status_code == 201
    assert first.json()["confirmed"] is False and first.json()["reviewer"] == clinician.username
    api.post(url(prediction.job), {"label": "glioma", "model_answer_shown": False}, format="json")
    body = api.get(url(prediction.job)).json()
    assert [(r["label"], r["confirmed"], r["model_answer_shown"]) for r in body] == [
        ("glioma", True, False),
        ("meningioma", False, True),
    ]
    assert Review.objects.filter(job=prediction.job).count() == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [({"label": "astrocytoma"}, "is not a valid choice"), ({}, "This field is required")],
)
def test_a_bad_review_is_a_400_with_a_reason(
    api: Any, prediction: Any, body: dict[str, str], message: str
) -> None:
    response = api.post(url(prediction.job), body)
    assert response.status_code == 400 and message in str(response.json())
    assert not Review.objects.exists()


def test_an_unfinished_job_cannot_be_reviewed(api: Any, patient: Any) -> None:
    job = JobFactory(scan=ScanFactory(patient=patient))
    response = api.post(url(job), {"label": "glioma"})
    assert response.status_code == 400 and "only a finished result" in str(response.json())


def test_another_organisation_gets_a_404_both_ways(outsider_api: Any, prediction: Any) -> None:
    assert outsider_api.get(url(prediction.job)).status_code == 404
    assert outsider_api.post(url(prediction.job), {"label": "glioma"}).status_code == 404
    assert not Review.objects.exists()


def test_anonymous_is_refused(anonymous_api: Any, prediction: Any) -> None:
    assert anonymous_api.get(url(prediction.job)).status_code == 401
    assert anonymous_api.post(url(prediction.job), {"label": "glioma"}).status_code == 401
