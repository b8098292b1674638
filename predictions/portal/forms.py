from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from predictions.images import check_one_image, inspect_upload
from predictions.models import LABELS, Organisation, Patient
from predictions.reviews import COMMENT_MAX_LENGTH


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["external_id"]
        labels = {"external_id": "Patient identifier (MRN)"}
        help_texts = {"external_id": "The clinic's own identifier; unique in your organisation."}

    def __init__(self, *args: Any, organisation: Organisation, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.organisation = organisation

    def clean_external_id(self) -> str:
        value = self.cleaned_data["external_id"].strip()
        if not value:
            raise ValidationError("Enter the patient's identifier.")
        if Patient.objects.filter(organisation=self.organisation, external_id=value).exists():
            # The API's words, so both say the same thing.
            raise ValidationError("A patient with this external_id already exists.")
        return value


class ScanUploadForm(forms.Form):
    """One file per request, so each file gets its own progress and its own errors."""

    image = forms.FileField(
        allow_empty_file=True,  # inspect_upload says "empty" in the API's words
        error_messages={"required": "Attach the MRI slice as the multipart field 'image'."},
    )

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
        choices=[(label, label.replace("_", " ")) for label in LABELS],
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
