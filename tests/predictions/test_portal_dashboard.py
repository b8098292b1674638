"""The dashboard: today's jobs, the queue, workers online, and a broker that is down."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.test import Client
from django.utils import timezone

from predictions.models import Job
from tests.factories import JobFactory
from webapp.celery import app
from workers.config import broker_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue_name(settings: Any) -> Any:
    settings.INFERENCE_QUEUE = "dashboard-test-queue"
    client = redis.Redis.from_url(broker_url())
    client.delete(settings.INFERENCE_QUEUE)
    yield settings.INFERENCE_QUEUE
    client.delete(settings.INFERENCE_QUEUE)
    client.close()


def test_it_counts_todays_jobs_by_status_in_the_organisation(
    portal: Client, patient: Any, queue_name: str
) -> None:
    JobFactory.create_batch(2, scan__patient=patient)
    JobFactory(scan__patient=patient, status=Job.Status.FAILED, error="Worker lost.")
    JobFactory(scan__patient=patient, created=timezone.now() - timedelta(days=2))
    JobFactory(status=Job.Status.FAILED, error="Another clinic's failure.")
    JobFactory(scan__patient=patient, status=Job.Status.FAILED, failure_code="not_brain_mri",
               error="not a brain MRI slice: it is a colour picture")  # fmt: skip
    response = portal.get("/")
    counts = dict(response.context["counts"])
    assert counts == {
        "queued": 2,
        "running": 0,
        "succeeded": 0,
        "failed": 1,
    }  # a refusal is no failure
    assert response.context["refused_today"] == 1
    page = response.content.decode()
    assert "Worker lost." in page and "Another clinic" not in page


def test_it_shows_the_queue_length_and_workers_online(
    portal: Client, queue_name: str, settings: Any
) -> None:
    client = redis.Redis.from_url(broker_url())
    client.rpush(queue_name, "a", "b", "c")
    client.close()
    settings.FLOWER_URL = "http://127.0.0.1:5555"
    response = portal.get("/")
    assert response.context["queue_length"] == 3
    assert response.context["workers"] == []  # no worker runs in this test
    page = response.content.decode()
    assert "3 waiting" in page and "none answering" in page
    assert 'href="http://127.0.0.1:5555"' in page


def test_it_renders_unavailable_when_the_broker_is_unreachable(
    portal: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    started = time.monotonic()
    response = portal.get("/")
    assert response.status_code == 200
    assert response.context["queue_length"] is None and response.context["workers"] is None
    assert response.content.decode().count("unavailable (broker unreachable)") == 2
    assert time.monotonic() - started < 5
