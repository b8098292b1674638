"""The batching worker (threads pool) on real parts: site, Redis, a Celery worker process, a model.

Nothing is mocked except the site's image downloads, held back on purpose (`DownloadGates`)
so that jobs gather in the worker while a batch waits, and a batch can be killed mid-way.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis
from django.core.files.base import ContentFile
from PIL import Image

from predictions.api import internal
from predictions.models import Job, Prediction
from tests.images import encode
from tests.integration.conftest import poll_until_finished, submit, wait_for
from workers.config import broker_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
# Four threads, and a wait long enough that only "every held job is in the batch" ends it;
# one batch at a time, so jobs that arrive while a batch runs gather for the next one.
BATCHING = {
    "WORKER_BATCH_SIZE": "4",
    "WORKER_BATCH_WAIT_MS": "4000",
    "WORKER_BATCHES_IN_FLIGHT": "1",
}


class DownloadGates:
    """Hold the site's image downloads: the first one until `first` opens, later ones until
    `rest` opens. Holding the first batch lets the worker take in the jobs that follow."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.first, self.rest = threading.Event(), threading.Event()
        self.first_asked, self.rest_asked = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        self.seen = 0
        serve_image = internal.JobImageView.get

        def gated(view: Any, request: Any, job_id: Any) -> Any:
            with self.lock:
                self.seen += 1
                is_first = self.seen == 1
            (self.first_asked if is_first else self.rest_asked).set()
            (self.first if is_first else self.rest).wait(timeout=60)
            return serve_image(view, request, job_id)

        monkeypatch.setattr(internal.JobImageView, "get", gated)

    def open_all(self) -> None:
        self.first.set()
        self.rest.set()


