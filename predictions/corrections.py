"""Correcting the record: a scan filed under the wrong patient is moved, one filed in error voided.

Both are recorded as a `ScanCorrection` (who, when, why) and shown with the scan; nothing
is deleted. A voided scan leaves worklists and the reviewed data set but stays on record.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from predictions.models import Patient, Scan, ScanCorrection

REASON_MAX_LENGTH: int = ScanCorrection._meta.get_field("reason").max_length or 1000


class CorrectionError(ValueError):
    """A correction that cannot be made; the message says why, for the person asking."""


def move_scan(
    scan: Scan, to_patient: Patient, reason: str, user: User | AnonymousUser
) -> ScanCorrection:
    """File `scan` (and so its jobs) under `to_patient` of the same organisation."""
    reason = _checked_reason(reason)
    if scan.is_voided:
        raise CorrectionError("A voided scan cannot be moved.")
    if to_patient.organisation_id != scan.patient.organisation_id:
        raise CorrectionError("The scan can only be moved to a patient of your organisation.")
    if to_patient.pk == scan.patient_id:
        raise CorrectionError("The scan already belongs to this patient.")
    with transaction.atomic():
        correction = _record(scan, ScanCorrection.Kind.MOVE, reason, user, to_patient)
        scan.patient = to_patient
        scan.save(update_fields=["patient"])
    return correction


def void_scan(scan: Scan, reason: str, user: User | AnonymousUser) -> ScanCorrection:
    """Mark `scan` as filed in error: kept on record, out of worklists and exports."""
    reason = _checked_reason(reason)
    if scan.is_voided:
        raise CorrectionError("The scan is already voided.")
    with transaction.atomic():
        correction = _record(scan, ScanCorrection.Kind.VOID, reason, user)
        scan.voided_at = correction.corrected_at or timezone.now()
        scan.save(update_fields=["voided_at"])
    return correction


def _record(
    scan: Scan,
    kind: ScanCorrection.Kind,
    reason: str,
    user: User | AnonymousUser,
    to_patient: Patient | None = None,
) -> ScanCorrection:
    return ScanCorrection.objects.create(
        scan=scan,
        kind=kind,
        from_patient=scan.patient,
        to_patient=to_patient,
        reason=reason,
        corrected_by=user if isinstance(user, User) else None,
    )


def _checked_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise CorrectionError("Give the reason for the correction.")
    if len(reason) > REASON_MAX_LENGTH:
        raise CorrectionError(
            f"The reason is {len(reason):,} characters long; the limit is {REASON_MAX_LENGTH:,}."
        )
    return reason
