"""The classification task: start the job, fetch its image, classify it, report back.

Delivery is at least once (acks_late, redelivery after a crash), and every report
to the site is idempotent, so running a task twice records one result.

Two ways to run, chosen by the worker's pool:
- `--pool threads` (what `make run` and `python -m workers` start): each task hands its
  job to the process's batcher (`workers.batching`) and waits for its own outcome; the
  jobs of up to WORKER_BATCH_SIZE tasks go through the site and the model together.
  The model loads once, in the worker's only process.
- `--pool prefork` or `solo`: each task runs its one job alone (`run_job`), the model
  loaded in each pool child after the fork.
"""

from __future__ import annotations

import logging
import socket
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_process_init

from ml.errors import InvalidImageError, NotBrainMRIError
from workers import model_loader
from workers.batch_settings import batch_settings
from workers.batching import Batcher, BatchRunner, Stage, Ticket, result_of
from workers.contracts import (
    REQUEST_VERSION,
    TASK_NAME,
    ContractError,
    FailureCode,
    FailureReport,
    PredictionRequest,
    PredictionResult,
)
from workers.web_client import SiteClient, SiteError

log = logging.getLogger(__name__)

# Celery retries an unreachable site for about 15 minutes (10 s, 20 s, ... capped at
# 5 min), after which the site's sweeper queues the job again.
MAX_SITE_RETRIES = 6
BACKOFF_BASE_S = 10
BACKOFF_CAP_S = 300

_client: SiteClient | None = None
# Set in a worker with the threads pool (`use_batches`); None: each task runs alone.
_batcher: Batcher | None = None


class ModelTimeout(Exception):
    """The soft time limit struck while the model ran: the job's answer is a timeout."""


class WorkerBusy(Exception):
    """The job waited its whole time limit for a batch to take it: it never ran, so retry."""


def site_client() -> SiteClient:
    global _client
    if _client is None:
        _client = SiteClient.from_environment()
    return _client


@worker_init.connect
def use_batches(sender: Any, **kwargs: object) -> None:
    """With the threads pool, batch jobs across tasks and load the model in this process now.

    Fires in the worker's main process before it consumes. A prefork parent must not touch
    TensorFlow (its children would inherit it across the fork), so only the threads pool,
    which never forks, gets the batcher and the model here.
    """
    from celery.concurrency import get_implementation
    from celery.concurrency.thread import TaskPool as ThreadPool

    global _batcher
    if not issubclass(get_implementation(sender.pool_cls), ThreadPool):
        return
    knobs = batch_settings()
    if sender.concurrency < knobs.threads:
        log.warning(
            "WORKER_BATCH_SIZE x WORKER_BATCHES_IN_FLIGHT is %d but the worker runs %d threads: "
            "at most %d jobs are batched at once", knobs.threads, sender.concurrency,
            sender.concurrency,
        )  # fmt: skip
    worker = sender.hostname or socket.gethostname()
    runner = BatchRunner(site_client(), model_loader.current_engine, worker, knobs.fetch_threads)
    _batcher = Batcher(runner, knobs.size, knobs.wait_s, held=jobs_held, in_flight=knobs.in_flight)
    log.info(
        "batching up to %d jobs, waiting at most %d ms, %d batches at once",
        knobs.size, knobs.wait_ms, knobs.in_flight,
    )  # fmt: skip
    preload_model()


def jobs_held() -> int:
    """Messages this worker has received and not finished (ETA retries not yet due excluded)."""
    from celery.worker import state

    return len(state.reserved_requests)


@worker_process_init.connect
def preload_model(**kwargs: object) -> None:
    """Load the model in each child right after the fork, so the first job is not slow."""
    try:
        model_loader.current_engine()
    except Exception:
        # The first task reports the problem; a crash here would only restart the child.
        log.exception("could not preload the model")


