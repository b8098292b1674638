from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from predictions.corrections import REASON_MAX_LENGTH
from predictions.identity import checked_identifier
from predictions.images import check_one_image, inspect_upload
from predictions.models import LABEL_CHOICES, Organisation, Patient
from predictions.reviews import COMMENT_MAX_LENGTH


class PatientForm(forms.ModelForm):
    # No max_length: `checked_identifier` says what is wrong, where a `maxlength` attribute
    # would make the browser cut the identifier silently.
    external_id = forms.CharField(
        label="Patient identifier (MRN)",
        help_text="The clinic's own identifier; unique in your organisation "
        "(capitals and surrounding spaces do not count).",
    )

    class Meta:
        model = Patient
        fields = ["external_id"]

    def __init__(self, *args: Any, organisation: Organisation, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.organisation = organisation

    def clean_external_id(self) -> str:
        return checked_identifier(self.organisation, self.cleaned_data["external_id"])


class ScanUploadForm(forms.Form):
    """One file per request, so each file gets its own progress and its own errors."""

    image = forms.FileField(
        allow_empty_file=True,  # inspect_upload says "empty" in the API's words
        error_messages={"required": "Attach the MRI slice as the multipart field 'image'."},
    )
    # Upload even when the patient already has this exact image (the page asks first).
    allow_duplicate = forms.BooleanField(required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if upload := cleaned.get("image"):
            # Raises ValidationError with exactly the API's messages, on the image field.
            try:
                check_one_image(self.files.getlist("image"))
                cleaned["facts"] = inspect_upload(upload, upload.size)
            except ValidationError as exc:
                self.add_error("image", exc)
        return cleaned


class ReviewForm(forms.Form):
    label = forms.ChoiceField(
        choices=LABEL_CHOICES,
        widget=forms.RadioSelect,
        label="Reviewed label",
        error_messages={
            "required": "Choose one of the four labels.",
            "invalid_choice": "Choose one of the four labels.",
        },
    )
    comment = forms.CharField(
        required=False,
        max_length=COMMENT_MAX_LENGTH,
        error_messages={
            "max_length": "The comment is %(show_value)d characters long; "
            "the limit is %(limit_value)d characters."
        },
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Comment (optional)",
    )

    def error_text(self) -> str:
        """Return every field's errors as one sentence per error, for a flash message."""
        return " ".join(str(error) for errors in self.errors.values() for error in errors)


class ErrorTextMixin:
    errors: Any

    def error_text(self) -> str:
        """Return every field's errors as one sentence per error, for a flash message."""
        return " ".join(str(error) for errors in self.errors.values() for error in errors)


class MoveScanForm(ErrorTextMixin, forms.Form):
    patient = forms.CharField(
        label="Move to the patient with identifier",
        error_messages={"required": "Give the identifier of the patient to move the scan to."},
    )
    reason = forms.CharField(
        label="Reason for the move",
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Give the reason for the correction."},
    )


class VoidScanForm(ErrorTextMixin, forms.Form):
    reason = forms.CharField(
        label="Reason for voiding",
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Give the reason for the correction."},
    )
