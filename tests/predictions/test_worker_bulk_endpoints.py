"""Contract 3's bulk endpoints: start many jobs, post many outcomes, each item on its own."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from predictions.models import Job, Prediction
from tests.factories import JobFactory, UserFactory
from tests.predictions.conftest import WORKER_SECRET as SECRET
from tests.predictions.test_worker_endpoints import PROBABILITIES, result_body
from workers.contracts import CONTRACT_VERSION, MAX_BULK_ITEMS

START = "/api/v1/internal/jobs/start/"
OUTCOMES = "/api/v1/internal/jobs/outcomes/"
UNKNOWN = "00000000-0000-0000-0000-000000000000"

pytestmark = pytest.mark.django_db


def failure_body(job: Job, **changes: Any) -> dict[str, Any]:
    body = {"id": str(job.public_id), "version": CONTRACT_VERSION, "failure_code": "invalid_image",
            "reason": "truncated", "worker": "cpu@host"}  # fmt: skip
    return body | changes


def result_item(job: Job, **changes: Any) -> dict[str, Any]:
    return {"id": str(job.public_id)} | result_body(**changes)


def test_bulk_start_starts_each_job_and_answers_in_order(worker_api: Any) -> None:
    queued, finished = JobFactory(), JobFactory(status=Job.Status.SUCCEEDED)
    ids = [str(queued.public_id), str(finished.public_id)]
    response = worker_api.post(START, {"worker": "cpu@host", "jobs": ids}, format="json")
    assert response.status_code == 200
    assert response.json()["jobs"] == [
        {"id": ids[0], "proceed": True, "attempt": 1},
        {"id": ids[1], "proceed": False, "reason": "the job has already finished"},
    ]
    queued.refresh_from_db()
    finished.refresh_from_db()
    assert (queued.status, queued.worker, queued.attempts) == ("running", "cpu@host", 1)
    assert (finished.status, finished.attempts) == ("succeeded", 0)


def test_bulk_start_reports_unknown_and_malformed_ids_per_item(worker_api: Any) -> None:
    job = JobFactory()
    ids = [UNKNOWN, "not-a-uuid", str(job.public_id)]
    response = worker_api.post(START, {"worker": "w", "jobs": ids}, format="json")
    assert response.status_code == 200
    assert response.json()["jobs"] == [
        {"id": UNKNOWN, "error": "no such job"},
        {"id": "not-a-uuid", "error": "not a job id"},
        {"id": str(job.public_id), "proceed": True, "attempt": 1},
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"jobs": [UNKNOWN]}, "worker"),
        ({"worker": "w"}, "jobs"),
        ({"worker": "w", "jobs": []}, "jobs"),
        ({"worker": "w", "jobs": UNKNOWN}, "jobs"),
        ({"worker": "w", "jobs": [UNKNOWN] * (MAX_BULK_ITEMS + 1)}, str(MAX_BULK_ITEMS)),
    ],
)
def test_bulk_start_refuses_a_malformed_request(
    worker_api: Any, body: dict[str, Any], message: str
) -> None:
    job = JobFactory()
    response = worker_api.post(START, body, format="json")
    assert response.status_code == 400
    assert message in response.content.decode()
    job.refresh_from_db()
    assert job.status == "queued" and job.attempts == 0


def test_bulk_outcomes_record_results_and_failures(worker_api: Any) -> None:
    first, second, third = JobFactory(), JobFactory(), JobFactory()
    body = {"results": [result_item(first), result_item(second, label="meningioma")],
            "failures": [failure_body(third)]}  # fmt: skip
    response = worker_api.post(OUTCOMES, body, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "results": [{"id": str(first.public_id), "recorded": True},
                    {"id": str(second.public_id), "recorded": True}],
        "failures": [{"id": str(third.public_id), "recorded": True}],
    }  # fmt: skip
    assert Prediction.objects.filter(job__in=[first, second]).count() == 2
    third.refresh_from_db()
    assert (third.status, third.failure_code, third.error) == (
        "failed",
        "invalid_image",
        "truncated",
    )


def test_a_second_bulk_post_changes_nothing(worker_api: Any) -> None:
    done, failed = JobFactory(), JobFactory()
    body = {"results": [result_item(done)], "failures": [failure_body(failed)]}
    first = worker_api.post(OUTCOMES, body, format="json")
    flipped = {"results": [result_item(failed)],
               "failures": [failure_body(done, failure_code="timeout", reason="late")]}  # fmt: skip
    again = worker_api.post(OUTCOMES, body, format="json")
    other = worker_api.post(OUTCOMES, flipped, format="json")

    assert [item["recorded"] for item in first.json()["results"] + first.json()["failures"]] == [
        True,
        True,
    ]
    for response in (again, other):
        assert response.status_code == 200
        items = response.json()["results"] + response.json()["failures"]
        assert [item["recorded"] for item in items] == [False, False]
    done.refresh_from_db()
    failed.refresh_from_db()
    assert done.status == "succeeded" and failed.status == "failed"
    assert failed.failure_code == "invalid_image" and failed.error == "truncated"
    assert Prediction.objects.get().job == done


def test_an_invalid_item_is_refused_alone_and_the_others_are_recorded(worker_api: Any) -> None:
    good, bad_label, unknown_ok = JobFactory(), JobFactory(), JobFactory()
    body = {
        "results": [
            result_item(good),
            result_item(bad_label, label="glioma"),  # not the most probable class
            {"id": UNKNOWN} | result_body(),
            {"id": "nope"} | result_body(),
            result_body(),  # no id at all
        ],
        "failures": [failure_body(unknown_ok, failure_code="no_such_code")],
    }
    response = worker_api.post(OUTCOMES, body, format="json")
    assert response.status_code == 200
    results, failures = response.json()["results"], response.json()["failures"]
    assert results[0] == {"id": str(good.public_id), "recorded": True}
    assert "label must be the most probable class" in str(results[1]["error"])
    assert results[2] == {"id": UNKNOWN, "error": "no such job"}
    assert results[3] == {"id": "nope", "error": "not a job id"}
    assert results[4] == {"id": None, "error": "not a job id"}
    assert "failure_code" in failures[0]["error"]
    bad_label.refresh_from_db()
    unknown_ok.refresh_from_db()
    assert bad_label.status == "queued" and unknown_ok.status == "queued"
    assert Prediction.objects.get().job == good


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "at least one"),
        ({"results": [], "failures": []}, "at least one"),
        ({"results": "x"}, "results"),
        ({"results": ["not an object"]}, "results"),
        ({"failures": [{"id": UNKNOWN}] * (MAX_BULK_ITEMS + 1)}, str(MAX_BULK_ITEMS)),
        ({"results": [{"id": UNKNOWN}] * MAX_BULK_ITEMS, "failures": [{"id": UNKNOWN}]},
         str(MAX_BULK_ITEMS)),
    ],
)  # fmt: skip
def test_bulk_outcomes_refuse_a_malformed_request(
    worker_api: Any, body: dict[str, Any], message: str
) -> None:
    response = worker_api.post(OUTCOMES, body, format="json")
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.parametrize("header", [None, "Worker wrong-secret", "Token abc", "Worker"])
@pytest.mark.parametrize("endpoint", [START, OUTCOMES])
def test_bulk_endpoints_refuse_requests_without_the_worker_secret(
    settings: Any, header: str | None, endpoint: str
) -> None:
    settings.WORKER_SECRET = SECRET
    job = JobFactory()
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    body = {"worker": "w", "jobs": [str(job.public_id)], "results": [result_item(job)]}
    response = client.post(endpoint, body, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Worker"
    job.refresh_from_db()
    assert job.status == "queued" and job.attempts == 0


def test_a_clinician_cannot_use_the_bulk_endpoints() -> None:
    job = JobFactory()
    client = APIClient()
    client.force_authenticate(UserFactory())
    body = {"worker": "w", "jobs": [str(job.public_id)]}
    assert client.post(START, body, format="json").status_code == 403
    assert client.post(OUTCOMES, {"results": [result_item(job)]}, format="json").status_code == 403


def test_a_version_2_worker_is_still_served_by_the_per_job_endpoints(worker_api: Any) -> None:
    job = JobFactory()
    base = f"/api/v1/internal/jobs/{job.public_id}"
    started = worker_api.post(f"{base}/start/", {"worker": "old@host"}, format="json")
    assert started.json() == {"proceed": True, "attempt": 1}
    posted = worker_api.post(f"{base}/result/", result_body(version=2), format="json")
    assert posted.json() == {"recorded": True}
    assert Prediction.objects.get(job=job).probabilities == PROBABILITIES


def test_results_of_versions_1_to_3_are_accepted_in_bulk(worker_api: Any) -> None:
    jobs = [JobFactory() for _ in range(3)]
    items = [
        result_item(job, version=version) for job, version in zip(jobs, (1, 2, 3), strict=True)
    ]
    del items[0]["needs_review"]
    response = worker_api.post(OUTCOMES, {"results": items}, format="json")
    assert [item.get("recorded") for item in response.json()["results"]] == [True, True, True]
    assert uuid.UUID(response.json()["results"][0]["id"]) == jobs[0].public_id
