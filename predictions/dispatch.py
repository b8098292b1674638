"""The one place the site enqueues work, without ever making a request wait on the broker.

Tasks are sent by name, so the site never imports the worker code (or TensorFlow),
and only after the job row is committed, so a worker never looks for a row that
does not exist yet.

The job row is the source of truth. After the commit, the request claims the job
(sets `dispatched_at`, a conditional UPDATE) and sends it; a failed send unclaims it.
A request never waits long on the broker: one thread per web process sends at a time
(the others leave their job to the dispatcher rather than queue behind a stalled
broker), each send is bounded by the broker time limits, and after a failed send
requests do not try for `BROKER_DOWN_PAUSE_S`. A job left unclaimed waits in the
database, and the dispatcher loop (`sweep_jobs --loop`) sends it within
JOB_DISPATCH_INTERVAL seconds of the broker's return. Only the one who claims a job
sends it, so the request and the dispatcher never both send one job.
"""

from __future__ import annotations

import logging
import threading
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
# A healthy broker takes milliseconds per send; a request waits this long for the
# process's sender slot, then leaves its job to the dispatcher.
SENDER_WAIT_S = 0.2
_sender = threading.Lock()


def enqueue(job: Job) -> None:
    """Send `job` to its queue once the current transaction commits, unless that would wait."""
    # Robust: the job is committed, so a failure here (the database cut just now) must not
    # turn the 202 into an error; the job stays unclaimed and the dispatcher sends it.
    transaction.on_commit(lambda: _send_now(job), robust=True)


def _send_now(job: Job) -> None:
    if time.monotonic() < _broker_down_until:
        log.warning("broker unreachable: job %s waits for the dispatcher", job.public_id)
        return
    if not _sender.acquire(timeout=SENDER_WAIT_S):
        log.warning("broker slow: job %s waits for the dispatcher", job.public_id)
        return
    try:
        if (claimed_at := _claim(job)) is not None:
            _send(job, claimed_at)
    finally:
        _sender.release()


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
