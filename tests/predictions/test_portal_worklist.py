"""The worklist: results across patients, needs-review first, then by suspicion; filtered, paged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.test import Client

from predictions.models import Job, Review
from tests.factories import JobFactory, PatientFactory, PredictionFactory, UserFactory

pytestmark = pytest.mark.django_db


def probabilities(no_tumour: float) -> dict[str, float]:
    rest = (1 - no_tumour) / 3
    return {"glioma": rest, "meningioma": rest, "no_tumor": no_tumour, "pituitary": rest}


def result(patient: Any, no_tumour: float, needs_review: bool = False, **job: Any) -> Any:
    label = "no_tumor" if no_tumour > 1 / 3 else "glioma"
    return PredictionFactory(
        job__scan__patient=patient,
        label=label,
        probabilities=probabilities(no_tumour),
        needs_review=needs_review,
        **{f"job__{key}": value for key, value in job.items()},
    ).job


def row_ids(page: Any) -> list[str]:
    return [str(job.public_id) for job, _, _ in page.context["rows"]]


def test_it_lists_needs_review_first_then_the_most_suspicious_across_patients(
    portal: Client, organisation: Any, patient: Any
) -> None:
    other_patient = PatientFactory(organisation=organisation)
    calm = result(patient, no_tumour=0.9)
    worrying = result(other_patient, no_tumour=0.05)
    unsure = result(patient, no_tumour=0.45, needs_review=True)
    middling = result(other_patient, no_tumour=0.3)
    response = portal.get("/worklist/")
    assert row_ids(response) == [str(j.public_id) for j in (unsure, worrying, middling, calm)]
    page = response.content.decode()
    assert "95%" in page and "10%" in page  # suspicion = 1 - P(no tumour)


def test_by_default_it_shows_only_unreviewed_results(
    portal: Client, patient: Any, clinician: Any
) -> None:
    reviewed = result(patient, 0.2)
    waiting = result(patient, 0.2)
    JobFactory(scan__patient=patient)  # queued: not a result yet
    Review.objects.create(job=reviewed, label="glioma", confirmed=True, reviewed_by=clinician)
    assert row_ids(portal.get("/worklist/")) == [str(waiting.public_id)]
    both = portal.get("/worklist/?status=succeeded&reviewed=")
    assert set(row_ids(both)) == {str(waiting.public_id), str(reviewed.public_id)}


def test_it_filters_by_label_reviewer_status_and_date(
    portal: Client, organisation: Any, patient: Any, clinician: Any
) -> None:
    with time_machine.travel(datetime(2026, 3, 1, 9, tzinfo=UTC)):
        old = result(patient, 0.9)
    recent = result(patient, 0.1)
    colleague = UserFactory(membership__organisation=organisation)
    Review.objects.create(job=old, label="no_tumor", confirmed=True, reviewed_by=colleague)
    failed = JobFactory(scan__patient=patient, status=Job.Status.FAILED)
    assert row_ids(portal.get("/worklist/?label=no_tumor")) == [str(old.public_id)]
    assert row_ids(portal.get(f"/worklist/?reviewer={colleague.pk}")) == [str(old.public_id)]
    assert row_ids(portal.get("/worklist/?status=failed")) == [str(failed.public_id)]
    assert row_ids(portal.get("/worklist/?since=2026-03-02&status=succeeded")) == [
        str(recent.public_id)
    ]
    assert row_ids(portal.get("/worklist/?until=2026-03-01")) == [str(old.public_id)]


def test_a_reviewer_of_another_organisation_is_not_a_valid_filter(
    portal: Client, patient: Any
) -> None:
    stranger = UserFactory()
    result(patient, 0.1)
    response = portal.get(f"/worklist/?reviewer={stranger.pk}")
    assert response.status_code == 200 and row_ids(response) == []
    assert stranger.username not in response.content.decode()


def test_it_pages_results(portal: Client, patient: Any) -> None:
    for _ in range(27):
        result(patient, 0.5)
    first = portal.get("/worklist/")
    assert len(row_ids(first)) == 25 and "Page 1 of 2" in first.content.decode()
    assert len(row_ids(portal.get("/worklist/?status=succeeded&reviewed=false&page=2"))) == 2


def test_it_never_shows_another_organisations_results(
    outsider_portal: Client, patient: Any
) -> None:
    result(patient, 0.1)
    response = outsider_portal.get("/worklist/")
    assert response.status_code == 200 and row_ids(response) == []
    assert patient.external_id not in response.content.decode()


def test_reading_from_the_worklist_offers_the_next_and_previous_case(
    portal: Client, patient: Any
) -> None:
    first, second, third = (result(patient, p) for p in (0.1, 0.2, 0.3))
    worklist = "status=succeeded&reviewed=false"
    page = portal.get(f"/jobs/{second.public_id}/", {"worklist": worklist}).content.decode()
    assert "Case 2 of 3" in page
    assert (
        f'/jobs/{first.public_id}/?worklist=status%3Dsucceeded%26reviewed%3Dfalse" rel="prev"'
        in page
    )
    assert (
        f'/jobs/{third.public_id}/?worklist=status%3Dsucceeded%26reviewed%3Dfalse" rel="next"'
        in page
    )
    response = portal.post(
        f"/jobs/{second.public_id}/review/", {"label": "glioma", "worklist": worklist}
    )
    assert (
        response["Location"]
        == f"/jobs/{second.public_id}/?worklist=status%3Dsucceeded%26reviewed%3Dfalse"
    )
    after = portal.get(response["Location"]).content.decode()
    assert (
        f'/jobs/{first.public_id}/?worklist=status%3Dsucceeded%26reviewed%3Dfalse" rel="next"'
        in after
    )


def test_the_dashboard_tiles_open_the_worklist_with_their_filter(portal: Client) -> None:
    page = portal.get("/").content.decode()
    assert 'href="/worklist/?status=succeeded&amp;reviewed=false"' in page
    assert 'href="/worklist/?status=queued&amp;since=' in page
