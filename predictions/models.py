"""Clinics, their patients, uploaded scans and the classification jobs run on them.

Every row that reaches a URL, a log line or a task message is named by a random
`public_id`, never by its sequential primary key, which would be guessable.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone

from workers.contracts import FINAL_FAILURES, LABELS, FailureCode

LABEL_CHOICES = [(label, label) for label in LABELS]
FAILURE_CODE_CHOICES = [(code.value, code.value.replace("_", " ")) for code in FailureCode]


class Organisation(models.Model):
    """A clinic or research group; the unit of data visibility."""

    name = models.CharField(max_length=200, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """Makes a user a member of exactly one organisation."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership"
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="memberships"
    )

    def __str__(self) -> str:
        return f"{self.user} @ {self.organisation}"


class Patient(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="patients"
    )
    # The clinic's own identifier (an MRN). It is the only identifying field kept.
    external_id = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "external_id"], name="patient_external_id_per_org"
            )
        ]

    def __str__(self) -> str:
        return self.external_id


def scan_upload_key(instance: Scan, filename: str) -> str:
    """Store under a random key: client file names often carry patient names."""
    extension = {"image/jpeg": "jpg", "image/png": "png"}.get(instance.content_type, "bin")
    return f"scans/{instance.public_id.hex[:2]}/{instance.public_id.hex}.{extension}"


class Scan(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="scans")
    image = models.FileField(upload_to=scan_upload_key, max_length=200)
    sha256 = models.CharField(max_length=64, db_index=True)
    content_type = models.CharField(max_length=64)
    size_bytes = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"scan {self.public_id}"


class JobQuerySet(models.QuerySet["Job"]):
    def visible_to(self, user: object) -> JobQuerySet:
        organisation = organisation_of(user)
        if organisation is None:
            return self.none()
        return self.filter(scan__patient__organisation=organisation)

    def unfinished(self) -> JobQuerySet:
        return self.filter(status__in=Job.UNFINISHED)

    def stale(
        self, queued_for: timedelta, running_for: timedelta, now: datetime | None = None
    ) -> JobQuerySet:
        """Jobs queued longer than `queued_for` or running longer than `running_for`."""
        now = now or timezone.now()
        return self.filter(
            Q(status=Job.Status.QUEUED, queued_at__lt=now - queued_for)
            | Q(status=Job.Status.RUNNING, started_at__lt=now - running_for)
        )


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    UNFINISHED = (Status.QUEUED, Status.RUNNING)

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    scan = models.ForeignKey(Scan, on_delete=models.PROTECT, related_name="jobs")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    queue = models.CharField(max_length=100)
    attempts = models.PositiveIntegerField(default=0)
    # Set with every failure, for machines (metrics, the portal); `error` is for people. The
    # codes are the contract's `FailureCode`: workers report them, the sweeper adds `gave_up`.
    failure_code = models.CharField(max_length=32, choices=FAILURE_CODE_CHOICES, blank=True)
    error = models.TextField(blank=True)
    model_version = models.CharField(max_length=100, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["status", "queued_at"])]

    def __str__(self) -> str:
        return f"job {self.public_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def can_retry(self) -> bool:
        """A failed job, unless its failure is an answer a retry cannot change."""
        return self.status == self.Status.FAILED and self.failure_code not in FINAL_FAILURES

    @classmethod
    def unfinished_with_id(cls, public_id: uuid.UUID) -> QuerySet[Job]:
        """Select a job only while unfinished: the guard that makes worker reports idempotent."""
        return cls.objects.filter(Q(public_id=public_id) & Q(status__in=cls.UNFINISHED))


def heatmap_upload_key(instance: Prediction, filename: str) -> str:
    job_hex = instance.job.public_id.hex
    return f"heatmaps/{job_hex[:2]}/{job_hex}.png"


class Prediction(models.Model):
    """What the model said about one job's scan."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="prediction")
    label = models.CharField(max_length=32, choices=LABEL_CHOICES)
    probabilities = models.JSONField()
    # The model's own decision, as the worker reported it (docs/operations.md for old rows).
    needs_review = models.BooleanField(default=False)
    model_version = models.CharField(max_length=100)
    inference_ms = models.FloatField()
    heatmap = models.FileField(upload_to=heatmap_upload_key, blank=True, max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.label} ({self.model_version})"

    @property
    def confidence(self) -> float:
        return float(self.probabilities.get(self.label, 0.0))


def organisation_of(user: object) -> Organisation | None:
    """Return the user's organisation, or None for anonymous users and non-members."""
    if not getattr(user, "is_authenticated", False):
        return None
    membership = getattr(user, "membership", None)
    return membership.organisation if membership is not None else None


class Review(models.Model):
    """A clinician's verdict on a job's result: the label the next model is trained on."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="review")
    label = models.CharField(max_length=32, choices=LABEL_CHOICES)
    # Stored, not derived at query time, so reports can count agreement cheaply.
    confirmed = models.BooleanField(help_text="The reviewer kept the model's label.")
    comment = models.TextField(blank=True, max_length=2000)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-reviewed_at"]
        # Staff status alone does not open the export: it is granted explicitly.
        permissions = [("export_data", "Can export the organisation's reviewed scans")]

    def __str__(self) -> str:
        verdict = "confirmed" if self.confirmed else "corrected"
        return f"{self.label} ({verdict})"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """The audit log is append-only for the application: no bulk update, no delete."""

    def update(self, **kwargs: Any) -> int:
        raise AuditLogIsAppendOnly("audit events cannot be changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("audit events cannot be deleted")


class AuditLogIsAppendOnly(Exception):
    """Raised by any attempt to change or delete a recorded audit event."""


class AuditEvent(models.Model):
    """One access to patient data, or one login, logout or failed login: who, what, when, where.

    Written by `predictions.audit.record` and the auth signals; never changed or deleted
    by the application (save refuses updates, delete refuses). It names patients by their
    public id, never by MRN.
    """

    class Action(models.TextChoices):
        LOGIN = "login"
        LOGOUT = "logout"
        LOGIN_FAILED = "login_failed"
        LOCKED_OUT = "locked_out"
        LIST_PATIENTS = "list_patients"
        VIEW_PATIENT = "view_patient"
        CREATE_PATIENT = "create_patient"
        LIST_SCANS = "list_scans"
        VIEW_SCAN = "view_scan"
        VIEW_SCAN_IMAGE = "view_scan_image"
        SUBMIT_SCAN = "submit_scan"
        MOVE_SCAN = "move_scan"
        VOID_SCAN = "void_scan"
        LIST_RESULTS = "list_results"
        VIEW_RESULT = "view_result"
        VIEW_HEATMAP = "view_heatmap"
        RETRY = "retry"
        REVIEW = "review"
        EXPORT = "export"
        EXPORT_AUDIT_LOG = "export_audit_log"

    class Outcome(models.TextChoices):
        SUCCESS = "success"
        DENIED = "denied"
        FAILED = "failed"

    created = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    # The user row may go; the name it had stays with the event.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    organisation = models.ForeignKey(
        Organisation, null=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    patient = models.UUIDField(null=True, blank=True, db_index=True, help_text="Public id.")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    detail = models.CharField(max_length=300, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["organisation", "-created"])]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("audit events cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("audit events cannot be deleted")
