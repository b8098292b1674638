from __future__ import annotations

import base64
from typing import Any

import pytest
from rest_framework.test import APIClient

from predictions.models import Job, Prediction
from tests.factories import JobFactory, UserFactory

SECRET = "test-worker-secret"
PROBABILITIES = {"glioma": 0.1, "meningioma": 0.7, "no_tumor": 0.1, "pituitary": 0.1}


@pytest.fixture
def worker_api(settings: Any) -> APIClient:
    settings.WORKER_SECRET = SECRET
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Worker {SECRET}")
    return client


@pytest.fixture
def job(db: None) -> Job:
    return JobFactory()


def url(job: Job, step: str) -> str:
    return f"/api/v1/internal/jobs/{job.public_id}/{step}/"


def result_body(**changes: Any) -> dict[str, Any]:
    body = {
        "version": 1,
        "label": "meningioma",
        "probabilities": PROBABILITIES,
        "model_version": "m-1",
        "inference_ms": 9.5,
        "worker": "cpu@host",
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


def test_a_failure_is_recorded_with_its_reason(worker_api: Any, job: Job) -> None:
    body = {"reason": "cannot decode", "worker": "cpu@host"}
    assert worker_api.post(url(job, "failure"), body, format="json").json() == {"recorded": True}
    job.refresh_from_db()
    assert (job.status, job.error) == ("failed", "cannot decode")
    assert job.finished_at is not None


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
}


@pytest.mark.parametrize("change", INVALID_RESULTS.values(), ids=list(INVALID_RESULTS))
def test_invalid_results_are_refused(worker_api: Any, job: Job, change: dict[str, Any]) -> None:
    response = worker_api.post(url(job, "result"), result_body(**change), format="json")
    assert response.status_code == 400
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
    assert method(url(job, step)).status_code in (401, 403)
    job.refresh_from_db()
    assert job.status == "queued"


def test_a_clinician_cannot_use_the_worker_endpoints(job: Job) -> None:
    client = APIClient()
    client.force_authenticate(UserFactory())
    assert client.post(url(job, "start"), {"worker": "x"}, format="json").status_code == 403


def test_an_unknown_job_is_a_404(worker_api: Any, db: None) -> None:
    missing = "/api/v1/internal/jobs/00000000-0000-0000-0000-000000000000/start/"
    assert worker_api.post(missing, {"worker": "w"}, format="json").status_code == 404
