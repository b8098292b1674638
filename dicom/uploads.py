"""DICOM through the existing upload paths (API and portal): the one hook both call.

An upload is all or nothing: every file is read, checked and rendered, and every
patient and study checked, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from dicom.ingest import InstanceOutcome, check_owner, store_instance
from dicom.models import Study
from dicom.reading import DicomError, ParsedInstance, is_dicom_upload, parse_instance, read_upload
from predictions.models import Job, Patient


def is_dicom_file(upload: UploadedFile | None) -> TypeGuard[UploadedFile]:
    """Return whether an uploaded file goes the DICOM way (a Part 10 file, a zip, a .dcm)."""
    if upload is None or not hasattr(upload, "read"):
        return False
    upload.seek(0)
    head = upload.read(132)
    upload.seek(0)
    return is_dicom_upload(head, upload.name or "")


@dataclass
class UploadOutcome:
    studies: list[Study]
    jobs: list[Job]
    refusals: list[str]
    duplicates: int


def read_dicom_upload(upload: UploadedFile) -> list[ParsedInstance]:
    """Return the upload's checked instances, or raise `DicomError` naming the problem."""
    size = upload.size or 0
    if size > settings.DICOM_MAX_STUDY_BYTES:
        raise DicomError(
            f"The file is {size:,} bytes; the limit for DICOM is "
            f"{settings.DICOM_MAX_STUDY_BYTES:,} bytes.",
            code="too_large",
        )
    upload.seek(0)
    return [parse_instance(data, where) for where, data in read_upload(upload.read())]


def submit_dicom_upload(
    parsed: list[ParsedInstance],
    patient: Patient,
    user: User | AnonymousUser,
    device: str | None = None,
) -> UploadOutcome:
    """Store the instances for `patient` and queue their slices; `DicomError` stores nothing."""
    organisation = patient.organisation
    for instance in parsed:
        check_owner(instance.dataset, organisation, patient)
    with transaction.atomic():
        outcomes = [store_instance(p, organisation, user, patient, device) for p in parsed]
    return _summary(outcomes)


def _summary(outcomes: list[InstanceOutcome]) -> UploadOutcome:
    studies = list({outcome.study.pk: outcome.study for outcome in outcomes}.values())
    refusals = sorted({outcome.refusal for outcome in outcomes if outcome.refusal})
    return UploadOutcome(
        studies=studies,
        jobs=[job for outcome in outcomes for job in outcome.jobs],
        refusals=refusals,
        duplicates=sum(outcome.duplicate for outcome in outcomes),
    )
