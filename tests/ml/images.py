"""Synthetic brain-like slices for tests: never real scans."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

FOLDERS = ("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor")


def brain_like(size: int = 96, seed: int = 0, class_index: int = 0) -> Image.Image:
    """Return an "L" image: dark background, a bright oval head, a class-dependent blob."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    margin = size // 10 + int(rng.integers(0, max(size // 16, 1)))
    draw.ellipse((margin, margin // 2, size - margin, size - margin // 2),
                 fill=int(90 + rng.integers(0, 40)))  # fmt: skip
    blob = size // 6
    left = size // 4 + class_index * size // 8
    top = size // 3 + int(rng.integers(0, size // 5))
    draw.ellipse((left, top, left + blob, top + blob), fill=230)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (size, size))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def encode(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def write_class_folders(
    root: Path, per_class: int = 8, size: int = 80, folders: tuple[str, ...] = FOLDERS
) -> Path:
    """Write a tiny data set in the training folder's layout (mixed .png/.JPG files)."""
    for class_index, folder in enumerate(folders):
        (root / folder).mkdir(parents=True)
        for i in range(per_class):
            image = brain_like(size, seed=class_index * 1000 + i, class_index=class_index)
            name, image_format = (f"{i}.png", "PNG") if i % 2 else (f"{i}.JPG", "JPEG")
            (root / folder / name).write_bytes(encode(image, image_format))
    return root
