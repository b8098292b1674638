from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ml.errors import InvalidImageError
from ml.preprocessing import PreprocessConfig, crop_to_head, decode_image, preprocess_bytes
from tests.images import brain_like, encode, jpeg_bytes, png_claiming_size, truncated_jpeg

CONFIG = PreprocessConfig(input_size=(128, 128), channels=1, head_crop=True)


def image_of_mode(mode: str, size: tuple[int, int] = (64, 48)) -> bytes:
    base = brain_like(max(size)).resize(size)
    if mode == "I;16":
        array = np.asarray(base, np.uint16) * 200
        return encode(Image.fromarray(array.astype("<u2")), "PNG")  # a 16-bit PNG
    return encode(base.convert(mode), "PNG")


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "I;16", "1"])
def test_any_mode_becomes_one_gray_channel(mode: str) -> None:
    array = preprocess_bytes(image_of_mode(mode), CONFIG)
    assert array.shape == (128, 128, 1) and array.dtype == np.float32
    assert array.min() >= 0 and array.max() <= 255 and array.max() > 0


@pytest.mark.parametrize("size", [(3, 3), (1, 200), (6000, 6000)])
def test_tiny_thin_and_huge_images_are_resized(size: tuple[int, int]) -> None:
    data = encode(Image.new("L", size, 90), "PNG")
    assert preprocess_bytes(data, CONFIG).shape == (128, 128, 1)


def test_three_channel_configs_repeat_the_gray_channel() -> None:
    config = PreprocessConfig(input_size=(64, 64), channels=3, head_crop=False)
    array = preprocess_bytes(jpeg_bytes(), config)
    assert array.shape == (64, 64, 3)
    assert np.array_equal(array[:, :, 0], array[:, :, 2])


INVALID = {
    "empty file": (b"", "empty file"),
    "not an image": (b"just some text", "not an image"),
    "truncated": (truncated_jpeg(), "truncated or corrupt"),
    # A PNG signature and nothing whole after it: PIL fails while opening, not loading.
    "cut inside the header": (b"\x89PNG\r\n\x1a\n truncated", "truncated or corrupt"),
    "bomb": (png_claiming_size(50_000, 50_000), "too large"),
    "over the pixel limit": (png_claiming_size(8_000, 8_000), "image too large: 8000 x 8000"),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_undecodable_input_is_refused_with_a_reason(case: str) -> None:
    data, message = INVALID[case]
    with pytest.raises(InvalidImageError, match=message):
        decode_image(data)


def test_the_head_crop_removes_black_borders_and_keeps_the_head() -> None:
    canvas = np.zeros((300, 400), np.uint8)
    canvas[100:200, 150:260] = 120
    cropped = crop_to_head(canvas)
    assert cropped.shape == (100 + 2 * 12, 110 + 2 * 16)  # the head plus a 4% margin
    assert (cropped == 120).sum() == 100 * 110


def test_an_empty_image_is_not_cropped_away() -> None:
    blank = np.zeros((50, 60), np.uint8)
    assert crop_to_head(blank).shape == (50, 60)
