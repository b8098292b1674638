"""The batching worker (threads pool) on real parts: site, Redis, a Celery worker process, a model.

Nothing is mocked except, in the crash test, a deliberately slow image download on the
site, which holds a batch in the worker long enough to kill it mid-batch.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from predictions.api import internal
from predictions.models import Job, Prediction
from tests.images import encode
from tests.integration.conftest import poll_until_finished, submit, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
# A wait long enough for every job a test submits to join the first batch.
ONE_BATCH = {"WORKER_BATCH_SIZE": "4", "WORKER_BATCH_WAIT_MS": "4000"}


def test_jobs_submitted_together_are_classified_in_one_batch(
    site: str, caller: Any, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts: list[int] = []
    bulk_start = internal.BulkStartView.post

    def counting_start(view: Any, request: Any) -> Any:
        starts.append(len(request.data["jobs"]))
        return bulk_start(view, request)

    monkeypatch.setattr(internal.BulkStartView, "post", counting_start)
    worker = start_worker(pool="threads", threads=4, **ONE_BATCH)
    jobs = [submit(site, caller) for _ in range(4)]
    bodies = [poll_until_finished(caller[0], job["url"], timeout_s=60) for job in jobs]

    assert [body["status"] for body in bodies] == ["succeeded"] * 4, bodies
    assert starts == [4], f"expected one batch of 4, got {starts}"
    for body in bodies:
        assert body["worker"] == worker.name and body["attempts"] == 1
        assert caller[0].get(body["result"]["heatmap_url"], timeout=10).content[:4] == b"\x89PNG"


def test_a_bad_image_in_a_batch_fails_its_own_job_only(
    site: str, caller: Any, start_worker: Any
) -> None:
    jobs = [submit(site, caller) for _ in range(4)]
    # What the worker fetches, changed on disk after the upload checks passed.
    corrupt, blank = (Job.objects.get(public_id=jobs[i]["id"]).scan for i in (1, 2))
    replace_file(corrupt.image, b"\x89PNG\r\n\x1a\n truncated")
    replace_file(blank.image, encode(Image.new("L", (96, 96), 90)))
    start_worker(pool="threads", threads=4, **ONE_BATCH)
    bodies = [poll_until_finished(caller[0], job["url"], timeout_s=60) for job in jobs]

    assert [body["status"] for body in bodies] == ["succeeded", "failed", "failed", "succeeded"]
    assert bodies[1]["failure_code"] == "invalid_image", bodies[1]
    assert bodies[2]["failure_code"] == "not_brain_mri", bodies[2]
    assert "blank" in bodies[2]["error"]
    assert Prediction.objects.filter(job__public_id__in=[j["id"] for j in jobs]).count() == 2


def replace_file(field: Any, content: bytes) -> None:
    field.storage.delete(field.name)
    assert field.storage.save(field.name, ContentFile(content)) == field.name


def test_a_worker_killed_mid_batch_loses_no_job_and_records_none_twice(
    site: str, caller: Any, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_download, release = threading.Event(), threading.Event()
    serve_image, record_outcomes = internal.JobImageView.get, internal.BulkOutcomesView.post
    results_posted: Counter[str] = Counter()

    def slow_first_downloads(view: Any, request: Any, job_id: Any) -> Any:
        if not release.is_set():
            in_download.set()
            release.wait(timeout=60)
        return serve_image(view, request, job_id)

    def counting_outcomes(view: Any, request: Any) -> Any:
        results_posted.update(str(item.get("id")) for item in request.data.get("results", []))
        return record_outcomes(view, request)

    monkeypatch.setattr(internal.JobImageView, "get", slow_first_downloads)
    monkeypatch.setattr(internal.BulkOutcomesView, "post", counting_outcomes)
    # Short limits so the broker hands the messages back within seconds, not the default hour.
    limits = {"TASK_TIME_LIMIT": "8", "BROKER_VISIBILITY_TIMEOUT": "10",
              "BROKER_RESTORE_INTERVAL": "1", **ONE_BATCH}  # fmt: skip
    first = start_worker(pool="threads", threads=4, **limits)
    jobs = [submit(site, caller) for _ in range(4)]
    ids = [job["id"] for job in jobs]
    wait_for(in_download.is_set, 30, "the batch to fetch its images")
    wait_for(
        lambda: Job.objects.filter(public_id__in=ids, status="running").count() == 4,
        30,
        "all four jobs to be started by the one batch",
    )

    first.kill()
    release.set()
    second = start_worker(pool="threads", threads=4, **limits)
    bodies = [poll_until_finished(caller[0], job["url"], timeout_s=90) for job in jobs]

    assert [body["status"] for body in bodies] == ["succeeded"] * 4, (bodies, second.log()[-3000:])
    assert {body["worker"] for body in bodies} == {second.name}
    assert [body["attempts"] for body in bodies] == [2, 2, 2, 2]
    assert results_posted == Counter(ids)  # each job's result posted once, by the second worker
    for job_id in ids:
        assert Prediction.objects.filter(job__public_id=job_id).count() == 1
