from __future__ import annotations

import logging
from typing import Any
from unittest import mock

import pytest

from predictions import dispatch
from predictions.models import Job
from tests.api import submit
from tests.factories import JobFactory
from tests.images import png_bytes
from workers.contracts import CONTRACT_VERSION, TASK_NAME


def test_sends_the_task_by_name_only_after_commit(
    db: None, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with mock.patch.object(dispatch.app, "send_task", autospec=True) as send_task:
        with django_capture_on_commit_callbacks() as callbacks:
            job = JobFactory(queue="gpu-queue")
            dispatch.enqueue(job)
            send_task.assert_not_called()
        for callback in callbacks:
            callback()
    send_task.assert_called_once_with(
        TASK_NAME,
        kwargs={"job_id": str(job.public_id), "contract_version": CONTRACT_VERSION},
        queue="gpu-queue",
    )


def test_the_message_carries_no_patient_data(
    api: Any, patient: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with mock.patch.object(dispatch.app, "send_task", autospec=True) as send_task:
        with django_capture_on_commit_callbacks(execute=True):
            submit(api, patient, png_bytes(), name="Jane_Doe.png")
    sent = repr(send_task.call_args)
    assert patient.external_id not in sent and "Jane" not in sent
    assert str(Job.objects.get().public_id) in sent


def test_a_broker_outage_is_logged_and_leaves_the_job_queued_for_the_sweeper(
    db: None, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        mock.patch.object(
            dispatch.app, "send_task", autospec=True, side_effect=ConnectionError("down")
        ) as send_task,
        django_capture_on_commit_callbacks(execute=True),
        caplog.at_level(logging.ERROR, logger="predictions.dispatch"),
    ):
        job = JobFactory(queue="gpu-queue")
        dispatch.enqueue(job)
    send_task.assert_called_once()
    [record] = [r for r in caplog.records if r.name == "predictions.dispatch"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == f"could not send job {job.public_id} to queue gpu-queue"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ConnectionError)
    job.refresh_from_db()
    assert job.status == "queued"
