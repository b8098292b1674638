"""The dashboard: today's jobs, the queue, workers online, and a broker that is down."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import Client
from django.utils import timezone

from predictions import broker_status
from predictions.models import Job
from tests.factories import JobFactory
from tests.owned_redis import OwnedRedis, site_broker
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
    broker_status.refresh()  # what the sweeper does every BROKER_STATUS_INTERVAL
    response = portal.get("/")
    assert response.context["queue_length"] == 3
    assert response.context["workers"] == []  # no worker runs in this test
    page = response.content.decode()
    assert "3 waiting" in page and "none answering" in page
    assert 'href="http://127.0.0.1:5555"' in page


def test_it_renders_unavailable_when_the_broker_is_unreachable(portal: Client) -> None:
    with site_broker("redis://127.0.0.1:1/0"):
        broker_status.refresh()
    response = portal.get("/")
    assert response.status_code == 200
    assert response.context["queue_length"] is None and response.context["workers"] is None
    assert response.content.decode().count("unavailable (broker unreachable)") == 2


def test_it_shows_the_last_picture_without_asking_a_frozen_broker(
    portal: Client, queue_name: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(broker_url())
    client.rpush(queue_name, "a", "b")
    client.close()
    broker_status.refresh()
    frozen = OwnedRedis(tmp_path / "redis")
    frozen.start()
    frozen.freeze()
    try:
        with site_broker(frozen.url):  # any call to the broker would wait or fail
            response = portal.get("/")
    finally:
        frozen.close()
    assert response.context["queue_length"] == 2 and response.context["workers"] == []
    assert "2 waiting" in response.content.decode()


def test_it_says_when_the_broker_was_never_checked_or_the_picture_is_old(
    portal: Client, queue_name: str
) -> None:
    page = portal.get("/").content.decode()
    assert "not yet: the sweeper" in page
    assert page.count("not checked yet") == 2 and "broker unreachable" not in page
    status = broker_status.refresh()
    assert "out of date" not in portal.get("/").content.decode()
    status.checked_at = timezone.now() - timedelta(hours=1)
    status.save()
    assert "out of date: is the sweeper" in portal.get("/").content.decode()


def test_it_counts_the_organisations_jobs_waiting_for_the_broker(
    portal: Client, patient: Any, queue_name: str
) -> None:
    JobFactory.create_batch(2, scan__patient=patient, dispatched_at=None)
    JobFactory(scan__patient=patient)
    JobFactory(dispatched_at=None)  # another clinic's
    assert portal.get("/").context["awaiting_dispatch"] == 2
