"""Portal pages. Each one requires login and looks rows up only inside the caller's
organisation, so another clinic's patient, scan or job is a 404 that reveals nothing."""

from __future__ import annotations

import logging
import tempfile
import uuid
from datetime import datetime
from typing import TypedDict, TypeVar

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from predictions import audit, broker, jobs, reviews
from predictions.models import (
    LABELS,
    AuditEvent,
    Job,
    Organisation,
    Patient,
    Prediction,
    Scan,
    organisation_of,
)
from predictions.portal.forms import PatientForm, ReviewForm, ScanUploadForm
from workers.contracts import FailureCode

log = logging.getLogger(__name__)
Action, Outcome = AuditEvent.Action, AuditEvent.Outcome
M = TypeVar("M", bound=Patient | Job | Scan)

PATIENTS_PER_PAGE = 25
STATUS_WORDS = {
    Job.Status.QUEUED: "queued",
    Job.Status.RUNNING: "running",
    Job.Status.SUCCEEDED: "done",
    Job.Status.FAILED: "failed",
}
# Failures that are the model's answer about the image, shown as an outcome, not an error.
OUTCOME_WORDS = {FailureCode.NOT_BRAIN_MRI: "Not a brain MRI slice"}
DASHBOARD_TIMEOUT_S = 1.0


def _organisation(request: HttpRequest) -> Organisation:
    organisation = organisation_of(request.user)
    if organisation is None:
        raise PermissionDenied("Your account does not belong to an organisation.")
    return organisation


def _patient(request: HttpRequest, public_id: uuid.UUID, action: str) -> Patient:
    patients = Patient.objects.filter(organisation=_organisation(request))
    return _found_or_denied(request, patients, public_id, action)


def _jobs(request: HttpRequest) -> QuerySet[Job]:
    _organisation(request)
    return Job.objects.visible_to(request.user).select_related(
        "scan__patient", "prediction", "review__reviewed_by"
    )


def _job(request: HttpRequest, public_id: uuid.UUID, action: str) -> Job:
    return _found_or_denied(request, _jobs(request), public_id, action)


def _found_or_denied(
    request: HttpRequest, rows: QuerySet[M], public_id: uuid.UUID, action: str
) -> M:
    """Return the row, or record the refused `action` in the audit log and answer 404."""
    try:
        return rows.get(public_id=public_id)
    except rows.model.DoesNotExist:
        audit.record(request, action, outcome=Outcome.DENIED, object_id=str(public_id))
        raise Http404("No such record in your organisation.") from None


class JobState(TypedDict):
    """A job as a page row and the status poll (portal.js) show it."""

    id: str
    status: str
    status_text: str
    finished: bool
    elapsed_s: float
    label: str | None
    confidence: float | None
    needs_review: bool
    failure_code: str
    outcome: str | None
    can_retry: bool
    error: str
    url: str
    scan_image_url: str


class Bar(TypedDict):
    label: str
    percent: float
    top: bool


def job_state(job: Job) -> JobState:
    """Return what a page row (and the status poll) shows about a job."""
    prediction = getattr(job, "prediction", None) if job.is_finished else None
    outcome = OUTCOME_WORDS.get(FailureCode(job.failure_code)) if job.failure_code else None
    end = job.finished_at or timezone.now()
    return {
        "id": str(job.public_id),
        "status": job.status,
        # An outcome (not a brain MRI) is a finished answer, not an error.
        "status_text": "done" if outcome else STATUS_WORDS[Job.Status(job.status)],
        "finished": job.is_finished,
        "elapsed_s": round(max(0.0, (end - job.created).total_seconds()), 1),
        "label": prediction.label if prediction else None,
        "confidence": round(prediction.confidence, 3) if prediction else None,
        "needs_review": bool(prediction and prediction.needs_review),
        "failure_code": job.failure_code,
        "outcome": outcome,
        "can_retry": job.can_retry,
        "error": job.error,
        "url": reverse("portal:job", args=[job.public_id]),
        "scan_image_url": reverse("portal:scan-image", args=[job.scan.public_id]),
    }


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    visible = _jobs(request)
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    todays = visible.filter(created__gte=today)
    # The model's answers about the image ("not a brain MRI slice") are no failures.
    answered = Q(status=Job.Status.FAILED, failure_code__in=list(OUTCOME_WORDS))
    counts = dict.fromkeys(Job.Status.values, 0)
    for row in todays.exclude(answered).values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    queue = broker.queue_for()
    context = {
        "counts": [(STATUS_WORDS[Job.Status(status)], n) for status, n in counts.items()],
        "queue": queue,
        "queue_length": _queue_length(queue),
        "workers": _workers_online(),
        "failures": visible.filter(status=Job.Status.FAILED)
        .exclude(failure_code__in=list(OUTCOME_WORDS))
        .select_related("scan__patient")[:10],
        "to_review": visible.filter(status=Job.Status.SUCCEEDED, review__isnull=True).count(),
        "refused_today": todays.filter(answered).count(),
        "flower_url": settings.FLOWER_URL,
    }
    return render(request, "predictions/dashboard.html", context)


