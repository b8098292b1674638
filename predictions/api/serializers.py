from __future__ import annotations

import base64
import binascii
import math
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.uploadedfile import UploadedFile
from django.urls import reverse
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from predictions.identity import checked_identifier
from predictions.images import check_one_image, inspect_upload
from predictions.models import (
    AWAITING_DISPATCH_NOTE,
    FAILURE_CODE_CHOICES,
    LABELS,
    Job,
    Patient,
    Prediction,
    Review,
    organisation_of,
)
from predictions.reviews import COMMENT_MAX_LENGTH
from workers.config import DEVICES
from workers.contracts import (
    MAX_BULK_ITEMS,
    ContractError,
    FailureCode,
    FailureReport,
    PredictionResult,
    check_version,
)


class PatientSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    # No max_length here: `checked_identifier` refuses an over-long one with the limit.
    external_id = serializers.CharField(trim_whitespace=False)

    class Meta:
        model = Patient
        fields = ["id", "external_id", "created"]
        read_only_fields = ["created"]

    def validate_external_id(self, value: str) -> str:
        organisation = organisation_of(self.context["request"].user)
        try:
            return checked_identifier(organisation, value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


class PredictionSerializer(serializers.ModelSerializer):
    heatmap_url = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = [
            "label",
            "probabilities",
            "model_version",
            "inference_ms",
            "confidence",
            "needs_review",
            "heatmap_url",
        ]

    def get_heatmap_url(self, prediction: Prediction) -> str | None:
        if not prediction.heatmap:
            return None
        path = reverse("api:job-heatmap", args=[prediction.job.public_id])
        return self.context["request"].build_absolute_uri(path)


class JobSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    url = serializers.HyperlinkedIdentityField(
        view_name="api:job-detail", lookup_field="public_id", lookup_url_kwarg="pk"
    )
    scan = serializers.UUIDField(source="scan.public_id", read_only=True)
    patient = serializers.UUIDField(source="scan.patient.public_id", read_only=True)
    queued = serializers.DateTimeField(source="queued_at", read_only=True)
    started = serializers.DateTimeField(source="started_at", read_only=True)
    finished = serializers.DateTimeField(source="finished_at", read_only=True)
    result = serializers.SerializerMethodField()
    awaiting_dispatch = serializers.BooleanField(read_only=True, help_text=AWAITING_DISPATCH_NOTE)

    class Meta:
        model = Job
        fields = [
            "id",
            "url",
            "status",
            "awaiting_dispatch",
            "scan",
            "patient",
            "created",
            "queued",
            "started",
            "finished",
            "attempts",
            "failure_code",
            "error",
            "worker",
            "result",
        ]

    def get_result(self, job: Job) -> dict[str, Any] | None:
        if job.status != Job.Status.SUCCEEDED or not hasattr(job, "prediction"):
            return None
        return PredictionSerializer(job.prediction, context=self.context).data


class JobSummarySerializer(serializers.ModelSerializer):
    """The short form returned by a submission: enough to start polling."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    url = serializers.HyperlinkedIdentityField(
        view_name="api:job-detail", lookup_field="public_id", lookup_url_kwarg="pk"
    )

    awaiting_dispatch = serializers.BooleanField(read_only=True)

    class Meta:
        model = Job
        fields = ["id", "status", "awaiting_dispatch", "url"]


class ScanSubmissionSerializer(serializers.Serializer):
    image = serializers.FileField(
        allow_empty_file=True,  # inspect_upload says "empty" in our own words
        error_messages={"required": "Attach the MRI slice as the multipart field 'image'."},
    )
    patient = serializers.UUIDField(
        error_messages={"required": "Give the patient's id in the field 'patient'."}
    )
    device = serializers.ChoiceField(
        choices=list(DEVICES),
        required=False,
        help_text="Where to run the model; the site's DEFAULT_DEVICE when left out.",
    )
    allow_duplicate = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Accept an image identical to one the patient already has (otherwise 409).",
    )

    def validate_patient(self, value: uuid.UUID) -> Patient:
        organisation = organisation_of(self.context["request"].user)
        try:
            return Patient.objects.get(public_id=value, organisation=organisation)
        except Patient.DoesNotExist:
            raise serializers.ValidationError(f"Unknown patient {value}.") from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Add the checked image's facts (`ImageFacts`) as `facts`."""
        upload: UploadedFile = attrs["image"]
        parts = getattr(self.initial_data, "getlist", lambda name: [upload])("image")
        try:
            check_one_image(parts)
            attrs["facts"] = inspect_upload(upload, upload.size or 0)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"image": exc.messages}) from None
        return attrs


class ScanSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    patient = serializers.UUIDField(source="patient.public_id")
    content_type = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    size_bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    created = serializers.DateTimeField()


class ReviewSerializer(serializers.ModelSerializer):
    """A clinician's verdict; posting one adds it to the job's history, never replaces one."""

    # The contract's key; DRF's stubs type `Field.label` (the display name) as a string.
    label = serializers.ChoiceField(choices=LABELS)  # type: ignore[assignment]
    comment = serializers.CharField(
        required=False, allow_blank=True, max_length=COMMENT_MAX_LENGTH, default=""
    )
    reviewer = serializers.CharField(
        source="reviewed_by.get_username", read_only=True, default=None
    )
    model_answer_shown = serializers.BooleanField(
        required=False,
        default=True,
        help_text="False when the reader chose the label without seeing the model's answer.",
    )

    class Meta:
        model = Review
        fields = ["label", "comment", "confirmed", "reviewer", "reviewed_at", "model_answer_shown"]
        read_only_fields = ["confirmed", "reviewed_at"]


