"""The life of a job: submitted, started by a worker, finished with a result or a reason.

Every transition that a worker reports is one conditional UPDATE matching only
unfinished jobs. Celery delivers at least once (acks_late, redelivery after a
crash), so the same report can arrive twice; the second one changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from predictions import dispatch
from predictions.images import ImageFacts
from predictions.models import Job, Patient, Prediction, Scan

log = logging.getLogger(__name__)


def submit_scan(
    patient: Patient, upload: IO[bytes], facts: ImageFacts, user: Any, device: str | None = None
) -> Job:
    """Store a checked upload as a scan and queue a job for it on `device` (gpu or cpu)."""
    with transaction.atomic():
        scan = Scan(
            patient=patient,
            sha256=facts.sha256,
            content_type=facts.content_type,
            size_bytes=facts.size_bytes,
            width=facts.width,
            height=facts.height,
            uploaded_by=user,
        )
        scan.image.save("upload", File(upload), save=False)
        scan.save()
        return queue_job(scan, device)


def queue_for(device: str | None) -> str:
    """Return the queue for `device`; None means the site's DEFAULT_DEVICE."""
    device = device or settings.DEFAULT_DEVICE
    return settings.CPU_QUEUE if device == "cpu" else settings.INFERENCE_QUEUE


def queue_job(scan: Scan, device: str | None = None) -> Job:
    """Create a job for `scan` and send it once the transaction commits."""
    job = Job.objects.create(scan=scan, queue=queue_for(device))
    dispatch.enqueue(job)
    return job


def retry(job: Job) -> Job:
    """Queue a fresh job for a failed job's scan; the failed one stays as history."""
    if job.status != Job.Status.FAILED:
        raise ValueError("only a failed job can be retried")
    with transaction.atomic():
        return queue_job(job.scan)


def mark_running(public_id: uuid.UUID, worker: str) -> Job | None:
    """Record that `worker` started the job; None when it is already finished."""
    updated = Job.unfinished_with_id(public_id).update(
        status=Job.Status.RUNNING,
        started_at=timezone.now(),
        worker=worker,
        attempts=F("attempts") + 1,
    )
    return Job.objects.get(public_id=public_id) if updated else None


@dataclass(frozen=True)
class Outcome:
    label: str
    probabilities: dict[str, float]
    model_version: str
    inference_ms: float
    worker: str
    heatmap_png: bytes | None


def record_result(public_id: uuid.UUID, outcome: Outcome) -> bool:
    """Store a result unless the job already finished; return whether this call stored it."""
    with transaction.atomic():
        updated = Job.unfinished_with_id(public_id).update(
            status=Job.Status.SUCCEEDED,
            finished_at=timezone.now(),
            model_version=outcome.model_version,
            worker=outcome.worker,
            error="",
        )
        if not updated:
            return False
        _create_prediction(Job.objects.get(public_id=public_id), outcome)
    return True


def _create_prediction(job: Job, outcome: Outcome) -> None:
    prediction = Prediction(
        job=job,
        label=outcome.label,
        probabilities=outcome.probabilities,
        model_version=outcome.model_version,
        inference_ms=outcome.inference_ms,
    )
    if outcome.heatmap_png:
        prediction.heatmap.save("heatmap.png", ContentFile(outcome.heatmap_png), save=False)
    prediction.save()


def record_failure(public_id: uuid.UUID, reason: str, worker: str = "") -> bool:
    """Fail the job with `reason` unless it already finished; return whether this call did."""
    changes: dict[str, Any] = {
        "status": Job.Status.FAILED,
        "finished_at": timezone.now(),
        "error": reason[:2000],
    }
    if worker:
        changes["worker"] = worker
    return bool(Job.unfinished_with_id(public_id).update(**changes))


def stale_jobs(now: Any = None) -> list[Job]:
    """Return jobs queued or running for longer than their limits allow."""
    now = now or timezone.now()
    queued_before = now - timedelta(seconds=settings.JOB_QUEUED_TIMEOUT)
    running_before = now - timedelta(seconds=settings.JOB_RUNNING_TIMEOUT)
    return list(
        Job.objects.filter(
            Q(status=Job.Status.QUEUED, queued_at__lt=queued_before)
            | Q(status=Job.Status.RUNNING, started_at__lt=running_before)
        ).select_related("scan")
    )


def sweep(now: Any = None) -> tuple[int, int]:
    """Send stale jobs again, or fail those out of attempts; return (requeued, failed).

    The broker redelivers what a dead worker held, but a message can still be lost
    (Redis flushed, broker restored from an old snapshot). The database is the
    source of truth, so no job is left hanging whatever the broker did.
    """
    requeued = failed = 0
    for job in stale_jobs(now):
        if _out_of_attempts(job, now or timezone.now()):
            failed += record_failure(job.public_id, _gave_up_reason(job))
        else:
            requeued += _requeue(job)
    return requeued, failed


def _out_of_attempts(job: Job, now: Any) -> bool:
    if job.attempts >= settings.JOB_MAX_ATTEMPTS:
        return True
    # A job no worker ever starts (no worker serves its queue) must fail too, in time.
    never_started_limit = settings.JOB_QUEUED_TIMEOUT * (settings.JOB_MAX_ATTEMPTS + 1)
    return (now - job.created).total_seconds() > never_started_limit


def _gave_up_reason(job: Job) -> str:
    return (
        f"Gave up after {job.attempts} attempt(s): no worker finished the job "
        f"(last status {job.status}, last worker {job.worker or 'none'})."
    )


def _requeue(job: Job) -> int:
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, status=job.status).update(
            status=Job.Status.QUEUED, queued_at=timezone.now()
        )
        if updated:
            log.warning("requeueing stale job %s (was %s)", job.public_id, job.status)
            dispatch.enqueue(job)
    return updated
