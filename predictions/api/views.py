"""The public REST API: patients, scan submissions and jobs, scoped to the caller's organisation."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer, CharField

from predictions import jobs
from predictions.api.filters import JobFilter, PatientFilter
from predictions.api.serializers import (
    JobSerializer,
    JobSummarySerializer,
    PatientSerializer,
    ScanSerializer,
    ScanSubmissionSerializer,
)
from predictions.models import AWAITING_DISPATCH_NOTE, Job, Patient, Scan, organisation_of


class PatientViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = PatientSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "pk"
    filter_backends = [DjangoFilterBackend]
    filterset_class = PatientFilter

    def get_queryset(self) -> QuerySet[Patient]:
        return Patient.objects.filter(organisation=organisation_of(self.request.user))

    def perform_create(self, serializer: BaseSerializer[Patient]) -> None:
        serializer.save(
            organisation=organisation_of(self.request.user), created_by=self.request.user
        )


class ScanViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = ScanSerializer
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
            )
        },
        description="Upload one MRI slice (JPEG or PNG) for a patient; it is classified "
        "asynchronously. Poll the returned job URL.",
    )
    def create(self, request: Request) -> Response:
        submission = ScanSubmissionSerializer(data=request.data, context={"request": request})
        submission.is_valid(raise_exception=True)
        data = submission.validated_data
        job = jobs.submit_scan(
            data["patient"], data["image"], data["facts"], request.user, data.get("device")
        )
        body: dict[str, Any] = {"job": JobSummarySerializer(job, context={"request": request}).data}
        if job.awaiting_dispatch:
            body["detail"] = AWAITING_DISPATCH_NOTE
        return Response(
            body, status=status.HTTP_202_ACCEPTED, headers={"Location": str(body["job"]["url"])}
        )

    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def image(self, request: Request, pk: str) -> FileResponse:
        scan = self.get_object()
        return FileResponse(scan.image.open("rb"), content_type=scan.content_type)


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = JobSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "pk"
    filter_backends = [DjangoFilterBackend]
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

    @extend_schema(request=None, responses={202: JobSummarySerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        try:
            job = jobs.retry(self.get_object())
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        url = request.build_absolute_uri(reverse("api:job-detail", args=[job.public_id]))
        body = JobSummarySerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})