def _queue_length(queue: str) -> int | None:
    """Return the messages waiting in `queue`, or None when the broker cannot be asked."""
    try:
        return broker.queue_depths([queue], timeout_s=DASHBOARD_TIMEOUT_S)[queue]
    except broker.BrokerUnavailable:
        log.warning("queue length unavailable", exc_info=True)
        return None


def _workers_online() -> list[str] | None:
    """Return the names of workers answering, or None when the broker cannot be asked."""
    try:
        return sorted(broker.worker_queues(timeout_s=DASHBOARD_TIMEOUT_S))
    except broker.BrokerUnavailable:
        log.warning("workers unavailable", exc_info=True)
        return None


@login_required
@require_GET
def patient_list(request: HttpRequest) -> HttpResponse:
    patients = (
        Patient.objects.filter(organisation=_organisation(request))
        .annotate(scan_count=Count("scans"))
        .order_by("-created")
    )
    query = request.GET.get("q", "").strip()
    if query:
        patients = patients.filter(external_id__icontains=query)
    page = Paginator(patients, PATIENTS_PER_PAGE).get_page(request.GET.get("page"))
    # The search term is an MRN or part of one: the log says a search happened, not for what.
    detail = f"page {page.number}" + (", searched" if query else "")
    audit.record(request, Action.LIST_PATIENTS, detail=detail)
    return render(request, "predictions/patient_list.html", {"page": page, "query": query})


@login_required
@require_http_methods(["GET", "POST"])
def patient_create(request: HttpRequest) -> HttpResponse:
    organisation = _organisation(request)
    form = PatientForm(request.POST or None, organisation=organisation)
    if request.method == "POST" and form.is_valid():
        patient = form.save(commit=False)
        patient.organisation, patient.created_by = organisation, request.user
        patient.save()
        audit.record(request, Action.CREATE_PATIENT, patient)
        messages.success(request, f"Patient {patient.external_id} registered.")
        return redirect("portal:patient", public_id=patient.public_id)
    return render(request, "predictions/patient_form.html", {"form": form})


@login_required
@require_GET
def patient_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    patient = _patient(request, public_id, Action.VIEW_PATIENT)
    audit.record(request, Action.VIEW_PATIENT, patient)
    patient_jobs = _jobs(request).filter(scan__patient=patient).order_by("-created")
    context = {
        "patient": patient,
        "rows": [(job, job_state(job)) for job in patient_jobs],
        "scan_count": patient.scans.count(),
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
    }
    return render(request, "predictions/patient_detail.html", context)


@login_required
@require_POST
def scan_upload(request: HttpRequest, public_id: uuid.UUID) -> JsonResponse:
    """Take one file (the page sends each file on its own) and queue a job for it."""
    patient = _patient(request, public_id, Action.SUBMIT_SCAN)
    form = ScanUploadForm(files=request.FILES)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get("image", ["Invalid upload."])}, status=400)
    data = form.cleaned_data
    job = jobs.submit_scan(patient, data["image"], data["facts"], request.user)
    audit.record(request, Action.SUBMIT_SCAN, job)
    return JsonResponse({"job": job_state(job)}, status=202)


@login_required
@require_GET
def job_status(request: HttpRequest) -> JsonResponse:
    """Return the state of the jobs named by `?id=` (at most 100), for the page's polling."""
    wanted = [_uuid_or_none(raw) for raw in request.GET.getlist("id")[:100]]
    found = _jobs(request).filter(public_id__in=[i for i in wanted if i])
    return JsonResponse({"jobs": [job_state(job) for job in found]})


