"""Clinics, their patients, uploaded scans and the classification jobs run on them.

Every row that reaches a URL, a log line or a task message is named by a random
`public_id`, never by its sequential primary key, which would be guessable.
"""

from __future__ import annotations

import unicodedata
import uuid
import zoneinfo
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone

from workers.contracts import FINAL_FAILURES, LABELS, FailureCode

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# IHDR colour types of a see-through layer: truecolour with alpha, or a palette whose
# opacities follow in a tRNS chunk (`ml.inference.heatmap_layer_png`).
PNG_RGBA = b"\x06"
PNG_PALETTE = b"\x03"
# The one vocabulary people read; the API and the data keep the contract's keys.
LABEL_WORDS = {
    "glioma": "Glioma",
    "meningioma": "Meningioma",
    "no_tumor": "No tumour",
    "pituitary": "Pituitary tumour",
}
LABEL_CHOICES = [(label, LABEL_WORDS.get(label, label)) for label in LABELS]
# What the API and the portal say about a job that waits for the broker (`awaiting_dispatch`).
AWAITING_DISPATCH_NOTE = (
    "Accepted and queued, but the job broker is unreachable or slow: the job waits in the "
    "database and is sent to a worker within seconds of the broker answering again."
)
FAILURE_CODE_CHOICES = [(code.value, code.value.replace("_", " ")) for code in FailureCode]


TIME_ZONE_HELP = "An IANA time zone such as Europe/London; blank for the site's TIME_ZONE."


def validate_time_zone(value: str) -> None:
    if value and value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone (e.g. Europe/London).")


class Organisation(models.Model):
    """A clinic or research group; the unit of data visibility."""

    name = models.CharField(max_length=200, unique=True)
    # Blind reading: readers commit their own verdict before the model's answer is shown, so
    # the model cannot anchor it (automation bias).
    hide_model_until_review = models.BooleanField(
        default=False,
        help_text="Hide the model's label, probabilities and heat map from a reader "
        "until they have recorded their own verdict on the result.",
    )
    # An IANA zone ("Europe/Paris"); blank: the site's TIME_ZONE. Times are shown in it.
    time_zone = models.CharField(
        max_length=64, blank=True, validators=[validate_time_zone], help_text=TIME_ZONE_HELP
    )
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


EXTERNAL_ID_MAX_LENGTH = 64


def identifier_key(external_id: str) -> str:
    """Return the form of a patient identifier used for matching: " mrn-1001 " == "MRN-1001".

    Unicode-normalised (NFKC), trimmed, inner runs of spaces made one, case-folded.
    """
    return " ".join(unicodedata.normalize("NFKC", external_id).split()).casefold()


class Patient(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="patients"
    )
    # The clinic's own identifier (an MRN), shown as entered. It is the only identifying field.
    external_id = models.CharField(max_length=EXTERNAL_ID_MAX_LENGTH)
    # `identifier_key(external_id)`, set on save: two spellings of one MRN are one patient.
    identifier_key = models.CharField(max_length=EXTERNAL_ID_MAX_LENGTH, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "identifier_key"], name="patient_identifier_key_per_org"
            )
        ]

    def __str__(self) -> str:
        return self.external_id

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.identifier_key = identifier_key(self.external_id)
        super().save(*args, **kwargs)


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
    # The client's file name, shown only inside the organisation (it may carry a patient's
    # name): never in storage keys, task messages or logs.
    original_name = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    # A voided scan (filed in error) stays for the record but leaves worklists and exports.
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            # The duplicate check on every submission (`jobs.earlier_job_for_same_image`):
            # without it SQLite reads all the patient's scans to find one image.
            models.Index(fields=["patient", "sha256"], name="scan_patient_sha256"),
        ]

    def __str__(self) -> str:
        return f"scan {self.public_id}"

    @property
    def is_voided(self) -> bool:
        return self.voided_at is not None


class ScanCorrection(models.Model):
    """A scan moved to another patient or voided: who, when, why; the scan's history."""

    class Kind(models.TextChoices):
        MOVE = "move"
        VOID = "void"

    scan = models.ForeignKey(Scan, on_delete=models.CASCADE, related_name="corrections")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    from_patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    to_patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    reason = models.TextField(max_length=1000)
    corrected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    corrected_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-corrected_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind} of {self.scan}"


