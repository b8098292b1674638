"""The life of a job: submitted, started by a worker, finished with a result or a reason.

Every transition that a worker reports is one conditional UPDATE matching only
unfinished jobs. Celery delivers at least once (acks_late, redelivery after a
crash), so the same report can arrive twice; the second one changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import IO

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from predictions import broker, dispatch
from predictions.images import ImageFacts
from predictions.models import Job, Patient, Prediction, Scan
from workers.contracts import FailureCode, PredictionResult

log = logging.getLogger(__name__)


def submit_scan(
    patient: Patient,
    upload: IO[bytes],
    facts: ImageFacts,
    user: User | AnonymousUser,
    device: str | None = None,
    original_name: str = "",
) -> Job:
    """Store a checked upload as a scan and queue a job for it on `device` (gpu or cpu).

    `original_name` (the client's file name) is kept for people of the organisation only.
    """
    with transaction.atomic():
        scan = Scan(
            patient=patient,
            original_name=original_name[: Scan._meta.get_field("original_name").max_length or 255],
            sha256=facts.sha256,
            content_type=facts.content_type,
            size_bytes=facts.size_bytes,
            width=facts.width,
            height=facts.height,
            uploaded_by=user if isinstance(user, User) else None,
        )
        scan.image.save("upload", File(upload), save=False)
        scan.save()
        return queue_job(scan, device)


def earlier_job_for_same_image(patient: Patient, sha256: str) -> Job | None:
    """Return the newest job on a scan of `patient` with exactly these bytes, if any.

    Voided scans do not count: re-uploading an image voided in error is the remedy.
    """
    return (
        Job.objects.filter(scan__patient=patient, scan__sha256=sha256, scan__voided_at__isnull=True)
        .order_by("-created")
        .first()
    )


def queue_job(scan: Scan, device: str | None = None) -> Job:
    """Create a job for `scan` and send it once the transaction commits.

    The job is accepted whatever the broker does: while the broker is unreachable it
    waits in the database (`awaiting_dispatch`) and the dispatcher sends it later.
    """
    job = Job.objects.create(scan=scan, queue=broker.queue_for(device))
    dispatch.enqueue(job)
    return job


def retry(job: Job) -> Job:
    """Queue a fresh job for a failed job's scan; the failed one stays as history."""
    if job.status != Job.Status.FAILED:
        raise ValueError("only a failed job can be retried")
    if not job.can_retry:
        raise ValueError(f"a retry cannot change this outcome ({job.failure_code})")
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


def record_result(result: PredictionResult) -> bool:
    """Store a result unless the job already finished; return whether this call stored it."""
    public_id = uuid.UUID(result.job_id)
    with transaction.atomic():
        updated = Job.unfinished_with_id(public_id).update(
            status=Job.Status.SUCCEEDED,
            finished_at=timezone.now(),
            model_version=result.model_version,
            worker=result.worker,
            failure_code="",
            error="",
        )
        if not updated:
            return False
        _create_prediction(Job.objects.get(public_id=public_id), result)
    return True


def _create_prediction(job: Job, result: PredictionResult) -> None:
    prediction = Prediction(
        job=job,
        label=result.label,
        probabilities=result.probabilities,
        needs_review=result.needs_review,
        model_version=result.model_version,
        inference_ms=result.inference_ms,
    )
    if result.heatmap_png:
        prediction.heatmap.save("heatmap.png", ContentFile(result.heatmap_png), save=False)
    prediction.save()


def record_failure(public_id: uuid.UUID, code: FailureCode, reason: str, worker: str = "") -> bool:
    """Fail the job with `code` and `reason` unless it already finished; return whether it did."""
    changes: dict[str, object] = {
        "status": Job.Status.FAILED,
        "finished_at": timezone.now(),
        "failure_code": code.value,
        "error": reason[:2000],
    }
    if worker:
        changes["worker"] = worker
    return bool(Job.unfinished_with_id(public_id).update(**changes))


def stale_jobs(now: datetime | None = None) -> list[Job]:
    """Return jobs queued or running for longer than their limits allow."""
    queued_for = timedelta(seconds=settings.JOB_QUEUED_TIMEOUT)
    running_for = timedelta(seconds=settings.JOB_RUNNING_TIMEOUT)
    return list(Job.objects.stale(queued_for, running_for, now).select_related("scan"))


def sweep(now: datetime | None = None) -> tuple[int, int]:
    """Send stale jobs again, or fail those out of attempts; return (requeued, failed).

    The broker redelivers what a dead worker held, but a message can still be lost
    (Redis flushed, broker restored from an old snapshot). The database is the
    source of truth, so no job is left hanging whatever the broker did.
    """
    requeued = failed = 0
    for job in stale_jobs(now):
        if _out_of_attempts(job, now or timezone.now()):
            failed += record_failure(job.public_id, FailureCode.GAVE_UP, _gave_up_reason(job))
        else:
            requeued += _requeue(job)
    return requeued, failed


def _out_of_attempts(job: Job, now: datetime) -> bool:
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
            status=Job.Status.QUEUED, queued_at=timezone.now(), dispatched_at=None
        )
        if updated:
            log.warning("requeueing stale job %s (was %s)", job.public_id, job.status)
            dispatch.enqueue(job)
    return updated
