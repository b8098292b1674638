"""Decode untrusted image bytes and turn them into model input (numpy + Pillow only).

`preprocess` is THE preprocessing: training (through `ml.data`'s cache) and serving
(`ml.inference`) both call `load_array`, so a model never sees inputs prepared
differently from those it was trained on. Each artefact's metadata.json records
the `PreprocessConfig` and `PreprocessConfig.from_metadata` rebuilds it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ml.errors import InvalidImageError

# 8000 x 8000: far above any MRI slice, low enough that one upload cannot exhaust memory.
DEFAULT_MAX_PIXELS = 64_000_000
NORMALISATIONS = ("per_image_zscore", "rescale_1_255")
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


@dataclass(frozen=True)
class PreprocessConfig:
    name: str = "gray128-headcrop-zscore"
    input_size: tuple[int, int] = (128, 128)
    channels: int = 1
    head_crop: bool = True
    normalisation: str = "per_image_zscore"
    # Let libjpeg decode at 1/2..1/8 scale when the image is far larger than needed.
    jpeg_draft: bool = True

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}")

    def to_metadata(self) -> dict[str, Any]:
        values = asdict(self)
        values["input_size"] = list(self.input_size)
        return values

    @classmethod
    def from_metadata(cls, values: dict[str, Any]) -> PreprocessConfig:
        """Rebuild the config recorded in an artefact's metadata.json."""
        height, width = values["input_size"]
        return cls(
            name=str(values.get("name", "custom")),
            input_size=(int(height), int(width)),
            channels=int(values["channels"]),
            head_crop=bool(values["head_crop"]),
            normalisation=str(values["normalisation"]),
            jpeg_draft=bool(values.get("jpeg_draft", False)),
        )

    def draft_size(self) -> tuple[int, int] | None:
        # Twice the input size leaves room for the head crop before the final resize.
        if not self.jpeg_draft:
            return None
        height, width = self.input_size
        return (2 * width, 2 * height)


# The preprocessing of each architecture; `ml.model` builds networks to match.
CONFIGS: dict[str, PreprocessConfig] = {
    "mri_cnn": PreprocessConfig(),
    "seed_cnn": PreprocessConfig(
        name="rgb64-rescale",
        input_size=(64, 64),
        channels=3,
        head_crop=False,
        normalisation="rescale_1_255",
        jpeg_draft=False,
    ),
    "tiny": PreprocessConfig(name="gray32-headcrop-zscore", input_size=(32, 32)),
}


def config_for(architecture: str) -> PreprocessConfig:
    if architecture not in CONFIGS:
        raise ValueError(f"unknown architecture {architecture!r}; choose from {sorted(CONFIGS)}")
    return CONFIGS[architecture]


def decode_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Return the fully decoded image; raise InvalidImageError saying what is wrong.

    `draft_size` (width, height) lets JPEGs decode at a reduced scale no smaller
    than that size, which is several times faster for 512x512 slices.
    """
    if not data:
        raise InvalidImageError("empty file")
    with warnings.catch_warnings():
        # Pillow only warns between its two bomb limits; treat that as too large too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return _decode_checked(data, max_pixels, draft_size)
        except InvalidImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImageError(f"image too large: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise InvalidImageError("not an image") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InvalidImageError(f"truncated or corrupt image ({exc})") from exc


def _decode_checked(
    data: bytes, max_pixels: int, draft_size: tuple[int, int] | None
) -> Image.Image:
    with Image.open(io.BytesIO(data)) as probe:
        width, height = probe.size
        if width * height > max_pixels:
            raise InvalidImageError(f"image too large: {width} x {height} pixels")
        if width < 1 or height < 1:
            raise InvalidImageError("not an image")
        probe.verify()  # checks structure and CRCs (PNG) without decoding pixels
    # verify() leaves the image unusable, so decode a fresh one in full.
    image = Image.open(io.BytesIO(data))
    if draft_size is not None and image.format == "JPEG":
        image.draft(image.mode if image.mode in ("L", "RGB") else None, draft_size)
    image.load()  # raises on truncated data: never serve a half-decoded scan
    return image


def load_array(data: bytes, config: PreprocessConfig) -> np.ndarray:
    """Decode bytes and preprocess them: (H, W, C) float32, the model's input."""
    return preprocess(decode_image(data, draft_size=config.draft_size()), config)


