"""manage.py stack_status against the test's Redis and a live worker process."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.utils import timezone

from predictions.models import Job
from tests.factories import JobFactory
from webapp.celery import app
from workers.config import broker_url
from workers.contracts import TASK_NAME

pytestmark = [pytest.mark.integration]


def test_prints_queues_workers_and_stuck_jobs(db: None, settings: Any, bare_worker: Any) -> None:
    busy, served = f"status-{uuid.uuid4().hex[:6]}", f"served-{uuid.uuid4().hex[:6]}"
    settings.INFERENCE_QUEUE, settings.CPU_QUEUE = busy, served
    name = bare_worker(broker_url(), served, f"cpu@status-{uuid.uuid4().hex[:4]}")
    for _ in range(2):
        app.send_task(TASK_NAME, kwargs={"job_id": str(uuid.uuid4())}, queue=busy)
    old = timezone.now() - timedelta(hours=2)
    stuck = JobFactory(queue=busy, created=old, queued_at=old)
    JobFactory(queue=busy)  # fresh: not stuck
    JobFactory(status=Job.Status.RUNNING, started_at=old, created=old, worker=name)

    out = io.StringIO()
    call_command("stack_status", "--json", "--stuck-after", "600", "--timeout", "2", stdout=out)
    status = json.loads(out.getvalue())
    redis.Redis.from_url(broker_url()).delete(busy)

    assert status["queues"][busy] == 2 and status["queues"][served] == 0
    assert status["workers"][name]["queues"] == [served]
    # This worker runs workers.control, and its model registry is empty.
    assert status["workers"][name]["model_version"].startswith("unknown")
    assert [job["status"] for job in status["stuck_jobs"]] == ["queued", "running"]
    assert status["stuck_jobs"][0]["job"] == str(stuck.public_id)

    text = io.StringIO()
    call_command("stack_status", "--stuck-after", "600", "--timeout", "2", stdout=text)
    assert f"  {name}" in text.getvalue()
    assert "Jobs stuck longer than 600 s: 2" in text.getvalue()
