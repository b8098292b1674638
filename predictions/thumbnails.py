"""Small previews of scans for lists: made once with Pillow, stored beside the scans.

A list of 25 results then sends 25 small PNGs instead of 25 full-size originals.
"""

from __future__ import annotations

import io

from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from predictions.models import Scan

THUMBNAIL_SIDE = 96  # twice the 48 px shown, for high-density screens


def thumbnail_key(scan: Scan) -> str:
    return f"thumbnails/{scan.public_id.hex[:2]}/{scan.public_id.hex}.png"


def thumbnail_of(scan: Scan) -> File:
    """Return the scan's thumbnail file (open for reading), making it on first use."""
    key = thumbnail_key(scan)
    if not default_storage.exists(key):
        default_storage.save(key, ContentFile(_make_thumbnail(scan)))
    return default_storage.open(key, "rb")


def _make_thumbnail(scan: Scan) -> bytes:
    with scan.image.open("rb") as handle, Image.open(handle) as image:
        image.draft("L", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        preview = image.convert("L")
        preview.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    preview.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
