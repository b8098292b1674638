"""The one place the site enqueues work.

Tasks are sent by name, so the site never imports the worker code (or TensorFlow),
and only after the job row is committed, so a worker never looks for a row that
does not exist yet.
"""

from __future__ import annotations

import logging

from django.db import transaction

from predictions.models import Job
from webapp.celery import app
from workers.contracts import TASK_NAME, PredictionRequest

log = logging.getLogger(__name__)


def enqueue(job: Job) -> None:
    """Send `job` to its queue once the current transaction commits."""
    request = PredictionRequest(job_id=str(job.public_id))
    queue = job.queue
    transaction.on_commit(lambda: _send(request, queue))


def _send(request: PredictionRequest, queue: str) -> None:
    try:
        app.send_task(TASK_NAME, kwargs=request.task_kwargs(), queue=queue)
    except Exception:
        # The row stays queued; the sweeper sends it again once the broker is back.
        log.exception("could not send job %s to queue %s", request.job_id, queue)
