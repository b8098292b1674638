"""The portal's DICOM side: uploads handed over by the scan upload view, and the study page."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET

from dicom.models import Study
from dicom.reading import DicomError
from dicom.studies import slice_outcomes, study_result, study_status
from dicom.uploads import read_dicom_upload, submit_dicom_upload
from predictions.models import Patient, organisation_of

# The module, not the function: the portal's upload view imports this module in turn.
from predictions.portal import views as portal_views


def upload(request: HttpRequest, patient: Patient, file: UploadedFile) -> JsonResponse:
    """Answer a DICOM file or zip dropped on a patient's page, in the portal's upload shape."""
    try:
        outcome = submit_dicom_upload(read_dicom_upload(file), patient, request.user)
    except DicomError as exc:
        return JsonResponse({"errors": [str(exc)]}, status=400)
    if not outcome.jobs and outcome.refusals and not outcome.duplicates:
        return JsonResponse({"errors": outcome.refusals}, status=422)
    states = [portal_views.job_state(job) for job in outcome.jobs]
    study_urls = [reverse("dicom:study", args=[study.public_id]) for study in outcome.studies]
    # The same server-rendered rows as an image upload gets (predictions/_job_row.html).
    contexts = [
        {"job": job, "state": state} for job, state in zip(outcome.jobs, states, strict=True)
    ]
    body = {
        "job": states[0] if states else None,
        "jobs": states,
        "studies": study_urls,
        "rows_html": [
            render_to_string("predictions/_job_row.html", context, request) for context in contexts
        ],
        "upload_html": render_to_string("predictions/_upload_item.html", contexts[0], request)
        if contexts
        else "",
    }
    return JsonResponse(body, status=202)


@login_required
@require_GET
def study_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    study = get_object_or_404(
        Study.objects.select_related("patient"),
        public_id=public_id,
        organisation=organisation_of(request.user),
    )
    outcomes = slice_outcomes(study)
    context = {
        "study": study,
        "status": study_status(study, outcomes).value,
        "result": study_result(outcomes),
        "series": study.series.all(),
        "rows": [(outcome, portal_views.job_state(outcome.job)) for outcome in outcomes],
    }
    return render(request, "dicom/study_detail.html", context)
