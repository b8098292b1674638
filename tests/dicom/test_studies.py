"""Studies in the API and the portal: status, the aggregation rule, their jobs, isolation."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from dicom.models import Study
from dicom.studies import StudyStatus, slice_outcomes, study_result, study_status
from predictions.models import Job
from tests.api import submit
from tests.dicom.conftest import CALM, GLIOMA, UNSURE, classify
from tests.dicom_files import mr_dataset, picture, to_bytes

pytestmark = pytest.mark.django_db

STUDY_UID = "1.2.826.0.1.3680043.8.498.77"


def upload_study(api: APIClient, patient: Any, frames: int = 3, **options: Any) -> Study:
    pictures = [picture(n) for n in range(frames)]
    data = to_bytes(
        mr_dataset(pictures, patient_id=patient.external_id, study_uid=STUDY_UID, **options)
    )
    response = submit(api, patient, data, name="study.dcm")
    assert response.status_code == 202, response.json()
    return Study.objects.get(public_id=response.json()["studies"][0]["id"])


def fail(job: Job) -> None:
    job.status, job.failure_code, job.error = Job.Status.FAILED, "not_brain_mri", "Not a brain."
    job.save()


# Labelled "no tumour" but with a higher tumour probability (0.66) than GLIOMA_WEAK (0.55).
SPREAD = {"glioma": 0.33, "meningioma": 0.33, "no_tumor": 0.34, "pituitary": 0.0}
GLIOMA_WEAK = {"glioma": 0.5, "meningioma": 0.05, "no_tumor": 0.45, "pituitary": 0.0}


def test_status_follows_the_slices_jobs(api: APIClient, patient: Any) -> None:
    study = upload_study(api, patient)
    outcomes = slice_outcomes(study)
    assert study_status(study) == StudyStatus.PROCESSING
    for outcome in outcomes[:-1]:
        classify(outcome.job, "no_tumor", CALM)
    assert study_status(study) == StudyStatus.PROCESSING
    fail(outcomes[-1].job)
    assert study_status(study) == StudyStatus.DONE


def test_slices_come_in_frame_order(api: APIClient, patient: Any) -> None:
    study = upload_study(api, patient, frames=4)
    assert [outcome.slice.frame for outcome in slice_outcomes(study)] == [1, 2, 3, 4]


def test_the_most_suspicious_slice_decides(api: APIClient, patient: Any) -> None:
    study = upload_study(api, patient)
    first, second, third = slice_outcomes(study)
    classify(first.job, "no_tumor", CALM)
    classify(second.job, "glioma", GLIOMA)
    classify(third.job, "no_tumor", UNSURE)
    result = study_result(slice_outcomes(study))
    assert result is not None
    assert (result.label, result.deciding.slice.frame) == ("glioma", 2)
    assert result.probabilities == GLIOMA and not result.needs_review


def test_a_tumour_label_wins_over_a_higher_tumour_probability_called_no_tumour(
    api: APIClient, patient: Any
) -> None:
    study = upload_study(api, patient, frames=2)
    first, second = slice_outcomes(study)
    classify(first.job, "no_tumor", SPREAD)
    classify(second.job, "glioma", GLIOMA_WEAK)
    result = study_result(slice_outcomes(study))
    assert result is not None and result.label == "glioma"


def test_all_calm_is_no_tumour_reported_with_its_most_suspicious_slice(
    api: APIClient, patient: Any
) -> None:
    study = upload_study(api, patient, frames=2)
    first, second = slice_outcomes(study)
    classify(first.job, "no_tumor", CALM)
    classify(second.job, "no_tumor", UNSURE)
    result = study_result(slice_outcomes(study))
    assert result is not None
    assert (result.label, result.deciding.slice.frame) == ("no_tumor", 2)


def test_a_slice_without_an_answer_or_needing_review_makes_the_study_need_review(
    api: APIClient, patient: Any
) -> None:
    study = upload_study(api, patient, frames=2)
    first, second = slice_outcomes(study)
    classify(first.job, "no_tumor", CALM)
    fail(second.job)
    result = study_result(slice_outcomes(study))
    assert result is not None and result.needs_review and result.slices_failed == 1
    second.job.status = Job.Status.QUEUED
    second.job.save()
    classify(second.job, "no_tumor", CALM, needs_review=True)
    result = study_result(slice_outcomes(study))
    assert result is not None and result.needs_review and result.slices_failed == 0


def test_a_retried_slice_counts_with_its_latest_job(api: APIClient, patient: Any) -> None:
    study = upload_study(api, patient, frames=1)
    (outcome,) = slice_outcomes(study)
    fail(outcome.job)
    retried = Job.objects.create(scan=outcome.job.scan, queue="inference")
    assert slice_outcomes(study)[0].job == retried
    assert study_status(study) == StudyStatus.PROCESSING


def test_a_study_refused_at_the_door_says_so(api: APIClient, patient: Any) -> None:
    data = to_bytes(mr_dataset(patient_id=patient.external_id, modality="CT"))
    response = submit(api, patient, data, name="ct.dcm")
    assert response.status_code == 422
    study = Study.objects.get()
    assert study_status(study) == StudyStatus.REFUSED
    body = api.get(f"/api/v1/studies/{study.public_id}/").json()
    assert body["status"] == "refused"
    assert body["series"][0]["refusal"] == "Modality is CT: only MR series are classified."


def test_the_api_shows_a_study_with_its_result_and_jobs(api: APIClient, patient: Any) -> None:
    study = upload_study(api, patient, frames=2)
    first, second = slice_outcomes(study)
    classify(first.job, "no_tumor", CALM)
    classify(second.job, "glioma", GLIOMA)
    body = api.get(f"/api/v1/studies/{study.public_id}/").json()
    assert body["status"] == "done" and body["study_instance_uid"] == STUDY_UID
    assert body["result"]["label"] == "glioma"
    assert body["result"]["deciding_job"] == str(second.job.public_id)
    assert [job["frame"] for job in body["jobs"]] == [1, 2]
    assert body["jobs"][1]["result"]["label"] == "glioma"
    assert body["delivery_status"] == "pending"
    listing = api.get("/api/v1/studies/").json()
    assert [item["id"] for item in listing["results"]] == [str(study.public_id)]


def test_other_organisations_and_anonymous_callers_see_no_study(
    api: APIClient, outsider_api: APIClient, anonymous_api: APIClient, patient: Any
) -> None:
    study = upload_study(api, patient, frames=1)
    url = f"/api/v1/studies/{study.public_id}/"
    assert outsider_api.get(url).status_code == 404
    assert outsider_api.get("/api/v1/studies/").json()["results"] == []
    assert anonymous_api.get(url).status_code in (401, 403)
    instance = study.series.get().instances.get()
    file_url = f"/api/v1/dicom-instances/{instance.public_id}/file/"
    assert outsider_api.get(file_url).status_code == 404
    response = api.get(file_url)
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom"


def test_the_portal_shows_a_study_only_to_its_organisation(
    api: APIClient, client: Client, clinician: Any, patient: Any
) -> None:
    study = upload_study(api, patient, frames=3)
    url = f"/studies/{study.public_id}/"
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(clinician)
    page = client.get(url).content.decode()
    assert "Slices in order" in page and page.count('data-job="') == 3
    from tests.factories import UserFactory

    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