# The worker-facing serializers: the site's only writer of worker reports.


class WorkerStartSerializer(serializers.Serializer):
    worker = serializers.CharField(max_length=200)


class WorkerBulkStartSerializer(serializers.Serializer):
    """Contract 3: start many jobs. Ids are checked one by one, so one bad id fails only itself."""

    worker = serializers.CharField(max_length=200)
    jobs = serializers.ListField(
        child=serializers.CharField(max_length=100, trim_whitespace=False),
        allow_empty=False,
        max_length=MAX_BULK_ITEMS,
    )


class WorkerOutcomesSerializer(serializers.Serializer):
    """Contract 3: many results and failures, each `{"id": ..., <the per-job body>}`.

    Only the envelope is checked here; each item is checked on its own by the per-job
    serializers, so one invalid item is refused alone.
    """

    results = serializers.ListField(child=serializers.DictField(), required=False, default=list)
    failures = serializers.ListField(child=serializers.DictField(), required=False, default=list)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        count = len(attrs["results"]) + len(attrs["failures"])
        if count == 0:
            raise serializers.ValidationError("send at least one result or failure")
        if count > MAX_BULK_ITEMS:
            raise serializers.ValidationError(
                f"{count} items: at most {MAX_BULK_ITEMS} results and failures per request"
            )
        return attrs


def _contract_version(value: int) -> int:
    try:
        return check_version(value, "site")
    except ContractError as exc:
        raise serializers.ValidationError(str(exc)) from None


class WorkerFailureSerializer(serializers.Serializer):
    """A `FailureReport`. Version 1 workers sent neither `version` nor `failure_code`."""

    version = serializers.IntegerField(required=False, default=1)
    failure_code = serializers.ChoiceField(choices=FAILURE_CODE_CHOICES, required=False)
    worker = serializers.CharField(max_length=200, required=False, default="")
    reason = serializers.CharField(max_length=2000)

    def validate_version(self, value: int) -> int:
        return _contract_version(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "failure_code" not in attrs:
            if attrs["version"] >= 2:
                raise serializers.ValidationError({"failure_code": "This field is required."})
            attrs["failure_code"] = FailureCode.WORKER_ERROR
        return attrs

    def report(self, job_id: uuid.UUID) -> FailureReport:
        data = self.validated_data
        return FailureReport(
            job_id=str(job_id),
            failure_code=FailureCode(data["failure_code"]),
            reason=data["reason"],
            worker=data["worker"],
            version=data["version"],
        )


class Base64Field(serializers.CharField):
    """Base64 text, decoded by the serializer's `validate_<field>`.

    DRF's surrogate check walks the text one character at a time in Python: milliseconds
    for a heat map of tens of kB, most of a result's cost. The strict base64 decoding
    refuses every character outside the base64 alphabet anyway, surrogates included.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators = [
            validator
            for validator in self.validators
            if not isinstance(validator, ProhibitSurrogateCharactersValidator)
        ]


class WorkerResultSerializer(serializers.Serializer):
    """A `PredictionResult`. Version 1 workers did not send `needs_review`."""

    version = serializers.IntegerField()
    # The contract's key; DRF's stubs type `Field.label` (the display name) as a string.
    label = serializers.ChoiceField(choices=LABELS)  # type: ignore[assignment]
    probabilities = serializers.DictField(child=serializers.FloatField(min_value=0, max_value=1))
    model_version = serializers.CharField(max_length=100)
    inference_ms = serializers.FloatField(min_value=0)
    worker = serializers.CharField(max_length=200)
    needs_review = serializers.BooleanField(required=False)
    heatmap_png = Base64Field(required=False, allow_null=True, allow_blank=True)

    def validate_version(self, value: int) -> int:
        return _contract_version(value)

    def validate_probabilities(self, value: dict[str, float]) -> dict[str, float]:
        if set(value) != set(LABELS):
            raise serializers.ValidationError(f"expected one probability for each of {LABELS}")
        if not math.isclose(sum(value.values()), 1.0, abs_tol=1e-3):
            raise serializers.ValidationError("probabilities must sum to 1")
        return value

    def validate_heatmap_png(self, value: str | None) -> bytes | None:
        if not value:
            return None
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("heatmap_png must be base64") from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        probabilities = attrs["probabilities"]
        top = probabilities[attrs["label"]]
        if top < max(probabilities.values()) - 1e-6:
            raise serializers.ValidationError("label must be the most probable class")
        if "needs_review" not in attrs:
            if attrs["version"] >= 2:
                raise serializers.ValidationError({"needs_review": "This field is required."})
            # Version 1 workers: the rule the site applied before models decided it.
            attrs["needs_review"] = top < settings.LOW_CONFIDENCE_THRESHOLD
        return attrs

    def result(self, job_id: uuid.UUID) -> PredictionResult:
        data = self.validated_data
        return PredictionResult(
            job_id=str(job_id),
            label=data["label"],
            probabilities=data["probabilities"],
            model_version=data["model_version"],
            inference_ms=data["inference_ms"],
            worker=data["worker"],
            needs_review=data["needs_review"],
            heatmap_png=data.get("heatmap_png"),
            version=data["version"],
        )