def count_bulk_starts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every bulk start the site answers, in order."""
    sizes: list[int] = []
    bulk_start = internal.BulkStartView.post

    def counting_start(view: Any, request: Any) -> Any:
        sizes.append(len(request.data["jobs"]))
        return bulk_start(view, request)

    monkeypatch.setattr(internal.BulkStartView, "post", counting_start)
    return sizes


def all_delivered(queue_name: str) -> bool:
    """Whether the worker has taken every message of the queue (none left waiting in Redis)."""
    client = redis.Redis.from_url(broker_url())
    try:
        return client.llen(queue_name) == 0
    finally:
        client.close()


def test_a_lone_job_runs_at_once_and_jobs_arriving_meanwhile_share_the_next_batch(
    site: str, caller: Any, start_worker: Any, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = count_bulk_starts(monkeypatch)
    gates = DownloadGates(monkeypatch)
    worker = start_worker(pool="threads", threads=4, **BATCHING)
    try:
        jobs = [submit(site, caller)]
        # Alone in the worker, it is started at once, not after the 4 s wait.
        wait_for(gates.first_asked.is_set, 3, "the lone job to be started without waiting")
        jobs += [submit(site, caller) for _ in range(3)]
        wait_for(lambda: all_delivered(queue_name), 30, "the worker to take the other jobs")
        time.sleep(1)  # their task threads hand them to the batcher
    finally:
        gates.open_all()
    bodies = [poll_until_finished(caller[0], job["url"], timeout_s=60) for job in jobs]

    assert [body["status"] for body in bodies] == ["succeeded"] * 4, bodies
    assert starts == [1, 3], f"expected a batch of 1, then one of 3; got {starts}"
    for body in bodies:
        assert body["worker"] == worker.name and body["attempts"] == 1
        assert caller[0].get(body["result"]["heatmap_url"], timeout=10).content[:4] == b"\x89PNG"


def test_a_second_batch_runs_while_the_first_waits_on_the_site(
    site: str, caller: Any, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = count_bulk_starts(monkeypatch)
    gates = DownloadGates(monkeypatch)
    start_worker(pool="threads", threads=4, **{**BATCHING, "WORKER_BATCHES_IN_FLIGHT": "2"})
    try:
        first = submit(site, caller)
        wait_for(gates.first_asked.is_set, 3, "the first job to fetch its image")
        second = submit(site, caller)
        wait_for(gates.rest_asked.is_set, 30, "a second batch to start while the first waits")
        gates.rest.set()
        second_body = poll_until_finished(caller[0], second["url"], timeout_s=60)
        assert second_body["status"] == "succeeded", second_body
        assert Job.objects.get(public_id=first["id"]).status == "running"  # still held
    finally:
        gates.open_all()
    assert poll_until_finished(caller[0], first["url"], timeout_s=60)["status"] == "succeeded"
    assert starts == [1, 1]


def test_a_bad_image_in_a_batch_fails_its_own_job_only(
    site: str, caller: Any, start_worker: Any, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = count_bulk_starts(monkeypatch)
    gates = DownloadGates(monkeypatch)
    start_worker(pool="threads", threads=4, **BATCHING)
    try:
        jobs = [submit(site, caller) for _ in range(4)]
        # What the worker fetches, changed on disk after the upload checks passed.
        corrupt, blank = (Job.objects.get(public_id=jobs[i]["id"]).scan for i in (1, 2))
        replace_file(corrupt.image, b"\x89PNG\r\n\x1a\n truncated")
        replace_file(blank.image, encode(Image.new("L", (96, 96), 90)))
        wait_for(lambda: all_delivered(queue_name), 30, "the worker to take every job")
        time.sleep(1)
    finally:
        gates.open_all()
    bodies = [poll_until_finished(caller[0], job["url"], timeout_s=60) for job in jobs]

    assert starts == [1, 3], starts  # jobs 2-4, two bad ones among them, in one batch
    statuses = [body["status"] for body in bodies]
    assert statuses == ["succeeded", "failed", "failed", "succeeded"], bodies
    assert bodies[1]["failure_code"] == "invalid_image", bodies[1]
    assert bodies[2]["failure_code"] == "not_brain_mri", bodies[2]
    assert "blank" in bodies[2]["error"]
    assert Prediction.objects.filter(job__public_id__in=[j["id"] for j in jobs]).count() == 2


def replace_file(field: Any, content: bytes) -> None:
    field.storage.delete(field.name)
    assert field.storage.save(field.name, ContentFile(content)) == field.name


def test_a_worker_killed_mid_batch_loses_no_job_and_records_none_twice(
    site: str, caller: Any, start_worker: Any, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gates = DownloadGates(monkeypatch)
    record_outcomes = internal.BulkOutcomesView.post
    results_posted: Counter[str] = Counter()

    def counting_outcomes(view: Any, request: Any) -> Any:
        results_posted.update(str(item.get("id")) for item in request.data.get("results", []))
        return record_outcomes(view, request)

    monkeypatch.setattr(internal.BulkOutcomesView, "post", counting_outcomes)
    # Short limits so the broker hands the messages back within seconds, not the default hour;
    # the soft limit (each task's wait for its batch) above the time the test holds a batch.
    limits = {"TASK_TIME_LIMIT": "20", "TASK_SOFT_TIME_LIMIT": "15",
              "BROKER_VISIBILITY_TIMEOUT": "25", "BROKER_RESTORE_INTERVAL": "1",
              **BATCHING}  # fmt: skip
    first = start_worker(pool="threads", threads=4, **limits)
    try:
        jobs = [submit(site, caller) for _ in range(4)]
        ids = [job["id"] for job in jobs]
        wait_for(lambda: all_delivered(queue_name), 30, "the worker to take every job")
        time.sleep(1)
        gates.first.set()  # the first batch (one job) finishes; the other three start together
        wait_for(gates.rest_asked.is_set, 30, "the second batch to fetch its images")
        in_batch = wait_for(
            lambda: Job.objects.filter(public_id__in=ids[1:], status="running").count() == 3,
            30,
            "jobs 2-4 to be started by one batch",
        )
        assert in_batch
        first.kill()
    finally:
        gates.open_all()
    second = start_worker(pool="threads", threads=4, **limits)
    bodies = [poll_until_finished(caller[0], job["url"], timeout_s=90) for job in jobs]

    assert [body["status"] for body in bodies] == ["succeeded"] * 4, (bodies, second.log()[-3000:])
    assert [body["worker"] for body in bodies] == [first.name] + [second.name] * 3
    assert [body["attempts"] for body in bodies] == [1, 2, 2, 2]
    assert results_posted == Counter(ids)  # each job's result posted once
    for job_id in ids:
        assert Prediction.objects.filter(job__public_id=job_id).count() == 1
