"""`predictions.broker`: the one place the site asks the broker, on the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.test import Client

from predictions import broker, broker_status
from webapp.celery import app
from workers.config import broker_url
from workers.contracts import TASK_NAME


@pytest.fixture
def queue(settings: Any) -> Iterator[str]:
    name = f"test-broker-{uuid.uuid4().hex[:8]}"
    settings.INFERENCE_QUEUE = name
    settings.DEFAULT_DEVICE = "gpu"
    yield name
    client = redis.Redis.from_url(broker_url())
    client.delete(*broker._priority_lists(name))
    client.close()


def send(queue: str, priority: int | None = None) -> None:
    app.send_task(TASK_NAME, kwargs={"job_id": str(uuid.uuid4())}, queue=queue, priority=priority)


def test_queue_depth_counts_every_priority_list(queue: str) -> None:
    send(queue)
    send(queue, priority=5)
    send(queue, priority=9)
    client = redis.Redis.from_url(broker_url())
    base_only = client.llen(queue)
    client.close()
    assert base_only == 1  # kombu put the other two in priority lists
    assert broker.queue_depths([queue]) == {queue: 3}


def test_the_dashboard_and_metrics_agree_on_the_queue_depth(
    queue: str, portal: Client, db: None
) -> None:
    send(queue)
    send(queue, priority=9)
    broker_status.refresh()
    assert portal.get("/").context["queue_length"] == 2
    metrics = Client(REMOTE_ADDR="127.0.0.1").get("/metrics").content.decode()
    assert f'mri_queue_depth{{queue="{queue}"}} 2.0' in metrics


def test_an_unreachable_broker_raises_broker_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    with pytest.raises(broker.BrokerUnavailable):
        broker.queue_depths(["any"], timeout_s=0.5)
    with pytest.raises(broker.BrokerUnavailable):
        broker.worker_queues(timeout_s=0.5)


@pytest.mark.parametrize(
    ("default_device", "device", "expected"),
    [
        ("gpu", None, "gpu-q"),
        ("cpu", None, "cpu-q"),
        ("gpu", "cpu", "cpu-q"),
        ("cpu", "gpu", "gpu-q"),
    ],
)
def test_queue_for_follows_the_device_then_the_default(
    settings: Any, default_device: str, device: str | None, expected: str
) -> None:
    settings.INFERENCE_QUEUE, settings.CPU_QUEUE = "gpu-q", "cpu-q"
    settings.DEFAULT_DEVICE = default_device
    assert broker.queue_for(device) == expected
