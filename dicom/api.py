"""The API's DICOM side: uploads handed over by the scans endpoint, and the studies endpoint."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from dicom.models import Instance, Series, Study
from dicom.reading import DicomError
from dicom.studies import slice_outcomes, study_result, study_status
from dicom.uploads import UploadOutcome, read_dicom_upload, submit_dicom_upload
from predictions.api.serializers import (
    JobSerializer,
    JobSummarySerializer,
    ScanSubmissionSerializer,
)
from predictions.models import organisation_of


class DicomSubmissionSerializer(ScanSubmissionSerializer):
    """The scans endpoint's fields, with a DICOM file or a zip of one series or study."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Add the checked instances as `parsed`."""
        try:
            attrs["parsed"] = read_dicom_upload(attrs["image"])
        except DicomError as exc:
            raise serializers.ValidationError({"image": [str(exc)]}) from None
        return attrs


def submit_upload(request: Request) -> Response:
    """Answer a DICOM upload to POST /api/v1/scans/: 202 with its study and jobs.

    422 when every series was refused at the door (recorded, not classified).
    """
    submission = DicomSubmissionSerializer(data=request.data, context={"request": request})
    submission.is_valid(raise_exception=True)
    data = submission.validated_data
    try:
        outcome = submit_dicom_upload(
            data["parsed"], data["patient"], request.user, data.get("device")
        )
    except DicomError as exc:
        raise serializers.ValidationError({"image": [str(exc)]}) from None
    return _submission_response(request, outcome)


def _submission_response(request: Request, outcome: UploadOutcome) -> Response:
    context = {"request": request}
    studies: Any = StudySummarySerializer(outcome.studies, many=True, context=context).data
    body = {
        "studies": studies,
        "jobs": JobSummarySerializer(outcome.jobs, many=True, context=context).data,
        "refused": outcome.refusals,
        "duplicates": outcome.duplicates,
    }
    if outcome.refusals and not outcome.jobs and not outcome.duplicates:
        body["detail"] = " ".join(outcome.refusals)
        return Response(body, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    headers = {"Location": str(studies[0]["url"])} if studies else {}
    return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)


class SeriesSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = Series
        fields = [
            "id",
            "series_instance_uid",
            "modality",
            "body_part",
            "description",
            "series_number",
            "sequence",
            "refusal",
        ]


class StudySummarySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    url = serializers.HyperlinkedIdentityField(
        view_name="dicom-api:study-detail", lookup_field="public_id", lookup_url_kwarg="pk"
    )
    patient = serializers.UUIDField(source="patient.public_id", read_only=True)

    class Meta:
        model = Study
        fields = [
            "id",
            "url",
            "patient",
            "study_instance_uid",
            "accession_number",
            "study_date",
            "description",
            "created",
            "delivery_status",
        ]


class StudySerializer(StudySummarySerializer):
    """A study with its status, its result (docs/pacs.md: the aggregation rule) and its jobs."""

    class Meta(StudySummarySerializer.Meta):
        fields = [
            *StudySummarySerializer.Meta.fields,
            "delivery_attempts",
            "delivery_error",
            "delivered_at",
        ]

    def to_representation(self, study: Study) -> dict[str, Any]:
        body = super().to_representation(study)
        outcomes = slice_outcomes(study)
        result = study_result(outcomes)
        body["status"] = study_status(study, outcomes).value
        body["series"] = SeriesSerializer(study.series.all(), many=True).data
        body["result"] = None
        if result is not None:
            body["result"] = {
                "label": result.label,
                "probabilities": result.probabilities,
                "needs_review": result.needs_review,
                "model_version": result.model_version,
                "deciding_job": str(result.deciding.job.public_id),
                "slices_classified": result.slices_classified,
                "slices_failed": result.slices_failed,
            }
        jobs = [outcome.job for outcome in outcomes]
        body["jobs"] = JobSerializer(jobs, many=True, context=self.context).data
        for job_body, outcome in zip(body["jobs"], outcomes, strict=True):
            job_body["series"] = str(outcome.slice.series.public_id)
            job_body["instance_number"] = outcome.slice.instance.instance_number
            job_body["frame"] = outcome.slice.frame
        return body


class StudyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's organisation's studies; another organisation's study is a 404."""

    lookup_field = "public_id"
    lookup_url_kwarg = "pk"

    def get_queryset(self) -> QuerySet[Study]:
        organisation = organisation_of(self.request.user)
        return Study.objects.filter(organisation=organisation).select_related("patient")

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Study]]:
        return StudySummarySerializer if self.action == "list" else StudySerializer


class InstanceViewSet(viewsets.GenericViewSet):
    """The stored DICOM files, only through this organisation-checked view."""

    lookup_field = "public_id"
    lookup_url_kwarg = "pk"

    def get_queryset(self) -> QuerySet[Instance]:
        organisation = organisation_of(self.request.user)
        return Instance.objects.filter(series__study__organisation=organisation)

    @extend_schema(responses={(200, "application/dicom"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def file(self, request: Request, pk: str) -> FileResponse:
        return FileResponse(self.get_object().file.open("rb"), content_type="application/dicom")
