"""Portal pages. Each one requires login and looks rows up only inside the caller's
organisation, so another clinic's patient, scan or job is a 404 that reveals nothing."""

from __future__ import annotations

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
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from dicom import portal as dicom_portal
from dicom.uploads import is_dicom_file
from predictions import audit, broker, broker_status, corrections, jobs, reviews, thumbnails
from predictions.identity import find_patient
from predictions.models import (
    AWAITING_DISPATCH_NOTE,
    LABEL_WORDS,
    LABELS,
    AuditEvent,
    Job,
    Organisation,
    Patient,
    Prediction,
    Review,
    Scan,
    identifier_key,
    organisation_of,
)
from predictions.portal import worklist as worklists
from predictions.portal.forms import (
    MoveScanForm,
    PatientForm,
    ReviewForm,
    ScanUploadForm,
    VoidScanForm,
)
from workers.contracts import FailureCode

Action, Outcome = AuditEvent.Action, AuditEvent.Outcome
M = TypeVar("M", bound=Patient | Job | Scan)

PATIENTS_PER_PAGE = 25
WORKLIST_PER_PAGE = 25
SCANS_PER_PAGE = 25
# Failures that are the model's answer about the image, shown as an outcome, not an error.
OUTCOME_WORDS = {FailureCode.NOT_BRAIN_MRI: "Not a brain MRI slice"}


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
    newest_first = Review.objects.select_related("reviewed_by").order_by("-reviewed_at", "-pk")
    return (
        Job.objects.visible_to(request.user)
        .select_related("scan__patient", "prediction")
        .prefetch_related(Prefetch("reviews", queryset=newest_first))
    )


def _answer_hidden(request: HttpRequest, job: Job) -> bool:
    """Whether the model's answer is kept from this reader until they record their own."""
    blind = _organisation(request).hide_model_until_review
    return blind and job.status == Job.Status.SUCCEEDED and not job.reviewed_by_user(request.user)


def _job(request: HttpRequest, public_id: uuid.UUID, action: str = Action.VIEW_RESULT) -> Job:
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
    note: str
    url: str
    scan_image_url: str
    answer_hidden: bool


class Bar(TypedDict):
    label: str
    percent: float
    top: bool


