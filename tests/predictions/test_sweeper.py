from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone

from predictions import dispatch, jobs
from predictions.models import Job
from tests.factories import JobFactory


@pytest.fixture
def sent(settings: Any) -> Any:
    settings.JOB_QUEUED_TIMEOUT = 60
    settings.JOB_RUNNING_TIMEOUT = 120
    settings.JOB_MAX_ATTEMPTS = 3
    with mock.patch.object(dispatch, "_send", autospec=True) as send:
        yield send


def ago(seconds: int) -> Any:
    return timezone.now() - timedelta(seconds=seconds)


def test_requeues_a_job_stuck_in_the_queue(
    db: None, sent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    job = JobFactory(queued_at=ago(90), created=ago(90))
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.sweep() == (1, 0)
    job.refresh_from_db()
    assert job.status == "queued" and job.queued_at > ago(5)
    assert sent.call_count == 1


def test_requeues_a_job_whose_worker_vanished(
    db: None, sent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    job = JobFactory(status=Job.Status.RUNNING, started_at=ago(200), attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.sweep() == (1, 0)
    job.refresh_from_db()
    assert job.status == "queued"
    assert sent.call_count == 1


def test_fails_a_job_out_of_attempts_with_a_reason(db: None, sent: Any) -> None:
    job = JobFactory(status=Job.Status.RUNNING, started_at=ago(200), attempts=3, worker="w1")
    assert jobs.sweep() == (0, 1)
    job.refresh_from_db()
    assert job.status == "failed"
    assert "Gave up after 3 attempt(s)" in job.error and "w1" in job.error


def test_fails_a_job_no_worker_ever_started(db: None, sent: Any) -> None:
    job = JobFactory(queued_at=ago(61), created=ago(60 * 4 + 1))
    assert jobs.sweep() == (0, 1)
    job.refresh_from_db()
    assert job.status == "failed"


def test_leaves_fresh_and_finished_jobs_alone(db: None, sent: Any) -> None:
    JobFactory(queued_at=ago(10))
    JobFactory(status=Job.Status.RUNNING, started_at=ago(10))
    JobFactory(status=Job.Status.SUCCEEDED, queued_at=ago(10_000), created=ago(10_000))
    assert jobs.sweep() == (0, 0)
    sent.assert_not_called()


def test_the_command_reports_what_it_did(db: None, sent: Any, capsys: Any) -> None:
    JobFactory(status=Job.Status.RUNNING, started_at=ago(200), attempts=3)
    call_command("sweep_jobs")
    assert "0 requeued, 1 failed" in capsys.readouterr().out


def test_the_command_sends_jobs_that_waited_for_the_broker(
    db: None, sent: Any, capsys: Any
) -> None:
    waiting = JobFactory(dispatched_at=None)
    JobFactory()  # already handed to the broker
    call_command("sweep_jobs")
    assert "dispatch: 1 sent after waiting for the broker" in capsys.readouterr().out
    [(job, _claimed_at), _] = sent.call_args
    assert job.pk == waiting.pk


def test_a_requeued_job_is_claimed_again_before_it_is_sent(
    db: None, sent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    job = JobFactory(status=Job.Status.RUNNING, started_at=ago(200), attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        jobs.sweep()
    job.refresh_from_db()
    assert job.dispatched_at is not None and job.dispatched_at > ago(5)