class JobQuerySet(models.QuerySet["Job"]):
    def visible_to(self, user: object) -> JobQuerySet:
        organisation = organisation_of(user)
        if organisation is None:
            return self.none()
        return self.filter(scan__patient__organisation=organisation)

    def unfinished(self) -> JobQuerySet:
        return self.filter(status__in=Job.UNFINISHED)

    def awaiting_dispatch(self) -> JobQuerySet:
        """Queued jobs not (or no longer) handed to the broker: the dispatcher sends these."""
        return self.filter(status=Job.Status.QUEUED, dispatched_at__isnull=True)

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
    # When the job was last handed to the broker; empty while the broker was unreachable,
    # so the dispatcher (`sweep_jobs --loop`) knows to send it once the broker is back.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["status", "queued_at"]),
            # The dispatcher asks for these every few seconds; normally there are none.
            models.Index(
                fields=["queued_at"],
                condition=Q(status="queued", dispatched_at__isnull=True),
                name="job_awaiting_dispatch",
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.public_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def awaiting_dispatch(self) -> bool:
        """Queued, but the broker was down: it waits in the database, not yet in a queue."""
        return self.status == self.Status.QUEUED and self.dispatched_at is None

    @property
    def can_retry(self) -> bool:
        """A failed job, unless its failure is an answer a retry cannot change."""
        return self.status == self.Status.FAILED and self.failure_code not in FINAL_FAILURES

    @property
    def latest_review(self) -> Review | None:
        """Return the newest review; prefetch `reviews` to avoid a query per job."""
        return next(iter(self.reviews.all()), None)

    def reviewed_by_user(self, user: object) -> bool:
        """Whether `user` has recorded a verdict on this job (uses prefetched `reviews`)."""
        return any(
            review.reviewed_by_id == getattr(user, "pk", None) for review in self.reviews.all()
        )

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

    def heatmap_is_layer(self) -> bool:
        """Whether the heat map is a see-through layer over the original (reads its PNG header).

        Older workers stored an opaque blend of the model's cropped view, which lines up
        with nothing on the original: those are shown beside the scan, not over it.
        """
        if not self.heatmap:
            return False
        with self.heatmap.open("rb") as handle:
            # The signature, IHDR, a full PLTE (768 bytes) and the tRNS chunk's header.
            header = handle.read(33 + 12 + 768 + 8)
        if header[:8] != PNG_SIGNATURE:
            return False
        colour_type = header[25:26]
        return colour_type == PNG_RGBA or (colour_type == PNG_PALETTE and b"tRNS" in header[33:])


def organisation_of(user: object) -> Organisation | None:
    """Return the user's organisation, or None for anonymous users and non-members."""
    if not getattr(user, "is_authenticated", False):
        return None
    membership = getattr(user, "membership", None)
    return membership.organisation if membership is not None else None


class Review(models.Model):
    """A clinician's verdict on a job's result: the label the next model is trained on.

    Every verdict is a new row, never an edit: the newest one counts, the others are
    the result's history.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="reviews")
    label = models.CharField(max_length=32, choices=LABEL_CHOICES)
    # Stored, not derived at query time, so reports can count agreement cheaply.
    confirmed = models.BooleanField(help_text="The reviewer kept the model's label.")
    comment = models.TextField(blank=True, max_length=2000)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(default=timezone.now)
    # False when the reader committed blind (the organisation hid the model's answer).
    model_answer_shown = models.BooleanField(default=True)

    class Meta:
        ordering = ["-reviewed_at", "-pk"]
        # Staff status alone does not open the export: it is granted explicitly.
        permissions = [("export_data", "Can export the organisation's reviewed scans")]

    def __str__(self) -> str:
        verdict = "confirmed" if self.confirmed else "corrected"
        return f"{self.label} ({verdict})"


class WorkerModelState(models.Model):
    """What a worker following the site's model (MODEL_SOURCE=site) last reported."""

    worker = models.CharField(max_length=200, unique=True)
    wanted = models.CharField(max_length=200, blank=True, help_text="What the site served.")
    serving = models.CharField(max_length=200, blank=True, help_text="The worker's version.")
    error = models.TextField(blank=True, help_text="Why the worker is not serving `wanted`.")
    reported_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["worker"]

    def __str__(self) -> str:
        return f"{self.worker}: {self.serving or 'no model'}"


class BrokerStatus(models.Model):
    """The broker and its workers as the sweeper last saw them (one row).

    Pages read this instead of asking the broker, so a broker that is down or frozen
    never makes a page wait; `checked_at` says how old the picture is.
    """

    checked_at = models.DateTimeField()
    reachable = models.BooleanField()
    error = models.TextField(blank=True)
    # Queue name -> messages waiting; worker names answering a ping. Empty when unreachable.
    queue_depths = models.JSONField(default=dict)
    workers = models.JSONField(default=list)

    class Meta:
        verbose_name_plural = "broker status"

    def __str__(self) -> str:
        return f"broker {'reachable' if self.reachable else 'unreachable'} at {self.checked_at}"


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
