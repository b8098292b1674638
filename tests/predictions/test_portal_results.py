"""The result page, reviews and retries."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.core.files.base import ContentFile
from django.test import Client
from django.utils.html import escape
from PIL import Image

from predictions import reviews
from predictions.models import AWAITING_DISPATCH_NOTE, Job, Review
from tests.factories import JobFactory, PredictionFactory

pytestmark = pytest.mark.django_db


def test_the_result_shows_label_bars_heatmap_model_and_timings(
    portal: Client, patient: Any
) -> None:
    prediction = PredictionFactory(job__scan__patient=patient, job__worker="gpu-1@host")
    prediction.heatmap.save("h.png", ContentFile(png_of_mode("RGBA")), save=True)
    page = portal.get(f"/jobs/{prediction.job.public_id}/").content.decode()
    assert 'id="predicted-label" data-label="glioma">Glioma<' in page
    assert page.count('class="bar"') == 4 and "85.0%" in page
    assert 'id="heatmap-toggle"' in page and f"/jobs/{prediction.job.public_id}/heatmap/" in page
    assert 'id="heatmap-opacity"' in page and 'id="side-by-side-toggle"' in page
    assert 'class="legend-ramp"' in page and "older worker" not in page
    assert "test-model" in page
    assert "gpu-1@host" in page and "12.5 ms" in page
    assert "needs review" not in page


def png_of_mode(mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (8, 5)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_palette_layer_with_opacities_is_shown_over_the_scan(
    portal: Client, prediction: Any
) -> None:
    see_through = Image.new("P", (8, 5))
    see_through.putpalette(bytes(range(256)) * 4, rawmode="RGBA")
    buffer = io.BytesIO()
    see_through.save(buffer, format="PNG")
    prediction.heatmap.save("h.png", ContentFile(buffer.getvalue()), save=True)
    page = portal.get(f"/jobs/{prediction.job.public_id}/").content.decode()
    assert 'id="heatmap-opacity"' in page and "older worker" not in page
    # A palette without opacities is an opaque picture: beside the scan, as an old blend.
    prediction.heatmap.save("h.png", ContentFile(png_of_mode("P")), save=True)
    page = portal.get(f"/jobs/{prediction.job.public_id}/").content.decode()
    assert "older worker" in page and 'id="heatmap-opacity"' not in page


def test_an_old_blended_heat_map_is_shown_beside_the_scan_not_over_it(
    portal: Client, prediction: Any
) -> None:
    prediction.heatmap.save("h.png", ContentFile(png_of_mode("RGB")), save=True)
    page = portal.get(f"/jobs/{prediction.job.public_id}/").content.decode()
    assert "older worker" in page and 'class="pane pane-legacy"' in page
    assert 'id="heatmap-opacity"' not in page and 'class="heatmap"' not in page


@pytest.mark.parametrize("needs_review", [True, False])
def test_needs_review_shows_the_models_stored_decision(
    portal: Client, patient: Any, settings: Any, needs_review: bool
) -> None:
    settings.LOW_CONFIDENCE_THRESHOLD = 0.9  # the old rule would flag the factory's 0.85
    prediction = PredictionFactory(job__scan__patient=patient, needs_review=needs_review)
    page = portal.get(f"/jobs/{prediction.job.public_id}/").content.decode()
    assert ("needs review" in page) is needs_review
    [state] = portal.get(f"/jobs/status/?id={prediction.job.public_id}").json()["jobs"]
    assert state["needs_review"] is needs_review
    rows = portal.get(f"/patients/{patient.public_id}/").content.decode()
    assert ("needs review" in rows) is needs_review


def test_review_stores_who_and_when_and_shows_it(
    portal: Client, clinician: Any, prediction: Any
) -> None:
    url = f"/jobs/{prediction.job.public_id}/"
    with time_machine.travel(datetime(2026, 3, 4, 10, 30, tzinfo=UTC), tick=False):
        response = portal.post(f"{url}review/", {"label": "meningioma", "comment": " rim "})
    assert response.status_code == 302 and response["Location"] == url
    review = Review.objects.get(job=prediction.job)
    assert (review.label, review.confirmed, review.comment) == ("meningioma", False, "rim")
    assert review.reviewed_by == clinician
    assert review.reviewed_at == datetime(2026, 3, 4, 10, 30, tzinfo=UTC)
    page = portal.get(url).content.decode()
    assert "Corrected</strong> to Meningioma (model said Glioma)" in page
    assert f"by {clinician.username} on 2026-03-04 10:30" in page


def test_a_second_review_is_a_new_row_and_the_first_stays_as_history(
    portal: Client, prediction: Any
) -> None:
    url = f"/jobs/{prediction.job.public_id}/review/"
    with time_machine.travel(datetime(2026, 3, 4, 10, 0, tzinfo=UTC), tick=False):
        portal.post(url, {"label": "pituitary", "comment": "sellar mass?"})
    with time_machine.travel(datetime(2026, 3, 4, 11, 0, tzinfo=UTC), tick=False):
        portal.post(url, {"label": "glioma"})
    latest, first = Review.objects.filter(job=prediction.job)
    assert (latest.label, latest.confirmed) == ("glioma", True)
    assert (first.label, first.confirmed, first.comment) == ("pituitary", False, "sellar mass?")
    page = portal.get(f"/jobs/{prediction.job.public_id}/").content.decode()
    assert "<strong>Confirmed</strong> as Glioma" in page
    assert 'id="review-history"' in page and "Pituitary tumour by" in page


def test_the_review_form_preselects_no_label(portal: Client, prediction: Any) -> None:
    page = portal.get(f"/jobs/{prediction.job.public_id}/").content.decode()
    assert 'name="label"' in page and "checked" not in page


@pytest.mark.parametrize("label", ["", "astrocytoma"])
def test_review_needs_one_of_the_four_labels(portal: Client, prediction: Any, label: str) -> None:
    portal.post(f"/jobs/{prediction.job.public_id}/review/", {"label": label})
    assert not Review.objects.exists()


def test_a_review_without_a_label_says_to_choose_one(portal: Client, prediction: Any) -> None:
    url = f"/jobs/{prediction.job.public_id}/review/"
    page = portal.post(url, {"label": ""}, follow=True).content.decode()
    assert "Choose one of the four labels." in page


def test_a_review_comment_over_the_limit_is_refused_for_its_length(
    portal: Client, prediction: Any
) -> None:
    url = f"/jobs/{prediction.job.public_id}/review/"
    response = portal.post(url, {"label": "glioma", "comment": "x" * 2001}, follow=True)
    page = response.content.decode()
    assert "The comment is 2001 characters long; the limit is 2000 characters." in page
    assert "Choose one of the four labels" not in page
    assert not Review.objects.exists()


def test_recording_a_review_refuses_a_comment_over_the_limit(
    clinician: Any, prediction: Any
) -> None:
    with pytest.raises(ValueError, match="the limit is 2,000 characters"):
        reviews.record_review(prediction.job, "glioma", "x" * 2001, clinician)
    reviews.record_review(prediction.job, "glioma", "x" * 2000, clinician)
    assert len(Review.objects.get().comment) == 2000


def test_an_unfinished_job_cannot_be_reviewed(portal: Client, patient: Any) -> None:
    job = JobFactory(scan__patient=patient)
    portal.post(f"/jobs/{job.public_id}/review/", {"label": "glioma"})
    assert not Review.objects.exists()


def test_a_failed_job_shows_its_reason_and_retries_as_a_new_job(
    portal: Client, patient: Any, django_capture_on_commit_callbacks: Any
) -> None:
    failed = JobFactory(scan__patient=patient, status=Job.Status.FAILED, error="Model exploded.")
    page = portal.get(f"/jobs/{failed.public_id}/").content.decode()
    assert "Model exploded." in page and "Retry this scan" in page
    with django_capture_on_commit_callbacks() as callbacks:
        response = portal.post(f"/jobs/{failed.public_id}/retry/")
    retried = Job.objects.exclude(pk=failed.pk).get()
    assert response["Location"] == f"/jobs/{retried.public_id}/"
    assert (retried.scan, retried.status) == (failed.scan, Job.Status.QUEUED)
    assert len(callbacks) == 1
    failed.refresh_from_db()
    assert failed.status == Job.Status.FAILED  # kept as history


def test_not_a_brain_mri_is_shown_as_an_outcome_without_retry(portal: Client, patient: Any) -> None:
    job = JobFactory(
        scan__patient=patient,
        status=Job.Status.FAILED,
        failure_code="not_brain_mri",
        error="The image looks like a photograph.",
    )
    page = portal.get(f"/jobs/{job.public_id}/").content.decode()
    assert "Not a brain MRI slice" in page and "The image looks like a photograph." in page
    assert "Retry this scan" not in page and "The job failed" not in page
    assert 'id="predicted-label"' not in page
    [state] = portal.get(f"/jobs/status/?id={job.public_id}").json()["jobs"]
    assert (state["failure_code"], state["outcome"]) == ("not_brain_mri", "Not a brain MRI slice")
    assert state["can_retry"] is False and state["label"] is None
    assert state["status_text"] == "failed"  # the API's word; the outcome says why
    assert "status-outcome" in page and "status-failed" not in page  # an answer, not red
    rows = portal.get(f"/patients/{patient.public_id}/").content.decode()
    assert "Not a brain MRI slice" in rows
    portal.post(f"/jobs/{job.public_id}/retry/")
    assert Job.objects.count() == 1  # a retry cannot change the answer


def test_the_dashboard_lists_errors_but_not_outcomes_as_failures(
    portal: Client, patient: Any
) -> None:
    JobFactory(scan__patient=patient, status=Job.Status.FAILED, failure_code="timeout",
               error="Took too long.")  # fmt: skip
    JobFactory(scan__patient=patient, status=Job.Status.FAILED, failure_code="not_brain_mri",
               error="A photograph.")  # fmt: skip
    failures = list(portal.get("/").context["failures"])
    assert [job.failure_code for job in failures] == ["timeout"]


def test_only_a_failed_job_can_be_retried(portal: Client, prediction: Any) -> None:
    response = portal.post(f"/jobs/{prediction.job.public_id}/retry/")
    assert response.status_code == 302
    assert Job.objects.count() == 1


def test_an_unfinished_job_page_polls_for_its_status(portal: Client, patient: Any) -> None:
    job = JobFactory(scan__patient=patient, status=Job.Status.RUNNING)
    page = portal.get(f"/jobs/{job.public_id}/").content.decode()
    assert f'hx-get="/jobs/{job.public_id}/badge/" hx-trigger="every 2s"' in page
    badge = portal.get(f"/jobs/{job.public_id}/badge/", HTTP_HX_REQUEST="true")
    assert badge.status_code == 200 and ">running</span>" in badge.content.decode()
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    finished = portal.get(f"/jobs/{job.public_id}/badge/", HTTP_HX_REQUEST="true")
    assert finished["HX-Refresh"] == "true", "htmx reloads the page to show the result"


def test_a_job_waiting_for_the_broker_says_so_on_its_page_and_in_the_status_poll(
    portal: Client, patient: Any
) -> None:
    waiting = JobFactory(scan__patient=patient, dispatched_at=None)
    sent = JobFactory(scan__patient=patient)
    note = escape(AWAITING_DISPATCH_NOTE)
    assert note in portal.get(f"/jobs/{waiting.public_id}/").content.decode()
    assert note not in portal.get(f"/jobs/{sent.public_id}/").content.decode()
    polled = portal.get("/jobs/status/", {"id": [waiting.public_id, sent.public_id]}).json()
    notes = {job["id"]: job["note"] for job in polled["jobs"]}
    assert notes == {str(waiting.public_id): AWAITING_DISPATCH_NOTE, str(sent.public_id): ""}
    patient_page = portal.get(f"/patients/{patient.public_id}/").content.decode()
    assert patient_page.count(note) == 1
