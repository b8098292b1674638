from __future__ import annotations

import io
import struct
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from predictions.images import inspect_upload
from tests.images import png_bytes

# Errors Pillow's readers raise on malformed files, from opening the header or decoding pixels.
READER_ERRORS = [
    ValueError("Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK"),
    ValueError("Too much memory used in text chunks"),
    ValueError("broken data stream"),
    OSError("image file is truncated"),
    SyntaxError("not a PNG file"),
    EOFError(),
    IndexError("list index out of range"),
    struct.error("unpack requires a buffer of 4 bytes"),
    Image.DecompressionBombError("Image size exceeds limit"),
]


@pytest.mark.parametrize("stage", ["open", "load"])
@pytest.mark.parametrize("error", READER_ERRORS, ids=lambda error: type(error).__name__)
def test_every_reader_error_is_a_validation_error(stage: str, error: Exception) -> None:
    content = png_bytes(8)
    if stage == "open":
        patch = mock.patch("predictions.images.Image.open", autospec=True, side_effect=error)
    else:
        patch = mock.patch.object(Image.Image, "load", autospec=True, side_effect=error)
    with patch, pytest.raises(ValidationError):
        inspect_upload(io.BytesIO(content), len(content))