def _uuid_or_none(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


@login_required
@require_GET
def job_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    job = _job(request, public_id, Action.VIEW_RESULT)
    audit.record(request, Action.VIEW_RESULT, job)
    review = getattr(job, "review", None)
    prediction = getattr(job, "prediction", None)
    initial = {"label": review.label if review else getattr(prediction, "label", None)}
    context = {
        "job": job,
        "state": job_state(job),
        "prediction": prediction,
        "bars": _bars(prediction),
        "review": review,
        "form": ReviewForm(initial={**initial, "comment": review.comment if review else ""}),
        "timings": _timings(job),
    }
    return render(request, "predictions/job_detail.html", context)


def _bars(prediction: Prediction | None) -> list[Bar]:
    if prediction is None:
        return []
    return [
        {
            "label": label.replace("_", " "),
            "percent": round(100 * float(prediction.probabilities.get(label, 0.0)), 1),
            "top": label == prediction.label,
        }
        for label in LABELS
    ]


def _timings(job: Job) -> dict[str, float | None]:
    def seconds(start: datetime | None, end: datetime | None) -> float | None:
        return round((end - start).total_seconds(), 2) if start and end else None

    prediction = getattr(job, "prediction", None)
    return {
        "waiting_s": seconds(job.queued_at, job.started_at),
        "running_s": seconds(job.started_at, job.finished_at),
        "total_s": seconds(job.created, job.finished_at),
        "inference_ms": round(prediction.inference_ms, 1) if prediction else None,
    }


@login_required
@require_POST
def job_review(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    job = _job(request, public_id, Action.REVIEW)
    form = ReviewForm(request.POST)
    if job.status != Job.Status.SUCCEEDED:
        messages.error(request, "Only a finished result can be reviewed.")
    elif form.is_valid():
        review = reviews.record_review(
            job, form.cleaned_data["label"], form.cleaned_data["comment"], request.user
        )
        verdict = "confirmed" if review.confirmed else f"corrected to {review.label}"
        audit.record(request, Action.REVIEW, job, detail=verdict)
        messages.success(request, f"Review saved: {verdict}.")
    else:
        messages.error(request, form.error_text())
    return redirect("portal:job", public_id=job.public_id)


@login_required
@require_POST
def job_retry(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    job = _job(request, public_id, Action.RETRY)
    try:
        new_job = jobs.retry(job)
    except ValueError as exc:
        messages.error(request, f"This job cannot be retried: {exc}.")
        return redirect("portal:job", public_id=job.public_id)
    audit.record(request, Action.RETRY, new_job)
    messages.success(request, "The scan was queued again.")
    return redirect("portal:job", public_id=new_job.public_id)


@login_required
@require_GET
def scan_image(request: HttpRequest, public_id: uuid.UUID) -> FileResponse:
    scans = Scan.objects.filter(patient__organisation=_organisation(request))
    scan = _found_or_denied(
        request, scans.select_related("patient"), public_id, Action.VIEW_SCAN_IMAGE
    )
    audit.record(request, Action.VIEW_SCAN_IMAGE, scan)
    return _private_file(scan.image.open("rb"), scan.content_type)


@login_required
@require_GET
def job_heatmap(request: HttpRequest, public_id: uuid.UUID) -> FileResponse:
    job = _job(request, public_id, Action.VIEW_HEATMAP)
    prediction = getattr(job, "prediction", None)
    if prediction is None or not prediction.heatmap:
        raise Http404("This job has no heat map.")
    audit.record(request, Action.VIEW_HEATMAP, job)
    return _private_file(prediction.heatmap.open("rb"), "image/png")


def _private_file(handle: File, content_type: str) -> FileResponse:
    # No Cache-Control here: NoStoreMiddleware keeps patient images out of every cache.
    return FileResponse(handle, content_type=content_type)


@login_required
@permission_required("predictions.export_data", raise_exception=True)
@require_GET
def export_reviewed(request: HttpRequest) -> FileResponse:
    """Stream the organisation's reviewed scans as a zip of class folders.

    Needs the explicit `predictions.export_data` permission: staff status alone (which
    opens the admin) does not let anyone take every reviewed scan away.
    """
    # FileResponse closes the file once it has been sent.
    archive = tempfile.TemporaryFile()  # noqa: SIM115
    count = reviews.export_to_zip(archive, _organisation(request))
    audit.record(request, Action.EXPORT, detail=f"reviewed scans zip, {count} scans")
    archive.seek(0)
    name = f"reviewed-scans-{timezone.localdate():%Y%m%d}.zip"
    return FileResponse(archive, as_attachment=True, filename=name, content_type="application/zip")
