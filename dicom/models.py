"""Studies and series as a PACS knows them, and how the site talks to each clinic's PACS.

Each image the model classifies is still a `predictions.Scan` (the rendered slice);
a `Slice` ties it to its series and to the stored DICOM instance it came from. The
DICOM files (headers included) stay on the site: workers only ever see the slice.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.db import models
from django.utils import timezone

from predictions.models import Organisation, Patient, Scan


class Study(models.Model):
    class Delivery(models.TextChoices):
        NOT_CONFIGURED = "not_configured"  # the organisation has no PACS to send to
        PENDING = "pending"  # waiting for its slices to finish, or for the next attempt
        SENT = "sent"
        FAILED = "failed"  # out of attempts; `delivery_error` says why

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    study_instance_uid = models.CharField(max_length=64)
    accession_number = models.CharField(max_length=16, blank=True)
    study_date = models.DateField(null=True, blank=True)
    description = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    # When the last instance arrived: a study is sent back only once it has settled.
    last_received = models.DateTimeField(default=timezone.now)
    delivery_status = models.CharField(
        max_length=16, choices=Delivery.choices, default=Delivery.PENDING, db_index=True
    )
    delivery_attempts = models.PositiveIntegerField(default=0)
    delivery_error = models.TextField(blank=True)
    next_delivery_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        verbose_name_plural = "studies"
        constraints = [
            # Per organisation: another clinic's copy of a study is another row, and a
            # clinic can never learn that someone else holds a study with this UID.
            models.UniqueConstraint(
                fields=["organisation", "study_instance_uid"], name="study_uid_per_org"
            )
        ]

    def __str__(self) -> str:
        return f"study {self.public_id}"


class Series(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(max_length=64)
    modality = models.CharField(max_length=16)
    body_part = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=64, blank=True)
    series_number = models.IntegerField(null=True, blank=True)
    # The sequence where the header says it (SequenceName, ScanningSequence).
    sequence = models.CharField(max_length=64, blank=True)
    # Set when the series was refused at the door (not MR, not the head): recorded, not classified.
    refusal = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["series_number", "created"]
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(
                fields=["study", "series_instance_uid"], name="series_uid_per_study"
            )
        ]

    def __str__(self) -> str:
        return f"series {self.public_id} ({self.modality})"


def instance_upload_key(instance: Instance, filename: str) -> str:
    """Store under a random key: the file's own name and UIDs say nothing to a passer-by."""
    return f"dicom/{instance.public_id.hex[:2]}/{instance.public_id.hex}.dcm"


class Instance(models.Model):
    """One stored DICOM file (SOP instance): a single slice or a multi-frame image."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_instance_uid = models.CharField(max_length=64)
    sop_class_uid = models.CharField(max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    file = models.FileField(upload_to=instance_upload_key, max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["instance_number", "created"]
        constraints = [
            models.UniqueConstraint(
                fields=["series", "sop_instance_uid"], name="instance_uid_per_series"
            )
        ]

    def __str__(self) -> str:
        return f"instance {self.public_id}"


class Slice(models.Model):
    """Makes a scan one frame of a DICOM instance, in its series' order."""

    scan = models.OneToOneField(Scan, on_delete=models.CASCADE, related_name="dicom_slice")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="slices")
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="slices")
    frame = models.PositiveIntegerField(default=1)  # 1-based, as DICOM counts frames
    # Where the slice lies along the patient axis, when the header says; orders a series.
    position = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["instance__instance_number", "position", "frame"]

    def __str__(self) -> str:
        return f"slice {self.frame} of {self.instance}"


def _hash_secret(secret: str) -> str:
    # The secret is 32 random bytes, so a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(secret.encode()).hexdigest()


class StowCredential(models.Model):
    """What a PACS presents (HTTP Basic) to push studies into one organisation by STOW-RS."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="stow_credentials"
    )
    username = models.CharField(max_length=64, unique=True)
    secret_sha256 = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    revoked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.username} ({self.organisation})"

    @classmethod
    def issue(cls, organisation: Organisation, username: str) -> tuple[StowCredential, str]:
        """Create a credential and return it with its secret, which is shown only this once."""
        secret = secrets.token_urlsafe(32)
        credential = cls.objects.create(
            organisation=organisation, username=username, secret_sha256=_hash_secret(secret)
        )
        return credential, secret

    def matches(self, secret: str) -> bool:
        return secrets.compare_digest(self.secret_sha256, _hash_secret(secret))


class PacsConnection(models.Model):
    """Where an organisation's results go: a DICOMweb STOW-RS URL or a DIMSE C-STORE peer."""

    class Protocol(models.TextChoices):
        DICOMWEB = "dicomweb", "DICOMweb STOW-RS"
        DIMSE = "dimse", "DIMSE C-STORE"

    organisation = models.OneToOneField(Organisation, on_delete=models.CASCADE, related_name="pacs")
    protocol = models.CharField(max_length=16, choices=Protocol.choices)
    enabled = models.BooleanField(default=True)
    # DICOMweb: the service root, e.g. http://orthanc:8042/dicom-web
    url = models.URLField(blank=True)
    username = models.CharField(max_length=128, blank=True)
    password = models.CharField(max_length=256, blank=True)
    # DIMSE: the PACS's address and AE title, and the title this site calls from.
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    called_ae_title = models.CharField(max_length=16, blank=True)
    calling_ae_title = models.CharField(max_length=16, default="MRICLASSIFIER")

    def __str__(self) -> str:
        return f"{self.get_protocol_display()} for {self.organisation}"
