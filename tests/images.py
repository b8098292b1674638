"""Synthetic test images: never the data set's scans."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageFilter


def brain_like(size: int = 96, seed: int = 0) -> Image.Image:
    """A grey ellipse with a bright blob, vaguely shaped like an axial MRI slice."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    head = ((x / 0.4) ** 2 + (y / 0.45) ** 2 < 1).astype(np.float32) * 120
    cx, cy = rng.uniform(-0.2, 0.2, size=2)
    blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.005) * 120
    noise = rng.normal(0, 8, size=(size, size))
    return Image.fromarray(np.clip(head + blob + noise, 0, 255).astype(np.uint8), mode="L")


def mri_like(size: int = 256, seed: int = 0, lesion: bool = True) -> Image.Image:
    """A synthetic axial T1-weighted slice: bright scalp, dark skull, folded cortex, ventricles.

    Drawn from shapes and noise, never from a scan; close enough to a brain MRI
    slice for the model's guard to accept it (a plain ellipse is refused).
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    angle = np.arctan2(y, x)
    wobble = 1 + 0.015 * np.sin(angle * rng.integers(3, 6) + rng.uniform(0, 6))
    radius = np.hypot(x / 0.36, y / 0.44) / wobble
    image = np.zeros((size, size), np.float32)
    image[radius < 1.0] = 200  # scalp fat
    image[radius < 0.94] = 25  # skull
    image[radius < 0.88] = 35  # fluid around the brain
    folds = 0.82 + 0.04 * np.sin(angle * 22 + rng.uniform(0, 6))
    brain = radius < folds
    image[brain] = 95  # grey matter
    image[brain & (radius < folds - 0.1)] = 150  # white matter
    for sign in (-1, 1):  # the lateral ventricles
        horn = ((x - sign * 0.05) / 0.035) ** 2 + (y / 0.14) ** 2 < 1
        image[horn] = 30
    if lesion:
        cx, cy = rng.uniform(-0.18, 0.18), rng.uniform(-0.2, 0.2)
        ring = np.hypot(x - cx, y - cy)
        image[ring < 0.07] = 240  # enhancing rim
        image[ring < 0.045] = 60  # necrotic core
    image += rng.normal(0, 6, image.shape)
    blurred = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), mode="L")
    return blurred.filter(ImageFilter.GaussianBlur(1.2))


def encode(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def png_bytes(size: int = 96, seed: int = 0) -> bytes:
    return encode(brain_like(size, seed), "PNG")


def jpeg_bytes(size: int = 96, seed: int = 0) -> bytes:
    return encode(brain_like(size, seed).convert("RGB"), "JPEG")


def truncated_jpeg() -> bytes:
    whole = jpeg_bytes(256)
    return whole[: len(whole) // 2]


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid tiny PNG whose header claims `width` x `height` pixels: a decompression bomb."""
    whole = png_bytes(8)
    ihdr_start = 8 + 4  # signature, then the chunk's length
    fields = struct.pack(">II", width, height) + whole[ihdr_start + 12 : ihdr_start + 17]
    chunk = b"IHDR" + fields
    crc = struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    return whole[:ihdr_start] + chunk + crc + whole[ihdr_start + 4 + 13 + 4 :]


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return struct.pack(">I", len(data)) + kind + data + crc


def png_with_text_bomb(before_pixels: bool = True) -> bytes:
    """A valid tiny PNG with a zTXt chunk whose text inflates past Pillow's text limit.

    A few kilobytes on the wire, megabytes once inflated: Pillow refuses it with a
    `ValueError` while reading the chunks, before or after the pixels.
    """
    from PIL import PngImagePlugin

    text = zlib.compress(b"A" * (PngImagePlugin.MAX_TEXT_CHUNK + 1), 9)
    bomb = _chunk(b"zTXt", b"Comment\x00\x00" + text)
    whole = png_bytes(8)
    end_of_ihdr = 8 + 4 + 4 + 13 + 4  # signature, then IHDR's length, type, fields and CRC
    iend = whole.rindex(b"IEND") - 4
    if before_pixels:
        return whole[:end_of_ihdr] + bomb + whole[end_of_ihdr:]
    return whole[:iend] + bomb + whole[iend:]
