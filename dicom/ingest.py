"""Store checked DICOM instances as studies, series and scans, and queue a job per slice.

The one entry point for every way DICOM arrives (API and portal uploads, STOW-RS).
Refusals at the door (not MR, not the head) are recorded on the series and
never classified. Only the rendered slice becomes a scan: that is all a worker
ever fetches; the DICOM file with its headers stays here.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import date

from django.contrib.auth.models import AnonymousUser, User
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicom.models import Instance, Series, Slice, Study
from dicom.reading import DicomError, ParsedInstance
from dicom.rendering import png_bytes
from predictions import jobs
from predictions.images import inspect_upload
from predictions.models import Job, Organisation, Patient

log = logging.getLogger(__name__)

# BodyPartExamined values (PS3.16 CID 4031 and what scanners write in practice) that mean
# the head. An empty body part is taken on trust: many MR scanners leave it out.
HEAD_BODY_PARTS = frozenset({"HEAD", "BRAIN", "SKULL", "HEADNECK", "HEAD_NECK", "CEREBRUM"})
_STUDY_TAKEN = "This study is already recorded for another patient of your organisation."


@dataclass
class InstanceOutcome:
    """What became of one instance: queued, a duplicate, or refused at the door (`refusal`)."""

    sop_class_uid: str
    sop_instance_uid: str
    study: Study
    jobs: list[Job] = field(default_factory=list)
    refusal: str = ""
    duplicate: bool = False


def refusal_reason(dataset: Dataset) -> str:
    """Return why a series is not classified (empty when it is): only MR of the head is."""
    modality = str(dataset.get("Modality", "") or "").upper()
    if modality != "MR":
        return f"Modality is {modality or 'missing'}: only MR series are classified."
    body_part = str(dataset.get("BodyPartExamined", "") or "").upper().strip()
    if body_part and body_part not in HEAD_BODY_PARTS:
        return f"Body part is {body_part}: only MR of the head is classified."
    return ""


def patient_for(organisation: Organisation, dataset: Dataset, given: Patient | None) -> Patient:
    """Return the patient an instance belongs to, by its PatientID within the organisation."""
    patient_id = str(dataset.get("PatientID", "") or "").strip()
    if given is not None:
        if patient_id and patient_id != given.external_id:
            raise DicomError(
                f"The file is for patient ID {patient_id!r}, not {given.external_id!r}.",
                code="patient_mismatch",
            )
        return given
    try:
        return Patient.objects.get(organisation=organisation, external_id=patient_id)
    except Patient.DoesNotExist:
        raise DicomError(
            f"Unknown patient ID {patient_id!r}: register the patient first.",
            code="unknown_patient",
        ) from None


def check_owner(
    dataset: Dataset, organisation: Organisation, patient: Patient | None = None
) -> Patient:
    """Return the instance's patient, or raise `DicomError` if it or its study does not fit."""
    owner = patient_for(organisation, dataset, patient)
    taken = Study.objects.filter(
        organisation=organisation, study_instance_uid=str(dataset.StudyInstanceUID)
    ).exclude(patient=owner)
    if taken.exists():
        raise DicomError(_STUDY_TAKEN, code="study_patient_mismatch")
    return owner


def store_instance(
    parsed: ParsedInstance,
    organisation: Organisation,
    user: User | AnonymousUser,
    patient: Patient | None = None,
    device: str | None = None,
) -> InstanceOutcome:
    """Record one parsed instance and queue a job per frame; raise `DicomError` if it cannot be."""
    dataset = parsed.dataset
    with transaction.atomic():
        owner = check_owner(dataset, organisation, patient)
        study = _study(organisation, owner, dataset)
        series = _series(study, dataset)
        outcome = InstanceOutcome(str(dataset.SOPClassUID), parsed.sop_instance_uid, study)
        if series.refusal:
            outcome.refusal = series.refusal
        elif series.instances.filter(sop_instance_uid=parsed.sop_instance_uid).exists():
            outcome.duplicate = True
        else:
            outcome.jobs = _store_slices(parsed, series, owner, user, device)
            _mark_changed(study)
    return outcome


def _study(organisation: Organisation, patient: Patient, dataset: Dataset) -> Study:
    study, _ = Study.objects.select_for_update().get_or_create(
        organisation=organisation,
        study_instance_uid=str(dataset.StudyInstanceUID),
        defaults={
            "patient": patient,
            "accession_number": str(dataset.get("AccessionNumber", "") or "")[:16],
            "study_date": _date(dataset.get("StudyDate")),
            "description": str(dataset.get("StudyDescription", "") or "")[:64],
        },
    )
    if study.patient_id != patient.pk:
        raise DicomError(_STUDY_TAKEN, code="study_patient_mismatch")
    return study


def _mark_changed(study: Study) -> None:
    """New slices: the study's results are sent again once they too are classified.

    Only for new slices: a PACS that sends a study again (or our own results back)
    must not start another round of sending.
    """
    Study.objects.filter(pk=study.pk).update(
        last_received=timezone.now(),
        delivery_status=Study.Delivery.PENDING,
        delivery_attempts=0,
        next_delivery_at=None,
        delivery_error="",
    )


def _series(study: Study, dataset: Dataset) -> Series:
    series, _ = Series.objects.get_or_create(
        study=study,
        series_instance_uid=str(dataset.SeriesInstanceUID),
        defaults={
            "modality": str(dataset.get("Modality", "") or "")[:16],
            "body_part": str(dataset.get("BodyPartExamined", "") or "")[:64],
            "description": str(dataset.get("SeriesDescription", "") or "")[:64],
            "series_number": _int(dataset.get("SeriesNumber")),
            "sequence": _sequence(dataset),
            "refusal": refusal_reason(dataset),
        },
    )
    return series


def _store_slices(
    parsed: ParsedInstance,
    series: Series,
    patient: Patient,
    user: User | AnonymousUser,
    device: str | None,
) -> list[Job]:
    dataset = parsed.dataset
    instance = Instance(
        series=series,
        sop_instance_uid=parsed.sop_instance_uid,
        sop_class_uid=str(dataset.SOPClassUID),
        instance_number=_int(dataset.get("InstanceNumber")),
    )
    instance.file.save("instance.dcm", ContentFile(parsed.data), save=False)
    instance.save()
    queued = []
    for index, gray in enumerate(parsed.slices):
        png = png_bytes(gray)
        facts = inspect_upload(io.BytesIO(png), len(png))
        job = jobs.submit_scan(patient, io.BytesIO(png), facts, user, device)
        Slice.objects.create(
            scan=job.scan,
            series=series,
            instance=instance,
            frame=index + 1,
            position=_float(dataset.get("SliceLocation")),
        )
        queued.append(job)
    return queued


def _sequence(dataset: Dataset) -> str:
    for keyword in ("SequenceName", "PulseSequenceName", "ScanningSequence"):
        value = dataset.get(keyword)
        if value:
            text = "\\".join(map(str, value)) if isinstance(value, MultiValue) else str(value)
            return text[:64]
    return ""


def _date(value: object) -> date | None:
    text = str(value or "")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def _int(value: object) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _float(value: object) -> float | None:
    try:
        return float(str(value)) if value not in (None, "") else None
    except ValueError:
        return None
