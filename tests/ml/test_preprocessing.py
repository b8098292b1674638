from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ml.errors import InvalidImageError
from ml.preprocessing import (
    CONFIGS,
    PreprocessConfig,
    decode_image,
    head_box,
    load_array,
    preprocess,
)
from tests.ml.images import brain_like, encode

MRI = CONFIGS["mri_cnn"]


def _sixteen_bit() -> Image.Image:
    values = (np.asarray(brain_like(64), dtype=np.uint16) * 250).astype(np.uint16)
    return Image.fromarray(values)  # mode I;16


VALID_INPUTS = {
    "grayscale png": encode(brain_like(96), "PNG"),
    "grayscale jpeg": encode(brain_like(96), "JPEG"),
    "rgb jpeg": encode(brain_like(96).convert("RGB"), "JPEG"),
    "rgba png": encode(brain_like(96).convert("RGBA"), "PNG"),
    "palette png": encode(brain_like(96).convert("P"), "PNG"),
    "16-bit png": encode(_sixteen_bit(), "PNG"),
    "tiny 3x3": encode(Image.new("L", (3, 3), 128), "PNG"),
    "1x1 jpeg": encode(Image.new("RGB", (1, 1)), "JPEG"),
}

INVALID_INPUTS = {
    "empty": (b"", "empty file"),
    "text": (b"hello, this is not an image", "not an image"),
    "truncated jpeg": (encode(brain_like(128), "JPEG")[:400], "truncated or corrupt"),
    "truncated png": (encode(brain_like(128), "PNG")[:300], "truncated or corrupt"),
}


@pytest.mark.parametrize("name", sorted(VALID_INPUTS))
@pytest.mark.parametrize("architecture", ["mri_cnn", "seed_cnn"])
def test_it_preprocesses_any_image_mode_and_size(name: str, architecture: str) -> None:
    config = CONFIGS[architecture]
    array = load_array(VALID_INPUTS[name], config)
    assert array.shape == (*config.input_size, config.channels)
    assert array.dtype == np.float32
    assert np.isfinite(array).all()


@pytest.mark.parametrize("name", sorted(INVALID_INPUTS))
def test_it_refuses_what_is_not_a_usable_image(name: str) -> None:
    data, message = INVALID_INPUTS[name]
    with pytest.raises(InvalidImageError, match=message):
        decode_image(data)


def test_it_refuses_images_over_the_pixel_limit() -> None:
    data = encode(Image.new("L", (400, 300)), "PNG")
    with pytest.raises(InvalidImageError, match="image too large: 400 x 300 pixels"):
        decode_image(data, max_pixels=100_000)


def test_it_decodes_a_huge_image() -> None:
    data = encode(Image.new("L", (6000, 6000), 40), "JPEG")
    array = load_array(data, MRI)
    assert array.shape == (128, 128, 1)


def test_zscore_gives_zero_mean_unit_variance() -> None:
    array = preprocess(brain_like(100), MRI)
    assert abs(float(array.mean())) < 1e-4
    assert abs(float(array.std()) - 1.0) < 1e-3


def test_head_crop_finds_the_head_wherever_it_is_framed() -> None:
    canvas = Image.new("L", (300, 200), 0)
    canvas.paste(brain_like(80), (150, 60))
    left, top, right, bottom = head_box(np.asarray(canvas))
    assert left <= 160 and right >= 220 and top <= 70 and bottom >= 130
    assert right - left == bottom - top  # square: the aspect ratio is kept


def test_config_round_trips_through_metadata() -> None:
    for config in CONFIGS.values():
        assert PreprocessConfig.from_metadata(config.to_metadata()) == config


def test_config_refuses_unknown_normalisation() -> None:
    with pytest.raises(ValueError, match="normalisation"):
        PreprocessConfig(normalisation="minmax")
