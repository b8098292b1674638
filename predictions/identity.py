"""Patient identifiers: one rule for the portal and the API.

Identifiers are kept as entered (trimmed) and matched by `identifier_key`: case-folded,
spaces normalised, so " mrn-1001 " finds "MRN-1001". An identifier over the limit is
refused with a message; a browser's `maxlength` would cut it silently, so no form sets one.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from predictions.models import EXTERNAL_ID_MAX_LENGTH, Organisation, Patient, identifier_key

DUPLICATE_MESSAGE = "A patient with this external_id already exists."


def checked_identifier(organisation: Organisation | None, external_id: str) -> str:
    """Return `external_id` trimmed, or raise ValidationError saying why it cannot be used."""
    value = external_id.strip()
    if not value:
        raise ValidationError("Enter the patient's identifier.", code="blank")
    if len(value) > EXTERNAL_ID_MAX_LENGTH:
        raise ValidationError(
            f"The identifier is {len(value)} characters long; "
            f"the limit is {EXTERNAL_ID_MAX_LENGTH} characters.",
            code="max_length",
        )
    existing = find_patient(organisation, value)
    if existing is not None:
        # The API's words, naming the existing spelling so the clerk sees the match.
        raise ValidationError(
            f"{DUPLICATE_MESSAGE} (as “{existing.external_id}”)", code="duplicate"
        )
    return value


def find_patient(organisation: Organisation | None, external_id: str) -> Patient | None:
    """Return the organisation's patient whose identifier matches `external_id`, if any."""
    key = identifier_key(external_id)
    return Patient.objects.filter(organisation=organisation, identifier_key=key).first()
