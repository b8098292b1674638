"""Decode an image and turn it into the model's input: the one function training and serving share.

Numpy and Pillow only. The model itself standardises intensity per image (its
first layer), so what happens here is geometric: grayscale, crop to the head,
pad to a square, resize. The artefact's metadata records the configuration.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ml.errors import InvalidImageError

DEFAULT_MAX_PIXELS = 40_000_000

# A truncated file must be refused, not silently filled with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class PreprocessConfig:
    input_size: tuple[int, int] = (128, 128)
    channels: int = 1
    head_crop: bool = True
    name: str = "gray-headcrop-v1"

    def to_metadata(self) -> dict[str, Any]:
        return {**asdict(self), "input_size": list(self.input_size)}

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> PreprocessConfig:
        return cls(
            input_size=(int(metadata["input_size"][0]), int(metadata["input_size"][1])),
            channels=int(metadata["channels"]),
            head_crop=bool(metadata["head_crop"]),
            name=str(metadata["name"]),
        )


def decode_image(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: tuple[int, int] | None = None
) -> Image.Image:
    """Return the decoded image, or raise `InvalidImageError` saying what is wrong with it.

    With `draft_size` (width, height), a JPEG is decoded in grayscale at the smallest
    of 1/1, 1/2, 1/4 or 1/8 scale that is still at least that size: nearly free detail
    reduction, and several times faster than a full decode of a 512x512 scan.
    """
    if not data:
        raise InvalidImageError("empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise InvalidImageError("not an image (JPEG or PNG expected)") from None
        except Image.DecompressionBombError:
            raise InvalidImageError("image too large in pixels") from None
        if image.width * image.height > max_pixels:
            raise InvalidImageError(f"image too large: {image.width} x {image.height} pixels")
        if draft_size is not None and image.format == "JPEG":
            image.draft("L", draft_size)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise InvalidImageError(f"truncated or corrupt image ({exc})") from None
    return image


def preprocess(image: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """Return the model input for `image`: float32 (height, width, channels), values 0..255."""
    gray = to_gray_array(image)
    if config.head_crop:
        gray = crop_to_head(gray)
    square = pad_to_square(gray)
    height, width = config.input_size
    resized = Image.fromarray(square).resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(resized, dtype=np.float32)[:, :, np.newaxis]
    return np.repeat(array, config.channels, axis=2) if config.channels != 1 else array


def preprocess_bytes(data: bytes, config: PreprocessConfig) -> np.ndarray:
    return preprocess(reduced_decode(data, config), config)


def reduced_decode(data: bytes, config: PreprocessConfig) -> Image.Image:
    # Twice the input size, so the head crop still has pixels to spare.
    height, width = config.input_size
    return decode_image(data, draft_size=(width * 2, height * 2))


def to_gray_array(image: Image.Image) -> np.ndarray:
    """Return uint8 (height, width) intensities for any mode: RGB(A), palette, 16-bit, float."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255 if high > low else values * 0
        return scaled.astype(np.uint8)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("L"), dtype=np.uint8)


def crop_to_head(gray: np.ndarray, margin: float = 0.04) -> np.ndarray:
    """Crop to the bounding box of the head.

    Scans come framed very differently (tight or with wide black borders, text
    labels in corners); cropping to the head makes its size in the input
    consistent. Pixels brighter than a fraction of a high percentile count as
    head; if too little qualifies, the image is returned as it is.
    """
    if gray.size == 0 or min(gray.shape) < 8:
        return gray
    threshold = max(12.0, 0.12 * float(np.percentile(gray, 99)))
    mask = gray > threshold
    rows = np.flatnonzero(mask.mean(axis=1) > 0.02)
    columns = np.flatnonzero(mask.mean(axis=0) > 0.02)
    if rows.size < 8 or columns.size < 8:
        return gray
    pad_y, pad_x = int(margin * gray.shape[0]), int(margin * gray.shape[1])
    top, bottom = max(0, rows[0] - pad_y), min(gray.shape[0], rows[-1] + 1 + pad_y)
    left, right = max(0, columns[0] - pad_x), min(gray.shape[1], columns[-1] + 1 + pad_x)
    return gray[top:bottom, left:right]


def pad_to_square(gray: np.ndarray) -> np.ndarray:
    """Pad with black to a square so resizing keeps the anatomy's proportions."""
    height, width = gray.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=gray.dtype)
    top, left = (side - height) // 2, (side - width) // 2
    square[top : top + height, left : left + width] = gray
    return square
