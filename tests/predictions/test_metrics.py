"""GET /metrics: Prometheus text read from the job table and the broker's real queues."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from predictions import jobs
from predictions.models import Job
from tests.factories import JobFactory
from webapp.celery import app
from workers.config import broker_url
from workers.contracts import TASK_NAME, FailureCode

URL = "/metrics"


def scrape(client: Client, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get(URL, **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.fixture
def own_queues(settings: Any) -> Iterator[tuple[str, str]]:
    gpu, cpu = f"test-gpu-{uuid.uuid4().hex[:8]}", f"test-cpu-{uuid.uuid4().hex[:8]}"
    settings.INFERENCE_QUEUE, settings.CPU_QUEUE = gpu, cpu
    yield gpu, cpu
    client = redis.Redis.from_url(broker_url())
    client.delete(gpu, cpu)
    client.close()


def finished_job(status: str, seconds: float, code: str = "") -> Job:
    now = timezone.now()
    return JobFactory(
        status=status,
        created=now - timedelta(seconds=seconds),
        finished_at=now,
        failure_code=code,
        error="Words for people, which metrics never read." if code else "",
    )


def test_counts_jobs_by_status_and_failures_by_code(db: None, own_queues: Any) -> None:
    JobFactory.create_batch(2)
    JobFactory(status=Job.Status.RUNNING)
    finished_job("succeeded", 3)
    counted = [FailureCode.TIMEOUT, FailureCode.INVALID_IMAGE, FailureCode.NOT_BRAIN_MRI]
    for code in counted:
        finished_job("failed", 5, code)
    finished_job("failed", 4000, FailureCode.GAVE_UP)
    finished_job("failed", 4000, FailureCode.GAVE_UP)

    samples = scrape(Client())
    assert samples[("mri_jobs", (("status", "queued"),))] == 2
    assert samples[("mri_jobs", (("status", "running"),))] == 1
    assert samples[("mri_jobs", (("status", "succeeded"),))] == 1
    assert samples[("mri_jobs", (("status", "failed"),))] == 5
    failures = {
        labels[0][1]: value
        for (name, labels), value in samples.items()
        if name == "mri_job_failures_total"
    }
    expected = dict.fromkeys(FailureCode, 0.0) | dict.fromkeys(counted, 1.0)
    assert failures == expected | {FailureCode.GAVE_UP: 2.0}


def test_a_failure_recorded_by_the_sweeper_is_counted_as_gave_up(
    db: None, own_queues: Any, settings: Any
) -> None:
    settings.JOB_MAX_ATTEMPTS = 1
    job = JobFactory(status=Job.Status.RUNNING, attempts=1)
    Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(days=1))
    assert jobs.sweep() == (0, 1)
    assert scrape(Client())[("mri_job_failures_total", (("reason", "gave_up"),))] == 1


def test_latency_histogram_runs_from_queued_to_finished(db: None, own_queues: Any) -> None:
    for seconds in (0.5, 3, 40, 4000):
        finished_job("succeeded", seconds)
    samples = scrape(Client())

    def bucket(le: str) -> float:
        return samples[("mri_job_latency_seconds_bucket", (("le", le), ("status", "succeeded")))]

    assert (bucket("1.0"), bucket("5.0"), bucket("60.0"), bucket("3600.0")) == (1, 2, 3, 3)
    assert bucket("+Inf") == 4
    assert samples[("mri_job_latency_seconds_count", (("status", "succeeded"),))] == 4
    total = samples[("mri_job_latency_seconds_sum", (("status", "succeeded"),))]
    assert total == pytest.approx(4043.5, abs=1)


def test_queue_depth_is_the_real_length_of_each_queue(db: None, own_queues: Any) -> None:
    gpu, cpu = own_queues
    for _ in range(3):
        app.send_task(TASK_NAME, kwargs={"job_id": str(uuid.uuid4())}, queue=gpu)
    app.send_task(TASK_NAME, kwargs={"job_id": str(uuid.uuid4())}, queue=cpu)
    client = redis.Redis.from_url(broker_url())
    real = {gpu: client.llen(gpu), cpu: client.llen(cpu)}
    client.close()

    samples = scrape(Client())
    assert real == {gpu: 3, cpu: 1}
    assert samples[("mri_queue_depth", (("queue", gpu),))] == real[gpu]
    assert samples[("mri_queue_depth", (("queue", cpu),))] == real[cpu]
    assert samples[("mri_broker_up", ())] == 1


def test_reports_the_age_of_the_oldest_queued_job(db: None, own_queues: Any) -> None:
    gpu, _ = own_queues
    JobFactory(queue=gpu, created=timezone.now() - timedelta(minutes=10))
    age = scrape(Client())[("mri_oldest_queued_job_age_seconds", (("queue", gpu),))]
    assert 600 <= age < 660


class TestAccess:
    def test_a_token_is_required_when_one_is_set(self, db: None, settings: Any) -> None:
        settings.METRICS_TOKEN = "scrape-me"
        response = Client().get(URL)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert Client().get(URL, HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
        assert Client().get(URL, HTTP_AUTHORIZATION="Token scrape-me").status_code == 401
        scrape(Client(), HTTP_AUTHORIZATION="Bearer scrape-me")

    def test_without_a_token_only_direct_loopback_callers_get_in(
        self, db: None, settings: Any
    ) -> None:
        settings.METRICS_TOKEN = ""
        scrape(Client(REMOTE_ADDR="127.0.0.1"))
        assert Client(REMOTE_ADDR="10.1.2.3").get(URL).status_code == 403
        # A reverse proxy on the same host would otherwise open it to the world.
        proxied = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
        assert proxied.get(URL).status_code == 403
