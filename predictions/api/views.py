"""The public REST API: patients, scan submissions and jobs, scoped to the caller's organisation."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer, CharField

from dicom import api as dicom_api
from dicom.uploads import is_dicom_file
from predictions import audit, jobs, reviews
from predictions.api.filters import JobFilter, PatientFilter, QueryFilterBackend
from predictions.api.serializers import (
    JobSerializer,
    JobSummarySerializer,
    PatientSerializer,
    ReviewSerializer,
    ScanSerializer,
    ScanSubmissionSerializer,
)
from predictions.audit import AuditedObject
from predictions.models import (
    AWAITING_DISPATCH_NOTE,
    AuditEvent,
    Job,
    Patient,
    Scan,
    organisation_of,
)

Action, Outcome = AuditEvent.Action, AuditEvent.Outcome


class AuditedViewSet(viewsets.GenericViewSet):
    """Record every access to patient data the viewset serves (see `predictions.audit`).

    `audit_actions` maps the viewset's actions to audit actions; the object is the one
    `get_object()` found or the one an action created (`self.audited`). A lookup refused
    with 403 or 404 is recorded as denied, with the id that was asked for.
    """

    audit_actions: dict[str, str] = {}
    audited: AuditedObject | None = None

    def get_object(self) -> Any:
        self.audited = super().get_object()
        return self.audited

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        action = self.audit_actions.get(self.action or "")
        served = response.status_code < 400
        refused = response.status_code in (403, 404)
        # The status first: after a failed authentication, reading request.user retries it.
        if action is None or not (served or refused) or not request.user.is_authenticated:
            return response
        if served:
            audit.record(request, action, self.audited)
        else:
            denied = str(kwargs.get("pk", ""))
            audit.record(request, action, outcome=Outcome.DENIED, object_id=denied)
        return response


class PatientViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    AuditedViewSet,
):
    serializer_class = PatientSerializer
    audit_actions = {
        "list": Action.LIST_PATIENTS,
        "retrieve": Action.VIEW_PATIENT,
        "create": Action.CREATE_PATIENT,
    }
    lookup_field = "public_id"
    lookup_url_kwarg = "pk"
    filter_backends = [QueryFilterBackend]
    filterset_class = PatientFilter

    def get_queryset(self) -> QuerySet[Patient]:
        return Patient.objects.filter(organisation=organisation_of(self.request.user))

    def perform_create(self, serializer: BaseSerializer[Patient]) -> None:
        self.audited = serializer.save(
            organisation=organisation_of(self.request.user), created_by=self.request.user
        )


class ScanViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, AuditedViewSet):
    serializer_class = ScanSerializer
    audit_actions = {
        "list": Action.LIST_SCANS,
        "retrieve": Action.VIEW_SCAN,
        "create": Action.SUBMIT_SCAN,
        "image": Action.VIEW_SCAN_IMAGE,
    }
    lookup_field = "public_id"
    lookup_url_kwarg = "pk"

    def get_queryset(self) -> QuerySet[Scan]:
        organisation = organisation_of(self.request.user)
        return Scan.objects.filter(patient__organisation=organisation).select_related("patient")

    @extend_schema(
        request={"multipart/form-data": ScanSubmissionSerializer},
        responses={
            202: inline_serializer(
                "Submission",
                {
                    "job": JobSummarySerializer(),
                    "detail": CharField(required=False, help_text=AWAITING_DISPATCH_NOTE),
                },
            ),
            409: inline_serializer(
                "Duplicate",
                {"detail": serializers.CharField(), "job": JobSummarySerializer()},
            ),
        },
        description="Upload one MRI slice (JPEG or PNG) for a patient; it is classified "
        "asynchronously. Poll the returned job URL. An image identical to one the patient "
        "already has is a 409 with the existing job, unless `allow_duplicate` is true. A "
        "DICOM file, or a zip of a series or study, is answered with its study and one job "
        "per slice (docs/pacs.md).",
    )
    def create(self, request: Request) -> Response:
        # DICOM hook: a .dcm file or a zip of a series or study is the dicom app's to take.
        if is_dicom_file(request.FILES.get("image")):
            return dicom_api.submit_upload(request)
        submission = ScanSubmissionSerializer(data=request.data, context={"request": request})
        submission.is_valid(raise_exception=True)
        data = submission.validated_data
        if not data["allow_duplicate"]:
            earlier = jobs.earlier_job_for_same_image(data["patient"], data["facts"].sha256)
            if earlier is not None:
                return self._duplicate(request, earlier)
        job = jobs.submit_scan(
            data["patient"],
            data["image"],
            data["facts"],
            request.user,
            data.get("device"),
            original_name=data["image"].name or "",
        )
        self.audited = job
        body: dict[str, Any] = {"job": JobSummarySerializer(job, context={"request": request}).data}
        if job.awaiting_dispatch:
            body["detail"] = AWAITING_DISPATCH_NOTE
        return Response(
            body, status=status.HTTP_202_ACCEPTED, headers={"Location": str(body["job"]["url"])}
        )

    def _duplicate(self, request: Request, earlier: Job) -> Response:
        body = {
            "detail": "This patient already has an identical image; send allow_duplicate=true "
            "to classify it again.",
            "job": JobSummarySerializer(earlier, context={"request": request}).data,
        }
        return Response(body, status=status.HTTP_409_CONFLICT)

    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def image(self, request: Request, pk: str) -> FileResponse:
        scan = self.get_object()
        return FileResponse(scan.image.open("rb"), content_type=scan.content_type)


class JobViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, AuditedViewSet):
    serializer_class = JobSerializer
    audit_actions = {
        "list": Action.LIST_RESULTS,
        "retrieve": Action.VIEW_RESULT,
        "heatmap": Action.VIEW_HEATMAP,
        "retry": Action.RETRY,
    }
    lookup_field = "public_id"
    lookup_url_kwarg = "pk"
    filter_backends = [QueryFilterBackend]
    filterset_class = JobFilter

    def get_queryset(self) -> QuerySet[Job]:
        return Job.objects.visible_to(self.request.user).select_related(
            "scan__patient", "prediction"
        )

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def heatmap(self, request: Request, pk: str) -> FileResponse:
        job = self.get_object()
        if not hasattr(job, "prediction") or not job.prediction.heatmap:
            raise ValidationError("This job has no heat map (it has not succeeded).")
        return FileResponse(job.prediction.heatmap.open("rb"), content_type="image/png")

    @extend_schema(
        methods=["GET"],
        request=None,
        responses={200: ReviewSerializer(many=True)},
        description="The job's reviews, newest first: the first one counts.",
    )
    @extend_schema(
        methods=["POST"],
        request=ReviewSerializer,
        responses={201: ReviewSerializer},
        description="Add a verdict on a succeeded job; earlier ones stay as its history.",
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def reviews(self, request: Request, pk: str) -> Response:
        job = self.get_object()
        if request.method == "GET":
            history = job.reviews.select_related("reviewed_by")
            audit.record(request, Action.VIEW_RESULT, job, detail="reviews")
            return Response(ReviewSerializer(history, many=True).data)
        serializer = ReviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            review = reviews.record_review(
                job, data["label"], data["comment"], request.user, data["model_answer_shown"]
            )
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        audit.record(request, Action.REVIEW, review)
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={202: JobSummarySerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        try:
            job = jobs.retry(self.get_object())
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        self.audited = job
        url = request.build_absolute_uri(reverse("api:job-detail", args=[job.public_id]))
        body = JobSummarySerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})
