"""Check an uploaded file before it becomes a scan: the same rules for the API and the portal.

The checks run cheapest first (bytes, then the header, then a full decode), so a
decompression bomb is refused from its header before Pillow allocates its pixels.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, UnidentifiedImageError

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}

# What Pillow's readers raise on a malformed file; any of them is the uploader's fault, a 400.
DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)

# Pillow's PNG reader raises a bare ValueError with these words for a text chunk (zTXt, iTXt)
# that inflates past its limits: a compressed-text bomb, not a damaged picture.
_TEXT_BOMB_MESSAGES = ("Decompressed data too large", "Too much memory used in text chunks")


@dataclass(frozen=True)
class ImageFacts:
    content_type: str
    width: int
    height: int
    sha256: str
    size_bytes: int


def inspect_upload(upload: IO[bytes], size_bytes: int) -> ImageFacts:
    """Return what the scan row records about `upload`, or raise `ValidationError` with why."""
    _check_size(size_bytes)
    upload.seek(0)
    with warnings.catch_warnings():
        # Pillow warns (not raises) between 1x and 2x its own pixel limit; we apply ours below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image, content_type = _open(upload)
        _check_pixels(image.width, image.height)
        _decode_fully(image)
    facts = ImageFacts(
        content_type=content_type,
        width=image.width,
        height=image.height,
        sha256=_sha256(upload),
        size_bytes=size_bytes,
    )
    upload.seek(0)
    return facts


def check_one_image(uploads: Sequence[object]) -> None:
    """Refuse a request with several `image` parts: silently keeping one would be a guess."""
    if len(uploads) > 1:
        raise ValidationError(
            f"Send one image per request; this one has {len(uploads)} parts named 'image'.",
            code="several_images",
        )


def _check_size(size_bytes: int) -> None:
    if size_bytes == 0:
        raise ValidationError("The file is empty.", code="empty")
    limit = settings.MAX_UPLOAD_BYTES
    if size_bytes > limit:
        raise ValidationError(
            f"The file is {size_bytes:,} bytes; the limit is {limit:,} bytes.", code="too_large"
        )


def _open(upload: IO[bytes]) -> tuple[Image.Image, str]:
    """Return the image, header read, with its content type."""
    try:
        image = Image.open(upload)
    except UnidentifiedImageError:
        raise ValidationError(
            "The file is not an image: upload a JPEG or PNG MRI slice.", code="not_an_image"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ValidationError(
            f"The image is too large in pixels: {exc}", code="too_many_pixels"
        ) from None
    except DECODER_ERRORS as exc:
        raise _undecodable(exc) from None
    content_type = CONTENT_TYPES.get(image.format or "")
    if content_type is None:
        raise ValidationError(
            f"{image.format} images are not accepted: upload a JPEG or PNG.", code="unsupported"
        )
    return image, content_type


def _check_pixels(width: int, height: int) -> None:
    limit = settings.MAX_IMAGE_PIXELS
    if width * height > limit:
        raise ValidationError(
            f"The image is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {limit:,} pixels.",
            code="too_many_pixels",
        )


def _decode_fully(image: Image.Image) -> None:
    """Decode every pixel: only a full decode finds a truncated or corrupt file."""
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ValidationError(
            f"The image is too large in pixels: {exc}", code="too_many_pixels"
        ) from None
    except DECODER_ERRORS as exc:
        raise _undecodable(exc) from None


def _undecodable(exc: Exception) -> ValidationError:
    """Return the 400's reason for a Pillow reader error."""
    if isinstance(exc, ValueError) and str(exc).startswith(_TEXT_BOMB_MESSAGES):
        return ValidationError(
            "The image has corrupt or malicious metadata: a text chunk inflates past the limit.",
            code="bad_metadata",
        )
    return ValidationError(
        f"The image is truncated or corrupt and cannot be decoded ({exc}).", code="corrupt"
    )


def _sha256(upload: IO[bytes]) -> str:
    upload.seek(0)
    digest = hashlib.sha256()
    for chunk in iter(lambda: upload.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()
