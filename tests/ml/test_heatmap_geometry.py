"""The heat map lands where the model looked, in the original image's own pixels.

A non-square slice whose head sits off-centre is cropped, padded and resized before
the model sees it; a map over the model input has to be carried back through all
three. The bright blob is the check: a map that is bright where the model input is
bright must peak on the blob when drawn over the original.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ml.inference import LAYER_MAX_SIDE, InferenceEngine, heatmap_layer_png
from ml.preprocessing import Geometry, PreprocessConfig, decode_image, preprocess_with_geometry
from tests.images import encode

WIDTH, HEIGHT = 440, 278  # a coronal slice's proportions
BLOB = (318, 96)  # (x, y) in the original's pixels: right of centre, upper half
CONFIG = PreprocessConfig(input_size=(128, 128), channels=1, head_crop=True)


def off_centre_slice() -> Image.Image:
    """A grey head in the right part of a wide black frame, with one bright blob."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    head = (((x - 290) / 120) ** 2 + ((y - 150) / 105) ** 2 < 1) * 90.0
    blob = np.exp(-((x - BLOB[0]) ** 2 + (y - BLOB[1]) ** 2) / (2 * 7.0**2)) * 165
    return Image.fromarray(np.clip(head + blob, 0, 255).astype(np.uint8))


def peak(values: np.ndarray) -> tuple[int, int]:
    """Return (x, y) of the largest value."""
    row, column = np.unravel_index(int(np.argmax(values)), values.shape)
    return int(column), int(row)


def assert_on_blob(point: tuple[int, int], scale: float = 1.0, tolerance: float = 6.0) -> None:
    distance = np.hypot(point[0] / scale - BLOB[0], point[1] / scale - BLOB[1])
    assert distance <= tolerance, f"peak at {point} is {distance:.1f} px from the blob {BLOB}"


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_a_map_over_the_model_input_peaks_on_the_blob_in_the_original(image_format: str) -> None:
    # JPEG goes through the reduced (draft) decode the engine uses: other pixels again.
    decoded = decode_image(encode(off_centre_slice(), image_format), draft_size=(128, 128))
    model_input, geometry = preprocess_with_geometry(decoded, CONFIG)
    # The synthetic map is the model input's own brightness: its peak is where the blob went.
    synthetic_map = model_input[:, :, 0] / 255
    assert geometry.source_size == (WIDTH, HEIGHT)
    assert geometry.crop != (0, 0, *decoded.size), "the head crop took something away"
    mapped = geometry.to_source(synthetic_map)
    assert mapped.shape == (HEIGHT, WIDTH)
    assert_on_blob(peak(mapped))


def test_the_map_is_zero_where_the_crop_removed_the_frame() -> None:
    _, geometry = preprocess_with_geometry(off_centre_slice(), CONFIG)
    mapped = geometry.to_source(np.ones(CONFIG.input_size, np.float32))
    left = geometry.crop[0]
    assert left > 100, "the black frame left of the head is cropped away"
    assert mapped[:, : left - 1].max() == 0
    assert mapped[HEIGHT // 2, left + 5 : geometry.crop[2] - 5].min() == pytest.approx(1.0)


def test_the_layer_keeps_the_originals_proportions_at_any_size() -> None:
    model_input, geometry = preprocess_with_geometry(off_centre_slice(), CONFIG)
    small = Image.open(io.BytesIO(heatmap_layer_png(model_input[:, :, 0] / 255, geometry, 220)))
    assert small.has_transparency_data and small.size == (220, 139)
    alpha = np.asarray(small.convert("RGBA"))[:, :, 3]
    assert_on_blob(peak(alpha), scale=220 / WIDTH, tolerance=8.0)
    assert alpha[:, :40].max() == 0, "no colour over the cropped-away frame"


def test_the_engine_delivers_a_layer_over_the_original(
    tiny_registry: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    engine = InferenceEngine.load(Path(str(tiny_registry)) / "tiny-a")

    # The untrained test model looks anywhere; make Grad-CAM report the input's brightness
    # so the rest of the real path (draft decode, crop, pad, resize, layer) is what is tested.
    def brightness(batch: object, target: object) -> object:
        import tensorflow as tf

        values = tf.convert_to_tensor(batch)[:, :, :, 0]
        return values / tf.reduce_max(values)

    monkeypatch.setattr(engine, "_gradcam", brightness)
    _, explanation = engine.explain(encode(off_centre_slice(), "JPEG"))
    layer = Image.open(io.BytesIO(explanation.layer_png))
    # The original's proportions, at the layer's size (at most LAYER_MAX_SIDE on its long side).
    scale = min(1.0, LAYER_MAX_SIDE / WIDTH)
    assert layer.has_transparency_data
    assert layer.size == (round(WIDTH * scale), round(HEIGHT * scale))
    assert_on_blob(peak(np.asarray(layer.convert("RGBA"))[:, :, 3]), scale=scale, tolerance=8.0)


def test_the_layers_colours_are_the_jet_map_and_its_opacity_the_weight() -> None:
    from ml.inference import _colour_map

    weights = np.tile(np.linspace(0, 1, 97, dtype=np.float32), (97, 1))
    same_size = Geometry((97, 97), (97, 97), (0, 0, 97, 97), 97, (0, 0))
    png = Image.open(io.BytesIO(heatmap_layer_png(weights, same_size)))
    assert png.mode == "P" and "transparency" in png.info  # one index a pixel, RGBA palette
    layer = np.asarray(png.convert("RGBA")).astype(int)
    expected_colour = _colour_map(weights).astype(int)
    assert np.abs(layer[:, :, :3] - expected_colour).max() <= 5
    assert np.abs(layer[:, :, 3] - weights * 255).max() <= 1
