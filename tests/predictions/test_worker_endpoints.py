from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from predictions.models import Job, Prediction
from tests.factories import JobFactory, UserFactory
from tests.predictions.conftest import WORKER_SECRET as SECRET
from workers.contracts import CONTRACT_VERSION, FailureCode, FailureReport, PredictionResult

PROBABILITIES = {"glioma": 0.1, "meningioma": 0.7, "no_tumor": 0.1, "pituitary": 0.1}


@pytest.fixture
def job(db: None) -> Job:
    return JobFactory()


def url(job: Job, step: str) -> str:
    return f"/api/v1/internal/jobs/{job.public_id}/{step}/"


def result_body(**changes: Any) -> dict[str, Any]:
    body = {
        "version": CONTRACT_VERSION,
        "label": "meningioma",
        "probabilities": PROBABILITIES,
        "model_version": "m-1",
        "inference_ms": 9.5,
        "worker": "cpu@host",
        "needs_review": False,
        "heatmap_png": base64.b64encode(b"\x89PNG heat").decode(),
    }
    return body | changes


def test_start_marks_the_job_running_and_counts_the_attempt(worker_api: Any, job: Job) -> None:
    response = worker_api.post(url(job, "start"), {"worker": "cpu@host"}, format="json")
    assert response.json() == {"proceed": True, "attempt": 1}
    job.refresh_from_db()
    assert (job.status, job.worker, job.attempts) == ("running", "cpu@host", 1)
    assert job.started_at is not None


def test_start_of_a_finished_job_says_do_not_proceed(worker_api: Any, db: None) -> None:
    job = JobFactory(status=Job.Status.SUCCEEDED)
    response = worker_api.post(url(job, "start"), {"worker": "w"}, format="json")
    assert response.json()["proceed"] is False
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 0


def test_the_worker_downloads_the_scan(worker_api: Any, job: Job) -> None:
    response = worker_api.get(url(job, "image"))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == job.scan.image.open("rb").read()


def test_a_result_is_recorded_once(worker_api: Any, job: Job) -> None:
    first = worker_api.post(url(job, "result"), result_body(), format="json")
    second = worker_api.post(
        url(job, "result"), result_body(label="glioma", probabilities={
            "glioma": 0.7, "meningioma": 0.1, "no_tumor": 0.1, "pituitary": 0.1
        }), format="json",
    )  # fmt: skip
    assert (first.status_code, first.json()) == (200, {"recorded": True})
    assert (second.status_code, second.json()) == (200, {"recorded": False})
    job.refresh_from_db()
    assert job.status == "succeeded" and job.model_version == "m-1"
    prediction = Prediction.objects.get()
    assert prediction.label == "meningioma"
    assert prediction.heatmap.read() == b"\x89PNG heat"


def test_what_the_worker_client_sends_is_what_the_site_stores(worker_api: Any, job: Job) -> None:
    result = PredictionResult(
        job_id=str(job.public_id),
        label="meningioma",
        probabilities=PROBABILITIES,
        model_version="m-2",
        inference_ms=3.25,
        worker="gpu@host",
        needs_review=True,
        heatmap_png=b"\x89PNG",
    )
    response = worker_api.post(url(job, "result"), result.to_json(), format="json")
    assert response.json() == {"recorded": True}
    prediction = Prediction.objects.get(job=job)
    stored = (prediction.label, prediction.probabilities, prediction.model_version)
    assert stored == (result.label, result.probabilities, result.model_version)
    assert (prediction.inference_ms, prediction.needs_review) == (3.25, True)
    assert prediction.heatmap.read() == b"\x89PNG"


@pytest.mark.parametrize("needs_review", [True, False])
def test_needs_review_is_the_models_decision_not_the_sites(
    worker_api: Any, job: Job, needs_review: bool, settings: Any
) -> None:
    settings.LOW_CONFIDENCE_THRESHOLD = 0.9  # the old rule would flag this 0.7 result
    body = result_body(needs_review=needs_review)
    worker_api.post(url(job, "result"), body, format="json")
    assert Prediction.objects.get(job=job).needs_review is needs_review


@pytest.mark.parametrize(("threshold", "flagged"), [(0.9, True), (0.5, False)])
def test_a_version_1_result_gets_the_old_low_confidence_rule(
    worker_api: Any, job: Job, settings: Any, threshold: float, flagged: bool
) -> None:
    settings.LOW_CONFIDENCE_THRESHOLD = threshold
    body = result_body(version=1)
    del body["needs_review"]
    assert worker_api.post(url(job, "result"), body, format="json").json() == {"recorded": True}
    assert Prediction.objects.get(job=job).needs_review is flagged


