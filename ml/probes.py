"""Sequence probes: validation images re-rendered so the sequence no longer gives the class away.

In the training folders almost every tumour slice is T1 contrast-enhanced (dark
fluid, bright fat and enhancing lesion) and most no-tumour slices are T2 or
FLAIR (bright fluid). A model may learn "looks T2, so no tumour". A probe keeps
each image's anatomy and label and changes only how tissues map to grey levels,
inside the head (the background stays black, the outline is unchanged):

- `inverted`: grey levels inside the head turned upside down. Fluid that was
  dark turns bright, the main visual difference between T1 and T2.
- `t2_like` (tumour images) with `inverted` (no-tumour images): `sequence_swap`.
  Tumour slices take the look of the other class's sequence and the no-tumour
  slices take the look of the tumour slices' sequence. A model that reads the
  sequence calls the tumours "no tumour" here.
- `random_curve`: a smooth random non-monotonic intensity curve per image
  (seeded), a sequence no scanner makes: only anatomy is left to go on.

Numpy only, on preprocessed inputs (float32, 0..255, (n, height, width, channels)).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ml.labels import CLASS_NAMES

NO_TUMOR = CLASS_NAMES.index("no_tumor")
HEAD_LEVEL = 0.1

# The T1-CE -> T2 look, as (input, output) knots on intensities scaled to 0..1 inside the head.
# On T1-CE, fluid is darkest, grey matter below white matter, fat and enhancing tumour
# brightest. On T2, fluid is brightest, white matter darkest, grey matter between, fat
# moderately bright. So: dark -> bright, the middle -> dark, the top -> moderately bright.
T2_LIKE_KNOTS = ((0.0, 0.8), (0.08, 0.95), (0.3, 0.75), (0.55, 0.3), (0.75, 0.25), (1.0, 0.7))


def head_mask(image: np.ndarray, level: float = HEAD_LEVEL) -> np.ndarray:
    """True inside the head: between bright pixels along both the row and the column."""
    gray = image[..., 0]
    bright = gray > level * max(float(gray.max()), 1e-6)
    rows = (
        np.maximum.accumulate(bright, axis=1)
        & np.maximum.accumulate(bright[:, ::-1], axis=1)[:, ::-1]
    )
    columns = (
        np.maximum.accumulate(bright, axis=0)
        & np.maximum.accumulate(bright[::-1, :], axis=0)[::-1, :]
    )
    return rows & columns


def _remap(image: np.ndarray, curve: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply `curve` (0..1 -> 0..1) to the head's intensities scaled to 0..1; keep the rest."""
    mask = head_mask(image)
    if not mask.any():
        return image.copy()
    gray = image[..., 0]
    low, high = float(gray[mask].min()), float(gray[mask].max())
    scaled = (gray - low) / max(high - low, 1e-6)
    remapped = np.where(mask, np.clip(curve(np.clip(scaled, 0, 1)), 0, 1) * 255.0, gray)
    return np.repeat(remapped[..., np.newaxis], image.shape[-1], axis=-1).astype(np.float32)


def invert(image: np.ndarray) -> np.ndarray:
    return _remap(image, lambda x: 1.0 - x)


def t2_like(image: np.ndarray) -> np.ndarray:
    knots_in, knots_out = zip(*T2_LIKE_KNOTS, strict=True)
    return _remap(image, lambda x: np.interp(x, knots_in, knots_out))


def random_curve(image: np.ndarray, rng: np.random.Generator, points: int = 6) -> np.ndarray:
    """A piecewise-linear curve through random knots, never monotonic."""
    knots_out = rng.uniform(0, 1, points)
    while np.all(np.diff(knots_out) >= 0) or np.all(np.diff(knots_out) <= 0):
        knots_out = rng.uniform(0, 1, points)
    knots_in = np.linspace(0, 1, points)
    return _remap(image, lambda x: np.interp(x, knots_in, knots_out))


def _per_image(images: np.ndarray, transform: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([transform(image) for image in images]) if len(images) else images.copy()


def apply_probe(name: str, images: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Return `images` re-rendered by the probe `name` (labels choose the swap's direction)."""
    if name == "inverted":
        return _per_image(images, invert)
    if name == "random_curve":
        rng = np.random.default_rng(seed)
        return _per_image(images, lambda image: random_curve(image, rng))
    if name == "sequence_swap":
        probed = _per_image(images, t2_like)
        no_tumor = np.asarray(labels) == NO_TUMOR
        probed[no_tumor] = _per_image(images[no_tumor], invert)
        return probed
    raise ValueError(f"unknown probe {name!r}; choose from {PROBES}")


PROBES = ("sequence_swap", "inverted", "random_curve")
