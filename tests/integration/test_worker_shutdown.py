"""A worker told to stop (SIGTERM, as Kubernetes and `docker stop` do) loses nothing.

Kubernetes sends SIGTERM to the container's first process (`python -m workers` replaces
itself with Celery) and SIGKILLs it after terminationGracePeriodSeconds. The worker must
finish the job it runs, hand back those it holds but has not started, and exit well
within that grace period, so another worker takes them at once, not after the broker's
visibility timeout. Nothing is mocked except a slow image download on the site.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest

from predictions.api import internal
from predictions.models import Job, Prediction
from tests.integration.conftest import poll_until_finished, submit, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The grace period deploy/k8s gives a worker; the test's job takes a few seconds.
GRACE_PERIOD_S = 150
DOWNLOAD_S = 3.0


@pytest.fixture
def downloading(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Image downloads take DOWNLOAD_S, so a worker is caught mid-job; set at the first."""
    started = threading.Event()
    serve_image = internal.JobImageView.get

    def slow_download(view: Any, request: Any, job_id: Any) -> Any:
        started.set()
        time.sleep(DOWNLOAD_S)
        return serve_image(view, request, job_id)

    monkeypatch.setattr(internal.JobImageView, "get", slow_download)
    return started


def test_a_worker_stopped_with_sigterm_finishes_its_job_and_hands_back_the_rest(
    site: str, caller: Any, start_worker: Any, downloading: threading.Event
) -> None:
    # The default visibility timeout (minutes): a job not handed back would wait that long.
    first = start_worker()
    jobs = [submit(site, caller) for _ in range(4)]
    wait_for(downloading.is_set, 30, "the worker to start a job")

    stopped_at = time.monotonic()
    first.process.send_signal(signal.SIGTERM)  # the main process only, as Kubernetes does
    exit_status = first.process.wait(timeout=GRACE_PERIOD_S)
    stop_s = time.monotonic() - stopped_at
    first.stopped = True

    finished_by_first = Job.objects.filter(
        public_id__in=[job["id"] for job in jobs], status="succeeded"
    ).count()
    assert exit_status == 0, first.log()[-2000:]
    assert finished_by_first >= 1, "the job in hand was finished, not dropped"
    assert finished_by_first < len(jobs), "the test must leave jobs to hand back"
    print(f"worker stopped {stop_s:.1f} s after SIGTERM; it finished {finished_by_first} job(s)")

    second = start_worker()
    bodies = [poll_until_finished(caller[0], job["url"], timeout_s=60) for job in jobs]

    assert [body["status"] for body in bodies] == ["succeeded"] * len(jobs)
    workers = {body["worker"] for body in bodies}
    assert workers == {first.name, second.name}
    for body in bodies:
        assert Prediction.objects.filter(job__public_id=body["id"]).count() == 1


def test_a_batching_worker_stopped_with_sigterm_finishes_its_batch_and_hands_back_the_rest(
    site: str, caller: Any, start_worker: Any, downloading: threading.Event
) -> None:
    # Two threads: the worker holds one batch of at most two jobs, the others wait in Redis.
    first = start_worker(pool="threads", threads=2, WORKER_BATCH_SIZE="2")
    jobs = [submit(site, caller) for _ in range(5)]
    wait_for(downloading.is_set, 30, "the worker to start a batch")

    first.process.send_signal(signal.SIGTERM)  # the main process only, as Kubernetes does
    exit_status = first.process.wait(timeout=GRACE_PERIOD_S)
    first.stopped = True

    finished_by_first = Job.objects.filter(
        public_id__in=[job["id"] for job in jobs], status="succeeded"
    ).count()
    assert exit_status == 0, first.log()[-2000:]
    assert 1 <= finished_by_first <= 2, "the batch in hand was finished, nothing more taken"

    second = start_worker(pool="threads", threads=2, WORKER_BATCH_SIZE="2")
    bodies = [poll_until_finished(caller[0], job["url"], timeout_s=60) for job in jobs]

    assert [body["status"] for body in bodies] == ["succeeded"] * len(jobs)
    assert {body["worker"] for body in bodies} == {first.name, second.name}
    for body in bodies:
        assert Prediction.objects.filter(job__public_id=body["id"]).count() == 1
