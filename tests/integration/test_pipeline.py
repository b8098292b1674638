"""The core pipeline on real parts: site, Redis, Celery worker processes, a Keras model.

Nothing is mocked except, in the crash test, a deliberately slow image download on
the site, which holds the task in the worker long enough to kill it mid-task.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from predictions.api import internal
from predictions.models import Job, Prediction
from tests.integration.conftest import poll_until_finished, submit, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
LABELS = {"glioma", "meningioma", "no_tumor", "pituitary"}


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_submitted_scan_is_classified_by_a_worker(
    site: str, caller: Any, start_worker: Any, pool: str
) -> None:
    worker = start_worker(pool=pool, threads=16 if pool == "threads" else 1)
    job = submit(site, caller)
    body = poll_until_finished(caller[0], job["url"], timeout_s=60)

    assert body["status"] == "succeeded", body
    result = body["result"]
    assert result["label"] in LABELS
    assert set(result["probabilities"]) == LABELS
    assert math.isclose(sum(result["probabilities"].values()), 1.0, abs_tol=1e-4)
    assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    assert result["model_version"] == "tiny-test"
    # It went through running: the worker's start report set these before the result.
    assert body["started"] is not None and body["started"] <= body["finished"]
    assert body["worker"] == worker.name and body["attempts"] == 1
    assert caller[0].get(result["heatmap_url"], timeout=10).content.startswith(b"\x89PNG")


def test_a_worker_killed_mid_task_is_replaced_and_the_job_succeeds_once(
    site: str, caller: Any, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_download, release = threading.Event(), threading.Event()
    serve_image, record_result = internal.JobImageView.get, internal.JobResultView.post
    result_posts: list[str] = []

    def slow_first_download(view: Any, request: Any, job_id: Any) -> Any:
        if not in_download.is_set():
            in_download.set()
            release.wait(timeout=60)
        return serve_image(view, request, job_id)

    def counting_result(view: Any, request: Any, job_id: Any) -> Any:
        result_posts.append(str(job_id))
        return record_result(view, request, job_id)

    monkeypatch.setattr(internal.JobImageView, "get", slow_first_download)
    monkeypatch.setattr(internal.JobResultView, "post", counting_result)
    # Short limits so the broker hands the task back within seconds, not the default hour.
    limits = {"TASK_TIME_LIMIT": "8", "BROKER_VISIBILITY_TIMEOUT": "10",
              "BROKER_RESTORE_INTERVAL": "1"}  # fmt: skip
    first = start_worker(**limits)
    job = submit(site, caller)
    wait_for(in_download.is_set, 30, "the first worker to fetch the image")
    assert Job.objects.get(public_id=job["id"]).status == "running"

    first.kill()
    release.set()
    second = start_worker(**limits)
    body = poll_until_finished(caller[0], job["url"], timeout_s=60)

    assert body["status"] == "succeeded", (body, second.log()[-2000:])
    assert body["worker"] == second.name
    assert body["attempts"] == 2
    assert result_posts == [job["id"]]
    assert Prediction.objects.filter(job__public_id=job["id"]).count() == 1