def test_a_version_2_result_must_say_whether_it_needs_review(worker_api: Any, job: Job) -> None:
    body = result_body()
    del body["needs_review"]
    response = worker_api.post(url(job, "result"), body, format="json")
    assert response.status_code == 400
    assert "needs_review" in response.json()


def test_a_failure_is_recorded_with_its_code_and_reason(worker_api: Any, job: Job) -> None:
    report = FailureReport(str(job.public_id), FailureCode.NOT_BRAIN_MRI, "a photo", "cpu@host")
    response = worker_api.post(url(job, "failure"), report.to_json(), format="json")
    assert response.json() == {"recorded": True}
    job.refresh_from_db()
    assert (job.status, job.failure_code, job.error) == ("failed", "not_brain_mri", "a photo")
    assert job.worker == "cpu@host" and job.finished_at is not None


def test_a_version_1_failure_without_a_code_is_a_worker_error(worker_api: Any, job: Job) -> None:
    body = {"reason": "cannot decode", "worker": "cpu@host"}
    assert worker_api.post(url(job, "failure"), body, format="json").json() == {"recorded": True}
    job.refresh_from_db()
    assert (job.failure_code, job.error) == ("worker_error", "cannot decode")


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "r", "version": 2},
        {"reason": "r", "version": 2, "failure_code": "bored"},
        {"reason": "r", "version": 99, "failure_code": "timeout"},
    ],
    ids=["version 2 without a code", "unknown code", "other contract version"],
)
def test_invalid_failures_are_refused(worker_api: Any, job: Job, body: dict[str, Any]) -> None:
    assert worker_api.post(url(job, "failure"), body, format="json").status_code == 400
    job.refresh_from_db()
    assert job.status == "queued"


def test_a_failure_after_success_changes_nothing(worker_api: Any, job: Job) -> None:
    worker_api.post(url(job, "result"), result_body(), format="json")
    response = worker_api.post(url(job, "failure"), {"reason": "late"}, format="json")
    assert response.json() == {"recorded": False}
    job.refresh_from_db()
    assert job.status == "succeeded" and job.error == ""


INVALID_RESULTS = {
    "unknown label": {"label": "tumour"},
    "missing class": {"probabilities": {"glioma": 1.0}},
    "not summing to one": {"probabilities": dict.fromkeys(PROBABILITIES, 0.5)},
    "label not the top class": {"label": "glioma"},
    "negative time": {"inference_ms": -1},
    "other contract version": {"version": 99},
    "heat map not base64": {"heatmap_png": "***"},
    "heat map with a null character": {"heatmap_png": "iVBO\x00Rw=="},
    "heat map not text": {"heatmap_png": ["iVBORw=="]},
}


@pytest.mark.parametrize("change", INVALID_RESULTS.values(), ids=list(INVALID_RESULTS))
def test_invalid_results_are_refused(worker_api: Any, job: Job, change: dict[str, Any]) -> None:
    response = worker_api.post(url(job, "result"), result_body(**change), format="json")
    assert response.status_code == 400
    job.refresh_from_db()
    assert job.status == "queued"


def test_a_heat_map_with_a_surrogate_character_is_refused(worker_api: Any, job: Job) -> None:
    # json.dumps escapes the lone surrogate, as a client's JSON library would send it.
    body = json.dumps(result_body(heatmap_png="iVBO\ud800Rw=="))
    response = worker_api.post(url(job, "result"), body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"heatmap_png": ["heatmap_png must be base64"]}
    job.refresh_from_db()
    assert job.status == "queued"


@pytest.mark.parametrize("header", [None, "Worker wrong-secret", "Token abc", "Worker"])
@pytest.mark.parametrize("step", ["start", "image", "result", "failure"])
def test_refuses_requests_without_the_worker_secret(
    settings: Any, job: Job, header: str | None, step: str
) -> None:
    settings.WORKER_SECRET = SECRET
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    method = client.get if step == "image" else client.post
    response = method(url(job, step))
    # Unauthenticated (no secret, a wrong one, another scheme): 401 with the scheme to use.
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Worker"
    job.refresh_from_db()
    assert job.status == "queued"


def test_a_clinician_cannot_use_the_worker_endpoints(job: Job) -> None:
    client = APIClient()
    client.force_authenticate(UserFactory())
    assert client.post(url(job, "start"), {"worker": "x"}, format="json").status_code == 403


def test_an_unknown_job_is_a_404(worker_api: Any, db: None) -> None:
    missing = "/api/v1/internal/jobs/00000000-0000-0000-0000-000000000000/start/"
    assert worker_api.post(missing, {"worker": "w"}, format="json").status_code == 404