def job_state(job: Job, answer_hidden: bool = False) -> JobState:
    """Return what a page row (and the status poll) shows about a job.

    With `answer_hidden` (blind reading) the model's label and confidence are left out.
    """
    prediction = getattr(job, "prediction", None) if job.is_finished and not answer_hidden else None
    outcome = OUTCOME_WORDS.get(FailureCode(job.failure_code)) if job.failure_code else None
    end = job.finished_at or timezone.now()
    return {
        "id": str(job.public_id),
        "status": job.status,
        # The API's word: a refusal ("not a brain MRI") is a failed job whose outcome says why.
        "status_text": job.status,
        "finished": job.is_finished,
        "elapsed_s": round(max(0.0, (end - job.created).total_seconds()), 1),
        "label": prediction.label if prediction else None,
        "confidence": round(prediction.confidence, 3) if prediction else None,
        "needs_review": bool(prediction and prediction.needs_review),
        "failure_code": job.failure_code,
        "outcome": outcome,
        "can_retry": job.can_retry,
        "error": job.error,
        "note": AWAITING_DISPATCH_NOTE if job.awaiting_dispatch else "",
        "url": reverse("portal:job", args=[job.public_id]),
        "scan_image_url": reverse("portal:scan-image", args=[job.scan.public_id]),
        "answer_hidden": answer_hidden,
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
    # The sweeper's last picture of the broker: the page never waits on the broker itself.
    seen = broker_status.latest()
    reachable = seen if seen is not None and seen.reachable else None
    context = {
        "counts": list(counts.items()),
        "queue": queue,
        "queue_length": reachable.queue_depths.get(queue) if reachable else None,
        "workers": reachable.workers if reachable else None,
        "broker_status": seen,
        "broker_status_stale": seen is not None and broker_status.is_stale(seen),
        "awaiting_dispatch": Job.objects.awaiting_dispatch().visible_to(request.user).count(),
        "failures": visible.filter(status=Job.Status.FAILED)
        .exclude(failure_code__in=list(OUTCOME_WORDS))
        .select_related("scan__patient")[:10],
        "to_review": visible.filter(status=Job.Status.SUCCEEDED, reviews__isnull=True).count(),
        "refused_today": todays.filter(answered).count(),
        "flower_url": settings.FLOWER_URL,
        "today": today,
    }
    return render(request, "predictions/dashboard.html", context)


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
        patients = patients.filter(identifier_key__contains=identifier_key(query))
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
    patient_jobs = _jobs(request).filter(scan__patient=patient).order_by("-created", "-pk")
    page = Paginator(patient_jobs, SCANS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "patient": patient,
        "page": page,
        "rows": [(job, job_state(job, _answer_hidden(request, job))) for job in page],
        "scan_count": patient.scans.count(),
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
    }
    return render(request, "predictions/patient_detail.html", context)


@login_required
@require_POST
def scan_upload(request: HttpRequest, public_id: uuid.UUID) -> JsonResponse:
    """Take one file (the page sends each file on its own) and queue a job for it.

    An image identical to one the patient already has is a 409 naming the earlier result,
    unless the form says `allow_duplicate`.
    """
    patient = _patient(request, public_id, Action.SUBMIT_SCAN)
    # DICOM hook: a .dcm file or a zip of a series or study is the dicom app's to take.
    if is_dicom_file(upload := request.FILES.get("image")):
        answer = dicom_portal.upload(request, patient, upload)
        if answer.status_code == 202:
            audit.record(request, Action.SUBMIT_SCAN, patient, detail="DICOM upload")
        return answer
    form = ScanUploadForm(request.POST, files=request.FILES)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get("image", ["Invalid upload."])}, status=400)
    data = form.cleaned_data
    if not data["allow_duplicate"]:
        earlier = jobs.earlier_job_for_same_image(patient, data["facts"].sha256)
        if earlier is not None:
            return JsonResponse(_duplicate_answer(earlier), status=409)
    job = jobs.submit_scan(
        patient, data["image"], data["facts"], request.user, original_name=data["image"].name
    )
    audit.record(request, Action.SUBMIT_SCAN, job)
    # The page inserts the server's own rows: one template for page loads and live updates.
    context = {"job": job, "state": job_state(job)}
    body = {
        "job": context["state"],
        "row_html": render_to_string("predictions/_job_row.html", context, request),
        "upload_html": render_to_string("predictions/_upload_item.html", context, request),
    }
    return JsonResponse(body, status=202)


