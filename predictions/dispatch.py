"""The one place the site enqueues work, without ever making a request wait on the broker.

Tasks are sent by name, so the site never imports the worker code (or TensorFlow),
and only after the job row is committed, so a worker never looks for a row that
does not exist yet.

The job row is the source of truth. A job is marked dispatched (`dispatched_at`) in
the transaction that queues it and unmarked if the send then fails; while a send has
just failed, requests do not even try for `BROKER_DOWN_PAUSE_S`. A job left unmarked
waits in the database, and the dispatcher loop (`sweep_jobs --loop`) sends it within
JOB_DISPATCH_INTERVAL seconds of the broker's return. The mark is set before the send,
so the request and the dispatcher never both send one job.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from predictions import broker
from predictions.models import Job
from webapp.celery import app
from workers.contracts import TASK_NAME, PredictionRequest

log = logging.getLogger(__name__)

# After a failed send, requests leave new jobs to the dispatcher for this long, so a
# broker outage costs one request per process a time limit, not every request.
BROKER_DOWN_PAUSE_S = 10.0
_broker_down_until = 0.0


def enqueue(job: Job) -> None:
    """Send `job` to its queue once the current transaction commits, if the broker is up."""
    if time.monotonic() < _broker_down_until:
        log.warning("broker unreachable: job %s waits for the dispatcher", job.public_id)
        return
    claimed_at = _claim(job)
    if claimed_at is not None:
        transaction.on_commit(lambda: _send(job, claimed_at))


def send_waiting(limit: int = 500) -> int:
    """Send up to `limit` jobs awaiting dispatch, oldest first; return how many were sent.

    Asks the broker first and stops at the first failed send, so a broker that is still
    down costs one short time limit per call.
    """
    waiting = list(Job.objects.awaiting_dispatch().order_by("queued_at")[:limit])
    if not waiting:
        return 0
    try:
        broker.ping()
    except broker.BrokerUnavailable:
        return 0
    sent = 0
    for job in waiting:
        claimed_at = _claim(job)
        if claimed_at is None:
            continue  # another dispatcher took it
        if not _send(job, claimed_at):
            break
        sent += 1
    if sent:
        log.info("dispatched %d job(s) that waited for the broker", sent)
    return sent


def _claim(job: Job) -> datetime | None:
    """Mark `job` dispatched unless someone else has; return the mark, or None."""
    claimed_at = timezone.now()
    if not Job.objects.awaiting_dispatch().filter(pk=job.pk).update(dispatched_at=claimed_at):
        return None
    job.dispatched_at = claimed_at
    return claimed_at


def _send(job: Job, claimed_at: datetime) -> bool:
    """Send the claimed `job`; on failure unmark it for the dispatcher and return False."""
    global _broker_down_until
    request = PredictionRequest(job_id=str(job.public_id))
    try:
        # No publish retries: the time limits bound one attempt, the dispatcher does the rest.
        app.send_task(TASK_NAME, kwargs=request.task_kwargs(), queue=job.queue, retry=False)
    except Exception:
        log.exception("could not send job %s to queue %s", request.job_id, job.queue)
        _broker_down_until = time.monotonic() + BROKER_DOWN_PAUSE_S
        Job.objects.filter(pk=job.pk, dispatched_at=claimed_at).update(dispatched_at=None)
        job.dispatched_at = None
        return False
    _broker_down_until = 0.0
    return True
