"""The classification task: start the job, fetch its image, classify it, report back.

Delivery is at least once (acks_late, redelivery after a crash), and every report
to the site is idempotent, so running a task twice records one result.
"""

from __future__ import annotations

import logging
import socket

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init

from ml.errors import InvalidImageError, NotBrainMRIError
from workers import model_loader
from workers.contracts import (
    CONTRACT_VERSION,
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


class ModelTimeout(Exception):
    """The soft time limit struck while the model ran: the job's answer is a timeout."""


def site_client() -> SiteClient:
    global _client
    if _client is None:
        _client = SiteClient.from_environment()
    return _client


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
    autoretry_for=(SiteError,),
    max_retries=MAX_SITE_RETRIES,
    retry_backoff=BACKOFF_BASE_S,
    retry_backoff_max=BACKOFF_CAP_S,
    retry_jitter=False,
)
def predict_scan(
    self: Task[[str, int], str], job_id: str, contract_version: int = CONTRACT_VERSION
) -> str:
    worker = self.request.hostname or socket.gethostname()
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
        if not exc.permanent:
            log.warning("job %s: site unreachable (%s); retrying", job_id, exc)
            raise
        log.error("job %s: the site refused a report: %s", job_id, exc)
        return "refused"


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
    return PredictionResult(
        job_id=job_id,
        label=classification.label,
        probabilities=classification.probabilities,
        model_version=classification.model_version,
        inference_ms=classification.inference_ms,
        worker=worker,
        needs_review=classification.needs_review,
        heatmap_png=explanation.layer_png,
    )
