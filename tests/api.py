"""Helpers for tests that call the public API, shared by unit and integration tests."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from predictions.models import Patient
from tests.images import png_bytes

SCANS_URL = "/api/v1/scans/"


def upload(content: bytes, name: str = "slice.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content)


def submit(
    api: APIClient,
    patient: Patient,
    content: bytes | None = None,
    name: str = "slice.png",
    **extra: str,
) -> Any:
    """POST one scan for `patient` (a small PNG unless `content` is given); return the response."""
    image = upload(png_bytes() if content is None else content, name)
    return api.post(SCANS_URL, {"image": image, "patient": str(patient.public_id), **extra})