# Only a transient SiteError leaves the task (a permanent one is answered below), so
# `autoretry_for` retries exactly what may succeed later.
@shared_task(
    name=TASK_NAME,
    bind=True,
    autoretry_for=(SiteError, WorkerBusy),
    max_retries=MAX_SITE_RETRIES,
    retry_backoff=BACKOFF_BASE_S,
    retry_backoff_max=BACKOFF_CAP_S,
    retry_jitter=False,
)
def predict_scan(
    self: Task[[str, int], str], job_id: str, contract_version: int = REQUEST_VERSION
) -> str:
    worker = self.request.hostname or socket.gethostname()
    if _batcher is not None:
        return run_in_batch(self, _batcher, job_id, contract_version, worker)
    try:
        return run_job(site_client(), job_id, contract_version, worker)
    except ModelTimeout:
        reason = f"The job took longer than the {self.app.conf.task_soft_time_limit} s limit."
        site_client().post_failure(FailureReport(job_id, FailureCode.TIMEOUT, reason, worker))
        return "failed"
    except SoftTimeLimitExceeded as exc:
        # Out of time outside the model: waiting on the site (a cut or slow link between
        # clouds). The scan was never classified, so this is no answer for it: try again.
        log.warning("job %s: out of time waiting for the site; retrying", job_id)
        raise SiteError("the site did not answer within the task's time limit", False) from exc
    except SiteError as exc:
        return refused_or_retry(job_id, exc)


def refused_or_retry(job_id: str, exc: SiteError) -> str:
    """Re-raise a transient error (autoretry); a permanent one ends the task as "refused"."""
    if not exc.permanent:
        log.warning("job %s: site unreachable (%s); retrying", job_id, exc)
        raise exc
    log.error("job %s: the site refused a report: %s", job_id, exc)
    return "refused"


def run_in_batch(
    task: Task[[str, int], str], batcher: Batcher, job_id: str, contract_version: int, worker: str
) -> str:
    """Hand the job to the batcher and wait for its outcome, at most the soft time limit.

    The threads pool enforces no time limit, so the wait does: out of time in the model
    is the job's answer (TIMEOUT), out of time anywhere else is no answer (retry).
    """
    ticket = batcher.submit(job_id, contract_version)
    try:
        return ticket.future.result(timeout=task.app.conf.task_soft_time_limit)
    except (FutureTimeout, SoftTimeLimitExceeded):
        return out_of_time(task, ticket, worker)
    except SiteError as exc:
        return refused_or_retry(job_id, exc)


def out_of_time(task: Task[[str, int], str], ticket: Ticket, worker: str) -> str:
    if ticket.future.cancel():
        log.warning("job %s: no batch took it within the time limit; retrying", ticket.job_id)
        raise WorkerBusy(f"job {ticket.job_id} waited its whole time limit for a batch")
    if ticket.stage is not Stage.MODEL:
        log.warning("job %s: out of time waiting for the site; retrying", ticket.job_id)
        raise SiteError("the site did not answer within the task's time limit", False)
    reason = f"The job took longer than the {task.app.conf.task_soft_time_limit} s limit."
    site_client().post_failure(FailureReport(ticket.job_id, FailureCode.TIMEOUT, reason, worker))
    return "failed"


def run_job(client: SiteClient, job_id: str, contract_version: int, worker: str) -> str:
    """Carry one job from start to a recorded outcome; return what happened, for the log."""
    try:
        PredictionRequest.from_task_kwargs(job_id, contract_version)
    except ContractError as exc:
        client.post_failure(FailureReport(job_id, FailureCode.CONTRACT, str(exc), worker))
        return "failed"
    if not client.start(job_id, worker).proceed:
        return "already finished"
    image = client.fetch_image(job_id)
    try:
        result = classify(job_id, image, worker)
    except SoftTimeLimitExceeded as exc:
        raise ModelTimeout from exc
    except InvalidImageError as exc:
        reason = f"The image cannot be classified: {exc}"
        client.post_failure(FailureReport(job_id, FailureCode.INVALID_IMAGE, reason, worker))
        return "failed"
    except NotBrainMRIError as exc:
        # An answer, not a fault: the model says the image is outside what it classifies.
        client.post_failure(FailureReport(job_id, FailureCode.NOT_BRAIN_MRI, str(exc), worker))
        return "not a brain MRI"
    client.post_result(result)
    return "succeeded"


def classify(job_id: str, image: bytes, worker: str) -> PredictionResult:
    engine = model_loader.current_engine()
    classification, explanation = engine.explain(image)
    return result_of(job_id, classification, explanation, worker)
