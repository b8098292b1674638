"""Which queue a job goes to: the GPU queue by default, the CPU queue when asked or configured."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from predictions import dispatch
from predictions.models import Job
from tests.api import submit
from workers.contracts import REQUEST_VERSION, TASK_NAME


@pytest.fixture
def queues(settings: Any) -> dict[str, str]:
    settings.INFERENCE_QUEUE = "gpu-q"
    settings.CPU_QUEUE = "cpu-q"
    settings.DEFAULT_DEVICE = "gpu"
    return {"gpu": "gpu-q", "cpu": "cpu-q"}


@pytest.mark.parametrize(
    ("default_device", "extra", "expected"),
    [
        ("gpu", {}, "gpu"),
        ("gpu", {"device": "cpu"}, "cpu"),
        ("gpu", {"device": "gpu"}, "gpu"),
        ("cpu", {}, "cpu"),
        ("cpu", {"device": "gpu"}, "gpu"),
    ],
)
def test_a_submission_is_sent_to_the_queue_of_its_device(
    api: Any,
    patient: Any,
    settings: Any,
    queues: dict[str, str],
    django_capture_on_commit_callbacks: Any,
    default_device: str,
    extra: dict[str, str],
    expected: str,
) -> None:
    settings.DEFAULT_DEVICE = default_device
    with mock.patch.object(dispatch.app, "send_task", autospec=True) as send_task:
        with django_capture_on_commit_callbacks(execute=True):
            response = submit(api, patient, **extra)
    assert response.status_code == 202, response.json()
    job = Job.objects.get(public_id=response.json()["job"]["id"])
    assert job.queue == queues[expected]
    send_task.assert_called_once_with(
        TASK_NAME,
        kwargs={"job_id": str(job.public_id), "contract_version": REQUEST_VERSION},
        queue=queues[expected],
        retry=False,
    )


def test_rejects_an_unknown_device(
    api: Any, patient: Any, queues: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    with mock.patch.object(dispatch.app, "send_task", autospec=True) as send_task:
        with django_capture_on_commit_callbacks(execute=True):
            response = submit(api, patient, device="tpu")
    assert response.status_code == 400
    assert "device" in response.json()
    send_task.assert_not_called()
    assert not Job.objects.exists()