def preprocess(image: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """Return the model input for one image: (H, W, C) float32.

    Any mode works (grayscale, RGB(A), palette, 16-bit, float), at any size.
    """
    image = to_standard_mode(image, "L" if config.channels == 1 else "RGB")
    if config.head_crop:
        image = crop_to_head(image)
    height, width = config.input_size
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    return normalise(array, config.normalisation)


def to_standard_mode(image: Image.Image, mode: str) -> Image.Image:
    """Return an 8-bit "L" or "RGB" image, whatever the input's mode."""
    if image.mode in _SIXTEEN_BIT_MODES:
        image = _stretch_to_8bit(image)
    elif image.mode in ("P", "PA") or "A" in image.getbands():
        image = _flatten_alpha(image)
    return image if image.mode == mode else image.convert(mode)


def _stretch_to_8bit(image: Image.Image) -> Image.Image:
    # 16-bit and float scans have no fixed white point, so stretch min..max to 0..255.
    array = np.asarray(image, dtype=np.float32)
    low, high = float(array.min()), float(array.max())
    scaled = (array - low) * (255.0 / max(high - low, 1e-6))
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), mode="L")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    # Transparent pixels are background: composite onto black, the MRI background.
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def crop_to_head(image: Image.Image) -> Image.Image:
    """Return the square crop around the head (bright foreground); the image if none found.

    Scanners frame heads differently; cropping makes the head fill the input the
    same way whatever the field of view, which helps the model transfer.
    """
    box = head_box(np.asarray(image.convert("L") if image.mode != "L" else image))
    return image if box is None else image.crop(box)


def head_box(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """Return a square (left, top, right, bottom) box around the foreground, or None."""
    height, width = gray.shape
    if min(height, width) < 16:
        return None
    step = max(1, min(height, width) // 128)
    small = gray[::step, ::step]
    mask = small > max(10.0, 0.5 * float(small.mean()))
    # Ignore rows/columns with only a few bright pixels: text, markers, noise.
    rows = np.flatnonzero(mask.sum(axis=1) > 0.02 * mask.shape[1])
    cols = np.flatnonzero(mask.sum(axis=0) > 0.02 * mask.shape[0])
    if rows.size == 0 or cols.size == 0:
        return None
    top, bottom = rows[0] * step, (rows[-1] + 1) * step
    left, right = cols[0] * step, (cols[-1] + 1) * step
    if (bottom - top) * (right - left) < 0.05 * height * width:
        return None
    return _square_box(left, top, right, bottom)


def _square_box(left: int, top: int, right: int, bottom: int) -> tuple[int, int, int, int]:
    # A square with a small margin keeps the aspect ratio; crop() pads outside with black.
    side = int(max(right - left, bottom - top) * 1.04) + 1
    centre_x, centre_y = (left + right) // 2, (top + bottom) // 2
    return (centre_x - side // 2, centre_y - side // 2,
            centre_x - side // 2 + side, centre_y - side // 2 + side)  # fmt: skip


def normalise(array: np.ndarray, normalisation: str) -> np.ndarray:
    """Return float32 normalised pixels; `array` holds 0..255 values."""
    if normalisation == "rescale_1_255":
        return (array / 255.0).astype(np.float32)
    # MRI intensity has no absolute unit, so each slice is standardised on its own.
    mean, std = float(array.mean()), float(array.std())
    return ((array - mean) / max(std, 1.0)).astype(np.float32)


def thumbnail_gray(image: Image.Image, size: int) -> Image.Image:
    """Return a square grayscale thumbnail (for overlays), letterboxed on black."""
    gray = to_standard_mode(image, "L")
    return ImageOps.pad(gray, (size, size), color=0)