@login_required
@require_GET
def job_row(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """Return the job's table row, as the page shows it (htmx polls it until finished)."""
    return _render_job_fragment(request, public_id, "predictions/_job_row.html")


@login_required
@require_GET
def job_upload_item(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """Return the upload list's line for the job: a link to the result with its outcome."""
    return _render_job_fragment(request, public_id, "predictions/_upload_item.html")


def _render_job_fragment(request: HttpRequest, public_id: uuid.UUID, template: str) -> HttpResponse:
    job = _job(request, public_id)
    return render(
        request, template, {"job": job, "state": job_state(job, _answer_hidden(request, job))}
    )


@login_required
@require_GET
def job_badge(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """Return the status badge of an unfinished job; once finished, have htmx reload the page."""
    job = _job(request, public_id)
    if job.is_finished:
        return HttpResponseClientRefresh()
    return render(request, "predictions/_job_badge.html", {"job": job, "state": job_state(job)})


def _duplicate_answer(earlier: Job) -> dict[str, object]:
    when = timezone.localtime(earlier.created).strftime("%Y-%m-%d %H:%M %Z")
    return {
        "errors": [f"This patient already has this exact image (uploaded {when})."],
        "duplicate_of": {"id": str(earlier.public_id), "url": _job_url(earlier)},
    }


@login_required
@require_POST
def scan_move(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    scan = _scan(request, public_id, Action.MOVE_SCAN)
    moved_from = scan.patient
    form = MoveScanForm(request.POST, prefix="move")
    if not form.is_valid():
        messages.error(request, form.error_text())
        return redirect(_scan_page(scan))
    target = find_patient(scan.patient.organisation, form.cleaned_data["patient"])
    if target is None:
        messages.error(request, "No patient of your organisation has this identifier.")
        return redirect(_scan_page(scan))
    try:
        correction = corrections.move_scan(scan, target, form.cleaned_data["reason"], request.user)
    except corrections.CorrectionError as exc:
        messages.error(request, str(exc))
    else:
        detail = f"from patient {moved_from.public_id}"
        audit.record(request, Action.MOVE_SCAN, correction.scan, detail=detail)
        messages.success(request, f"The scan was moved to patient {target.external_id}.")
    return redirect(_scan_page(scan))


@login_required
@require_POST
def scan_void(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    scan = _scan(request, public_id, Action.VOID_SCAN)
    form = VoidScanForm(request.POST, prefix="void")
    if not form.is_valid():
        messages.error(request, form.error_text())
        return redirect(_scan_page(scan))
    try:
        corrections.void_scan(scan, form.cleaned_data["reason"], request.user)
    except corrections.CorrectionError as exc:
        messages.error(request, str(exc))
    else:
        audit.record(request, Action.VOID_SCAN, scan)
        messages.success(request, "The scan was voided; it stays on record.")
    return redirect(_scan_page(scan))


def _scan(request: HttpRequest, public_id: uuid.UUID, action: str) -> Scan:
    scans = Scan.objects.select_related("patient__organisation").filter(
        patient__organisation=_organisation(request)
    )
    return _found_or_denied(request, scans, public_id, action)


def _scan_page(scan: Scan) -> str:
    """Return the page of the scan's newest job, where corrections are made and shown."""
    job = scan.jobs.order_by("-created").first()
    return _job_url(job) if job else reverse("portal:patient", args=[scan.patient.public_id])


@login_required
@require_GET
def job_status(request: HttpRequest) -> JsonResponse:
    """Return the state of the jobs named by `?id=` (at most 100), for the page's polling."""
    wanted = [_uuid_or_none(raw) for raw in request.GET.getlist("id")[:100]]
    found = _jobs(request).filter(public_id__in=[i for i in wanted if i])
    return JsonResponse({"jobs": [job_state(job, _answer_hidden(request, job)) for job in found]})


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
    hidden = _answer_hidden(request, job)
    prediction = getattr(job, "prediction", None)
    shown = None if hidden else prediction
    history = list(job.reviews.all())
    worklist_query = request.GET.get("worklist", "")
    context = {
        "job": job,
        "worklist_query": worklist_query,
        "reading": _reading_position(request, job, worklist_query),
        "state": job_state(job, hidden),
        "prediction": shown,
        "answer_hidden": hidden,
        "reviewable": prediction is not None,
        "bars": _bars(shown),
        "review": history[0] if history else None,
        "history": history,
        # Never pre-filled: a verdict must be the reader's own choice, not the model's.
        "form": ReviewForm(),
        "timings": _timings(job),
        "corrections": job.scan.corrections.select_related(
            "from_patient", "to_patient", "corrected_by"
        ),
        "move_form": MoveScanForm(prefix="move"),
        "void_form": VoidScanForm(prefix="void"),
        **_heatmap_kind(shown),
    }
    return render(request, "predictions/job_detail.html", context)


@login_required
@require_GET
def worklist(request: HttpRequest) -> HttpResponse:
    """Results across the organisation's patients, most suspicious first, filtered and paged."""
    data = worklists.filter_data(request.GET.dict())
    filterset = worklists.WorklistFilter(data, queryset=_worklist_jobs(request), request=request)
    rows = worklists.by_suspicion(filterset.qs) if filterset.is_valid() else _jobs(request).none()
    page = Paginator(rows, WORKLIST_PER_PAGE).get_page(request.GET.get("page"))
    query = urlencode(data)
    context = {
        "filter": filterset,
        "page": page,
        "rows": [
            (job, job_state(job, _answer_hidden(request, job)), _suspicion(job)) for job in page
        ],
        "worklist_query": query,
    }
    return render(request, "predictions/worklist.html", context)


def _worklist_jobs(request: HttpRequest) -> QuerySet[Job]:
    """The jobs a worklist draws from: the organisation's, less those of voided scans."""
    return _jobs(request).filter(scan__voided_at__isnull=True)


def _suspicion(job: Job) -> int | None:
    """Return the probability of any tumour in percent, or None without a prediction."""
    no_tumour = getattr(job, "no_tumour_probability", None)
    return None if no_tumour is None else round(100 * (1 - float(no_tumour)))


def _reading_position(request: HttpRequest, job: Job, query: str) -> dict[str, object] | None:
    """Return the job's place in the worklist it was opened from: neighbours, index, count."""
    if not query:
        return None
    data = worklists.filter_data(QueryDict(query).dict())
    filterset = worklists.WorklistFilter(data, queryset=_worklist_jobs(request), request=request)
    if not filterset.is_valid():
        return None
    ids = list(worklists.by_suspicion(filterset.qs).values_list("public_id", flat=True))
    if job.public_id not in ids:
        return {"index": None, "count": len(ids), "previous": None, "next": ids[0] if ids else None}
    index = ids.index(job.public_id)
    return {
        "index": index + 1,
        "count": len(ids),
        "previous": ids[index - 1] if index > 0 else None,
        "next": ids[index + 1] if index + 1 < len(ids) else None,
    }


def _heatmap_kind(prediction: Prediction | None) -> dict[str, bool]:
    """Say whether the heat map is drawn over the scan (a layer) or beside it (an old blend)."""
    has_heatmap = bool(prediction and prediction.heatmap)
    layer = has_heatmap and prediction is not None and prediction.heatmap_is_layer()
    return {"heatmap_layer": layer, "legacy_heatmap": has_heatmap and not layer}


def _words(label: str) -> str:
    """Return a label as people read it: "No tumour", "Glioma"."""
    return LABEL_WORDS.get(label, label)


def _bars(prediction: Prediction | None) -> list[Bar]:
    if prediction is None:
        return []
    return [
        {
            "label": _words(label),
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
        shown = not _answer_hidden(request, job)
        data = form.cleaned_data
        review = reviews.record_review(job, data["label"], data["comment"], request.user, shown)
        verdict = "confirmed" if review.confirmed else f"corrected to {_words(review.label)}"
        # The log keeps the contract's label key: stable, whatever the page's words.
        logged = "confirmed" if review.confirmed else f"corrected to {review.label}"
        audit.record(request, Action.REVIEW, job, detail=logged)
        messages.success(request, f"Review saved: {verdict}.")
    else:
        messages.error(request, form.error_text())
    return redirect(_job_url(job, request.POST.get("worklist", "")))


def _job_url(job: Job, worklist_query: str = "") -> str:
    """Return the job's page, keeping the worklist it was opened from (for next/previous)."""
    url = reverse("portal:job", args=[job.public_id])
    return f"{url}?{urlencode({'worklist': worklist_query})}" if worklist_query else url


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
def scan_thumbnail(request: HttpRequest, public_id: uuid.UUID) -> FileResponse:
    """Return a small PNG of the scan, made once on the server and kept beside it."""
    scan = get_object_or_404(
        Scan, public_id=public_id, patient__organisation=_organisation(request)
    )
    return _private_file(thumbnails.thumbnail_of(scan), "image/png")


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
