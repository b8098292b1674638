"""The worker's HTTP client against the real site (live server): the worker's whole view of it."""

from __future__ import annotations

from typing import Any

import pytest

from predictions.models import Job
from tests.factories import JobFactory
from tests.integration.conftest import WORKER_SECRET
from webapp.local_redis import free_port
from workers.contracts import FailureCode, FailureReport, PredictionResult
from workers.web_client import SiteClient, SiteError

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def result_for(job: Job) -> PredictionResult:
    probabilities = {"glioma": 0.25, "meningioma": 0.25, "no_tumor": 0.25, "pituitary": 0.25}
    return PredictionResult(
        str(job.public_id), "glioma", probabilities, "m-1", 3.0, "w", needs_review=True
    )


def test_walks_a_job_through_start_image_and_result(site: str) -> None:
    job = JobFactory()
    client = SiteClient(site, WORKER_SECRET)
    assert client.start(str(job.public_id), "w").proceed
    assert client.fetch_image(str(job.public_id)) == job.scan.image.open("rb").read()
    assert client.post_result(result_for(job)) is True
    assert client.post_result(result_for(job)) is False
    assert client.start(str(job.public_id), "w").proceed is False


def test_a_wrong_secret_is_a_permanent_error(site: str) -> None:
    job = JobFactory()
    with pytest.raises(SiteError, match="HTTP 401") as caught:
        SiteClient(site, "wrong").start(str(job.public_id), "w")
    assert caught.value.permanent


def test_an_unreachable_site_is_a_transient_error(db: None) -> None:
    client = SiteClient(f"http://127.0.0.1:{free_port()}", "secret", timeout_s=2)
    with pytest.raises(SiteError) as caught:
        client.start("00000000-0000-0000-0000-000000000000", "w")
    assert not caught.value.permanent


def test_check_passes_against_the_site_and_fails_with_a_wrong_secret(site: str) -> None:
    SiteClient(site, WORKER_SECRET).check()
    with pytest.raises(SiteError, match="401"):
        SiteClient(site, "wrong").check()


def test_bulk_start_and_outcomes_against_the_real_site(site: str) -> None:
    first, second, finished = JobFactory(), JobFactory(), JobFactory(status=Job.Status.SUCCEEDED)
    client = SiteClient(site, WORKER_SECRET)
    ids = [str(first.public_id), str(second.public_id), str(finished.public_id)]
    answers = client.start_many([*ids, ids[0], "00000000-0000-0000-0000-000000000000"], "w")
    assert [answers[i].proceed for i in ids] == [True, True, False]  # type: ignore[union-attr]
    unknown = answers["00000000-0000-0000-0000-000000000000"]
    assert isinstance(unknown, SiteError) and unknown.permanent
    failure = FailureReport(ids[1], FailureCode.INVALID_IMAGE, "truncated", "w")
    assert client.post_outcomes([result_for(first)], [failure]) == {ids[0]: True, ids[1]: True}
    assert client.post_outcomes([result_for(first)], [failure]) == {ids[0]: False, ids[1]: False}


def test_a_site_without_the_bulk_endpoints_is_a_transient_error(site: str, settings: Any) -> None:
    # A site of contract 2 answers 404 to the bulk paths: the jobs must wait, not be refused.
    client = SiteClient(site, WORKER_SECRET)
    client.base = client.internal + "no-such-prefix/"
    with pytest.raises(SiteError, match="predates contract 3") as raised:
        client.start_many([str(JobFactory().public_id)], "w")
    assert not raised.value.permanent
