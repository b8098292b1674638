from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
import redis

from predictions import broker, dispatch
from predictions.models import AWAITING_DISPATCH_NOTE, Job
from tests.api import submit
from tests.factories import JobFactory
from tests.images import png_bytes
from tests.owned_redis import site_broker
from workers.config import broker_url
from workers.contracts import REQUEST_VERSION, TASK_NAME


def test_sends_the_task_by_name_only_after_commit(
    db: None, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with mock.patch.object(dispatch.app, "send_task", autospec=True) as send_task:
        with django_capture_on_commit_callbacks() as callbacks:
            job = JobFactory(queue="gpu-queue", dispatched_at=None)
            dispatch.enqueue(job)
            send_task.assert_not_called()
        for callback in callbacks:
            callback()
    send_task.assert_called_once_with(
        TASK_NAME,
        kwargs={"job_id": str(job.public_id), "contract_version": REQUEST_VERSION},
        queue="gpu-queue",
        retry=False,  # one attempt, bounded by the broker time limits; the dispatcher retries
    )
    job.refresh_from_db()
    assert job.dispatched_at is not None and not job.awaiting_dispatch


def test_the_message_carries_no_patient_data(
    api: Any, patient: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with mock.patch.object(dispatch.app, "send_task", autospec=True) as send_task:
        with django_capture_on_commit_callbacks(execute=True):
            submit(api, patient, png_bytes(), name="Jane_Doe.png")
    sent = repr(send_task.call_args)
    assert patient.external_id not in sent and "Jane" not in sent
    assert str(Job.objects.get().public_id) in sent


def test_a_broker_outage_is_logged_and_leaves_the_job_awaiting_dispatch(
    db: None, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        mock.patch.object(
            dispatch.app, "send_task", autospec=True, side_effect=ConnectionError("down")
        ) as send_task,
        django_capture_on_commit_callbacks(execute=True),
        caplog.at_level(logging.ERROR, logger="predictions.dispatch"),
    ):
        job = JobFactory(queue="gpu-queue", dispatched_at=None)
        dispatch.enqueue(job)
    send_task.assert_called_once()
    [record] = [r for r in caplog.records if r.name == "predictions.dispatch"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == f"could not send job {job.public_id} to queue gpu-queue"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ConnectionError)
    assert job.awaiting_dispatch  # what the response tells the caller
    job.refresh_from_db()
    assert job.status == "queued" and job.awaiting_dispatch


def test_after_a_failed_send_requests_leave_jobs_to_the_dispatcher_without_trying(
    db: None, django_capture_on_commit_callbacks: Any
) -> None:
    with mock.patch.object(
        dispatch.app, "send_task", autospec=True, side_effect=ConnectionError("down")
    ) as send_task:
        with django_capture_on_commit_callbacks(execute=True):
            dispatch.enqueue(JobFactory(dispatched_at=None))
        with django_capture_on_commit_callbacks(execute=True):
            later = JobFactory(dispatched_at=None)
            dispatch.enqueue(later)
    assert send_task.call_count == 1
    later.refresh_from_db()
    assert later.awaiting_dispatch


@pytest.fixture
def own_queue(settings: Any) -> Iterator[str]:
    name = f"test-dispatch-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(broker_url())
    client.delete(name)
    client.close()


def test_the_dispatcher_sends_waiting_jobs_once_the_broker_answers(
    db: None, own_queue: str
) -> None:
    waiting = JobFactory.create_batch(3, queue=own_queue, dispatched_at=None)
    sent_before = JobFactory(queue=own_queue)
    with site_broker("redis://127.0.0.1:1/0"):  # nothing listens there
        assert dispatch.send_waiting() == 0
    assert Job.objects.awaiting_dispatch().count() == 3

    assert dispatch.send_waiting() == 3
    assert not Job.objects.awaiting_dispatch().exists()
    assert broker.queue_depths([own_queue]) == {own_queue: 3}
    sent_before_mark = sent_before.dispatched_at
    sent_before.refresh_from_db()
    assert sent_before.dispatched_at == sent_before_mark  # not sent twice
    assert dispatch.send_waiting() == 0
    assert all(Job.objects.get(pk=job.pk).dispatched_at for job in waiting)


def test_a_submission_while_the_broker_is_down_is_accepted_and_says_so(
    transactional_db: None, api: Any, patient: Any, own_queue: str, settings: Any
) -> None:
    settings.INFERENCE_QUEUE = own_queue
    with site_broker("redis://127.0.0.1:1/0"):  # commits for real: the send runs in the request
        response = submit(api, patient, png_bytes())
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["job"]["status"] == "queued" and body["job"]["awaiting_dispatch"] is True
    assert body["detail"] == AWAITING_DISPATCH_NOTE
    assert api.get(body["job"]["url"]).json()["awaiting_dispatch"] is True

    assert dispatch.send_waiting() == 1
    assert api.get(body["job"]["url"]).json()["awaiting_dispatch"] is False
    assert broker.queue_depths([own_queue]) == {own_queue: 1}


def test_a_submission_with_the_broker_up_says_nothing_more(
    transactional_db: None, api: Any, patient: Any, own_queue: str, settings: Any
) -> None:
    settings.INFERENCE_QUEUE = own_queue
    response = submit(api, patient, png_bytes())
    body = response.json()
    assert body["job"]["awaiting_dispatch"] is False and "detail" not in body
    assert broker.queue_depths([own_queue]) == {own_queue: 1}
