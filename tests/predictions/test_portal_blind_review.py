"""Blind reading: an organisation can hide the model's answer until the reader commits."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from predictions.models import Review
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def blind(organisation: Any) -> Any:
    organisation.hide_model_until_review = True
    organisation.save()
    return organisation


def test_a_blind_organisation_hides_label_probabilities_and_heat_map(
    portal: Client, blind: Any, prediction: Any
) -> None:
    prediction.heatmap.save("h.png", ContentFile(b"\x89PNG\r\n\x1a\n"), save=True)
    job = prediction.job
    page = portal.get(f"/jobs/{job.public_id}/").content.decode()
    assert "Model's answer hidden" in page
    assert 'id="predicted-label"' not in page and "85.0%" not in page
    assert f"/jobs/{job.public_id}/heatmap/" not in page
    [state] = portal.get(f"/jobs/status/?id={job.public_id}").json()["jobs"]
    assert state["label"] is None and state["confidence"] is None and state["answer_hidden"]
    rows = portal.get(f"/patients/{job.scan.patient.public_id}/").content.decode()
    assert "hidden until your review" in rows and 'data-label="glioma"' not in rows


def test_committing_a_blind_reading_reveals_the_answer_and_records_it_as_blind(
    portal: Client, blind: Any, prediction: Any, clinician: Any
) -> None:
    job = prediction.job
    portal.post(f"/jobs/{job.public_id}/review/", {"label": "meningioma"})
    review = Review.objects.get()
    assert (review.label, review.model_answer_shown, review.reviewed_by) == (
        "meningioma",
        False,
        clinician,
    )
    page = portal.get(f"/jobs/{job.public_id}/").content.decode()
    assert 'id="predicted-label" data-label="glioma"' in page and "(read blind)" in page
    portal.post(f"/jobs/{job.public_id}/review/", {"label": "glioma"})
    assert Review.objects.filter(job=job).first().model_answer_shown is True


def test_another_readers_review_does_not_reveal_the_answer(
    portal: Client, blind: Any, prediction: Any
) -> None:
    colleague = UserFactory(membership__organisation=blind)
    Review.objects.create(job=prediction.job, label="glioma", confirmed=True, reviewed_by=colleague)
    page = portal.get(f"/jobs/{prediction.job.public_id}/").content.decode()
    assert "Model's answer hidden" in page


def test_an_organisation_that_does_not_read_blind_shows_the_answer(
    portal: Client, prediction: Any
) -> None:
    page = portal.get(f"/jobs/{prediction.job.public_id}/").content.decode()
    assert "Model's answer hidden" not in page and 'id="predicted-label"' in page
    portal.post(f"/jobs/{prediction.job.public_id}/review/", {"label": "glioma"})
    assert Review.objects.get().model_answer_shown is True
