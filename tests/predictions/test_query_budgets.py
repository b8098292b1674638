"""Queries per request on the paths every job takes, so a change that adds one fails here.

The budgets are today's counts, with the clients a deployment has: a clinician with a
real API token (no cached user, membership or organisation) and a worker with its secret.
The security cache's counters (throttles, failed tokens) are database queries too.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken
from rest_framework.test import APIClient

from predictions import dispatch, jobs
from predictions.models import Job
from tests.factories import JobFactory
from tests.images import jpeg_bytes
from tests.predictions.test_worker_endpoints import result_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def token_api(clinician: Any) -> APIClient:
    _, key = AuthToken.objects.create(clinician)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def jobs_of(patient: Any) -> list[Job]:
    return JobFactory.create_batch(4, scan__patient=patient)


def submit(client: APIClient, patient: Any, **extra: str) -> Any:
    image = SimpleUploadedFile("a.jpg", jpeg_bytes(64, seed=len(extra)), "image/jpeg")
    return client.post(
        "/api/v1/scans/", {"image": image, "patient": str(patient.public_id), **extra}
    )


def result(job: Job) -> dict[str, Any]:
    return {"id": str(job.public_id), **result_body()}


# Counted inside the test's transaction: each atomic block adds a SAVEPOINT and a RELEASE.
BUDGETS = {
    "submission": 22,
    "submission, duplicates allowed": 21,
    "job status": 17,
    "claim after commit": 1,
    "image download": 2,
}
# The worker's bulk requests: a fixed part, plus a part for each job.
BULK_START = (2, 2)
BULK_OUTCOMES = (2, 5)


def test_a_submission(
    token_api: APIClient, patient: Any, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(BUDGETS["submission"]):
        assert submit(token_api, patient).status_code == 202


def test_a_submission_allowing_duplicates_skips_the_duplicate_lookup(
    token_api: APIClient, patient: Any, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(BUDGETS["submission, duplicates allowed"]):
        response = submit(token_api, patient, allow_duplicate="true")
    assert response.status_code == 202


def test_the_claim_after_the_commit(
    token_api: APIClient,
    patient: Any,
    django_assert_max_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        submit(token_api, patient)
    with (
        mock.patch.object(dispatch.app, "send_task", autospec=True) as send_task,
        django_assert_max_num_queries(BUDGETS["claim after commit"]),
    ):
        for callback in callbacks:
            callback()
    send_task.assert_called_once()


def test_a_job_status_poll(
    token_api: APIClient, jobs_of: list[Job], django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(BUDGETS["job status"]):
        assert token_api.get(f"/api/v1/jobs/{jobs_of[0].public_id}/").status_code == 200


def test_a_bulk_start_costs_a_few_queries_per_job(
    worker_api: APIClient, jobs_of: list[Job], django_assert_max_num_queries: Any
) -> None:
    ids = [str(job.public_id) for job in jobs_of]
    with django_assert_max_num_queries(BULK_START[0] + BULK_START[1] * len(ids)):
        response = worker_api.post(
            "/api/v1/internal/jobs/start/", {"worker": "w", "jobs": ids}, format="json"
        )
    assert all(item["proceed"] for item in response.json()["jobs"])


def test_an_image_download(
    worker_api: APIClient, jobs_of: list[Job], django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(BUDGETS["image download"]):
        response = worker_api.get(f"/api/v1/internal/jobs/{jobs_of[0].public_id}/image/")
    assert response.status_code == 200


def test_bulk_outcomes_cost_a_few_queries_per_job(
    worker_api: APIClient, jobs_of: list[Job], django_assert_max_num_queries: Any
) -> None:
    body = {"results": [result(job) for job in jobs_of]}
    with django_assert_max_num_queries(BULK_OUTCOMES[0] + BULK_OUTCOMES[1] * len(jobs_of)):
        response = worker_api.post("/api/v1/internal/jobs/outcomes/", body, format="json")
    assert all(item["recorded"] is True for item in response.json()["results"])


def test_the_duplicate_lookup_reads_one_index_entry_not_the_patients_scans(patient: Any) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL picks its index from table statistics; SQLite has none")
    with CaptureQueriesContext(connection) as captured:
        jobs.earlier_job_for_same_image(patient, "0" * 64)
    with connection.cursor() as cursor:
        plan = cursor.execute(f"EXPLAIN QUERY PLAN {captured[-1]['sql']}").fetchall()
    assert "scan_patient_sha256" in str(plan)
