"""Decode an image and turn it into the model's input: the one function training and serving share.

Numpy and Pillow only. The model itself standardises intensity per image (its
first layer), so what happens here is geometric: grayscale, crop to the head,
pad to a square, resize. The artefact's metadata records the configuration;
`Geometry` records what was done to one image, so a map over the model input
(Grad-CAM) can be drawn back over the original.
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
# Where `decode_image` keeps the stored image's (width, height) when a JPEG draft shrank it.
SOURCE_SIZE_KEY = "source_size"

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
        except (OSError, SyntaxError, ValueError) as exc:
            # A known header whose first chunks are cut off or corrupt (PIL reads them on open).
            raise InvalidImageError(f"truncated or corrupt image ({exc})") from None
        if image.width * image.height > max_pixels:
            raise InvalidImageError(f"image too large: {image.width} x {image.height} pixels")
        image.info[SOURCE_SIZE_KEY] = image.size
        if draft_size is not None and image.format == "JPEG":
            image.draft("L", draft_size)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise InvalidImageError(f"truncated or corrupt image ({exc})") from None
    return image


@dataclass(frozen=True)
class Geometry:
    """Where the model input came from in the original image: the crop, the pad, the resize.

    Boxes are in the decoded image's pixels, which a JPEG draft may have made smaller
    than the stored image (`source_size`); `to_source` undoes all of it.
    """

    source_size: tuple[int, int]  # (width, height) of the image as stored
    decoded_size: tuple[int, int]  # (width, height) that was preprocessed
    crop: tuple[int, int, int, int]  # (left, top, right, bottom) kept of the decoded image
    square_side: int  # the side of the square the crop was padded to
    offset: tuple[int, int]  # (left, top) of the crop inside that square

    def source_size_within(self, max_side: int) -> tuple[int, int]:
        """Return (width, height) of the stored image scaled down to at most `max_side`."""
        width, height = self.source_size
        scale = min(1.0, max_side / max(width, height))
        return max(1, round(width * scale)), max(1, round(height * scale))

    def to_source(self, values: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """Map float32 (h, w) `values` over the model input onto the original image.

        Returns float32 (height, width) at `size` (width, height; the stored image's size
        by default): the pad is dropped, and what the crop removed gets zero.
        """
        if values.ndim != 2:
            raise ValueError(f"expected a (height, width) map, got shape {values.shape}")
        width, height = size or self.source_size
        side = self.square_side
        square = Image.fromarray(values.astype(np.float32)).resize(
            (side, side), Image.Resampling.BILINEAR
        )
        left, top, right, bottom = self.crop
        column, row = self.offset
        kept = square.crop((column, row, column + right - left, row + bottom - top))
        scale_x, scale_y = width / self.decoded_size[0], height / self.decoded_size[1]
        box = (round(left * scale_x), round(top * scale_y))
        box_size = (
            max(1, round(right * scale_x) - box[0]),
            max(1, round(bottom * scale_y) - box[1]),
        )
        mapped = np.zeros((height, width), np.float32)
        region = np.asarray(kept.resize(box_size, Image.Resampling.BILINEAR), np.float32)
        mapped[box[1] : box[1] + box_size[1], box[0] : box[0] + box_size[0]] = region
        return mapped


def preprocess(image: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """Return the model input for `image`: float32 (height, width, channels), values 0..255."""
    return preprocess_with_geometry(image, config)[0]


def preprocess_with_geometry(
    image: Image.Image, config: PreprocessConfig
) -> tuple[np.ndarray, Geometry]:
    """Return the model input (as `preprocess`) and the `Geometry` that made it."""
    gray = to_gray_array(image)
    whole = (0, gray.shape[0], 0, gray.shape[1])
    top, bottom, left, right = head_box(gray) if config.head_crop else whole
    square, offset = pad_to_square_at(gray[top:bottom, left:right])
    height, width = config.input_size
    resized = Image.fromarray(square).resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(resized, dtype=np.float32)[:, :, np.newaxis]
    array = np.repeat(array, config.channels, axis=2) if config.channels != 1 else array
    geometry = Geometry(
        source_size=image.info.get(SOURCE_SIZE_KEY, image.size),
        decoded_size=image.size,
        crop=(left, top, right, bottom),
        square_side=square.shape[0],
        offset=offset,
    )
    return array, geometry


def preprocess_bytes(data: bytes, config: PreprocessConfig) -> np.ndarray:
    return preprocess(reduced_decode(data, config), config)


def preprocess_bytes_with_geometry(
    data: bytes, config: PreprocessConfig
) -> tuple[np.ndarray, Geometry]:
    return preprocess_with_geometry(reduced_decode(data, config), config)


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
    """Crop to the bounding box of the head (`head_box`)."""
    top, bottom, left, right = head_box(gray, margin)
    return gray[top:bottom, left:right]


def head_box(gray: np.ndarray, margin: float = 0.04) -> tuple[int, int, int, int]:
    """Return (top, bottom, left, right) of the head, a margin around it; the whole image if none.

    Scans come framed very differently (tight or with wide black borders, text
    labels in corners); cropping to the head makes its size in the input
    consistent. Pixels brighter than a fraction of a high percentile count as
    head; if too little qualifies, the box is the whole image.
    """
    whole = (0, gray.shape[0], 0, gray.shape[1])
    if gray.size == 0 or min(gray.shape) < 8:
        return whole
    threshold = max(12.0, 0.12 * float(np.percentile(gray, 99)))
    mask = gray > threshold
    rows = np.flatnonzero(mask.mean(axis=1) > 0.02)
    columns = np.flatnonzero(mask.mean(axis=0) > 0.02)
    if rows.size < 8 or columns.size < 8:
        return whole
    pad_y, pad_x = int(margin * gray.shape[0]), int(margin * gray.shape[1])
    top, bottom = max(0, int(rows[0]) - pad_y), min(gray.shape[0], int(rows[-1]) + 1 + pad_y)
    left, right = max(0, int(columns[0]) - pad_x), min(gray.shape[1], int(columns[-1]) + 1 + pad_x)
    return top, bottom, left, right


def pad_to_square(gray: np.ndarray) -> np.ndarray:
    """Pad with black to a square so resizing keeps the anatomy's proportions."""
    return pad_to_square_at(gray)[0]


def pad_to_square_at(gray: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Return `gray` padded with black to a square, and (left, top) of `gray` inside it."""
    height, width = gray.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=gray.dtype)
    top, left = (side - height) // 2, (side - width) // 2
    square[top : top + height, left : left + width] = gray
    return square, (left, top)
