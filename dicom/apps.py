from __future__ import annotations

from django.apps import AppConfig


class DicomConfig(AppConfig):
    """DICOM in and out: studies and series, STOW-RS, results sent back to the PACS."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "dicom"
    verbose_name = "DICOM studies"
