"""Routing on the real broker: each device's jobs land in its own Redis list."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from predictions.models import Job
from tests.api import submit
from tests.images import png_bytes
from workers.config import broker_url

pytestmark = [pytest.mark.integration]


@pytest.fixture
def own_queues(settings: Any) -> Iterator[dict[str, str]]:
    names = {"gpu": f"test-gpu-{uuid.uuid4().hex[:8]}", "cpu": f"test-cpu-{uuid.uuid4().hex[:8]}"}
    settings.INFERENCE_QUEUE, settings.CPU_QUEUE = names["gpu"], names["cpu"]
    settings.DEFAULT_DEVICE = "gpu"
    yield names
    client = redis.Redis.from_url(broker_url())
    client.delete(*names.values())
    client.close()


def test_jobs_land_in_the_redis_list_of_their_device(
    api: Any, patient: Any, own_queues: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        for seed, extra in enumerate(({}, {"device": "cpu"}, {"device": "cpu"}, {"device": "gpu"})):
            assert submit(api, patient, png_bytes(seed=seed), **extra).status_code == 202
    client = redis.Redis.from_url(broker_url())
    assert client.llen(own_queues["gpu"]) == 2
    assert client.llen(own_queues["cpu"]) == 2
    assert Job.objects.filter(queue=own_queues["cpu"]).count() == 2
    client.close()
