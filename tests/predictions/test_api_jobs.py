from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from predictions.api.filters import JobFilter
from predictions.models import Job
from tests.factories import JobFactory, PredictionFactory, ScanFactory

URL = "/api/v1/jobs/"


@pytest.fixture
def job(patient: Any) -> Job:
    return JobFactory(scan=ScanFactory(patient=patient))


def test_a_queued_job_has_no_result_yet(api: Any, job: Job) -> None:
    body = api.get(f"{URL}{job.public_id}/").json()
    assert body["status"] == "queued"
    assert body["result"] is None
    fields = {"id", "status", "created", "started", "finished", "failure_code", "error", "result"}
    assert fields <= set(body)


def test_a_succeeded_job_shows_its_result(api: Any, patient: Any) -> None:
    prediction = PredictionFactory(job__scan=ScanFactory(patient=patient))
    body = api.get(f"{URL}{prediction.job.public_id}/").json()
    assert body["status"] == "succeeded"
    assert body["result"]["label"] == "glioma"
    assert body["result"]["probabilities"] == prediction.probabilities
    assert body["result"]["model_version"] == "test-model"


def test_another_organisations_job_is_a_404(outsider_api: Any, job: Job) -> None:
    assert outsider_api.get(f"{URL}{job.public_id}/").status_code == 404


def test_anonymous_is_refused(anonymous_api: Any, job: Job) -> None:
    assert anonymous_api.get(f"{URL}{job.public_id}/").status_code == 401


def test_lists_filter_by_status_and_patient(api: Any, patient: Any, job: Job) -> None:
    done = PredictionFactory(job__scan=ScanFactory(patient=patient)).job
    other_patient_job = JobFactory(scan=ScanFactory(patient__organisation=patient.organisation))
    JobFactory()  # another organisation's

    def ids(query: str) -> set[str]:
        return {row["id"] for row in api.get(f"{URL}?{query}").json()["results"]}

    assert ids("") == {str(job.public_id), str(done.public_id), str(other_patient_job.public_id)}
    assert ids("status=succeeded") == {str(done.public_id)}
    assert ids(f"patient={patient.public_id}") == {str(job.public_id), str(done.public_id)}


@pytest.mark.parametrize("query", ["status=exploded", "patient=not-a-uuid"])
def test_bad_filters_are_a_400(api: Any, db: None, query: str) -> None:
    assert api.get(f"{URL}?{query}").status_code == 400


def test_a_job_lookup_without_parameters_builds_no_filter_set(api: Any, job: Job) -> None:
    with mock.patch.object(JobFilter, "__init__", side_effect=AssertionError("built")):
        assert api.get(f"{URL}{job.public_id}/").status_code == 200


def test_a_job_lookup_with_parameters_is_still_filtered(api: Any, job: Job) -> None:
    assert api.get(f"{URL}{job.public_id}/?status=queued").status_code == 200
    assert api.get(f"{URL}{job.public_id}/?status=failed").status_code == 404
    assert api.get(f"{URL}{job.public_id}/?status=exploded").status_code == 400


def test_a_failed_job_can_be_retried_as_a_new_job(
    api: Any, patient: Any, django_capture_on_commit_callbacks: Any
) -> None:
    failed = JobFactory(scan=ScanFactory(patient=patient), status=Job.Status.FAILED)
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(f"{URL}{failed.public_id}/retry/")
    assert response.status_code == 202
    assert Job.objects.get(public_id=response.json()["id"]).scan == failed.scan
    assert len(callbacks) == 1


def test_an_unfinished_job_cannot_be_retried(api: Any, job: Job) -> None:
    assert api.post(f"{URL}{job.public_id}/retry/").status_code == 400


def test_not_a_brain_mri_shows_its_code_and_reason_and_cannot_be_retried(
    api: Any, patient: Any
) -> None:
    job = JobFactory(
        scan=ScanFactory(patient=patient),
        status=Job.Status.FAILED,
        failure_code="not_brain_mri",
        error="The image looks like a CT slice.",
    )
    body = api.get(f"{URL}{job.public_id}/").json()
    assert (body["status"], body["failure_code"]) == ("failed", "not_brain_mri")
    assert body["error"] == "The image looks like a CT slice." and body["result"] is None
    response = api.post(f"{URL}{job.public_id}/retry/")
    assert response.status_code == 400
    assert "not_brain_mri" in response.json()[0]
    assert Job.objects.count() == 1


@pytest.mark.parametrize("needs_review", [True, False])
def test_needs_review_is_the_stored_decision(
    api: Any, patient: Any, settings: Any, needs_review: bool
) -> None:
    settings.LOW_CONFIDENCE_THRESHOLD = 0.99  # the old rule would flag every result
    prediction = PredictionFactory(
        job__scan=ScanFactory(patient=patient), needs_review=needs_review
    )
    body = api.get(f"{URL}{prediction.job.public_id}/").json()
    assert body["result"]["needs_review"] is needs_review


def test_heatmap_is_served_to_its_organisation_only(
    api: Any, outsider_api: Any, patient: Any
) -> None:
    from django.core.files.base import ContentFile

    prediction = PredictionFactory(job__scan=ScanFactory(patient=patient))
    prediction.heatmap.save("h.png", ContentFile(b"\x89PNG fake"))
    url = f"{URL}{prediction.job.public_id}/heatmap/"
    assert api.get(url).status_code == 200
    assert outsider_api.get(url).status_code == 404


def test_the_openapi_schema_describes_the_api_but_not_the_worker_endpoints(
    client: Any, db: None
) -> None:
    # db: the schema is throttled per address like the rest of the API (predictions/security).
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/v1/scans/" in schema["paths"]
    assert not any("internal" in path for path in schema["paths"])
    assert client.get("/api/docs/").status_code == 200


def test_the_schema_documents_the_list_filters(client: Any, db: None) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    jobs = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/jobs/"]["get"]["parameters"]}
    assert jobs["status"]["enum"] == ["failed", "queued", "running", "succeeded"]
    assert jobs["patient"]["format"] == "uuid"
    assert "not_brain_mri" in jobs["failure_code"]["enum"]
    patients = schema["paths"]["/api/v1/patients/"]["get"]["parameters"]
    assert "external_id" in {p["name"] for p in patients}


def test_lists_filter_by_failure_code(api: Any, patient: Any) -> None:
    refused = JobFactory(
        scan=ScanFactory(patient=patient), status=Job.Status.FAILED, failure_code="not_brain_mri"
    )
    JobFactory(scan=ScanFactory(patient=patient), status=Job.Status.FAILED, failure_code="timeout")
    rows = api.get(f"{URL}?failure_code=not_brain_mri").json()["results"]
    assert [row["id"] for row in rows] == [str(refused.public_id)]
