"""The guard against what is not a brain MRI slice: its plain checks, and its network's machinery.

Trained here on tiny synthetic sets in seconds; the shipped model's own guard is
tested in test_shipped_model.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml import outliers
from ml.guard import (
    NOT_BRAIN_MRI,
    Guard,
    GuardSettings,
    choose_threshold,
    colourfulness,
    guard_inputs,
    outlier_inputs,
    save_guard,
    train_guard,
)
from ml.preprocessing import PreprocessConfig, preprocess_bytes
from tests.images import brain_like, encode

CONFIG = PreprocessConfig(input_size=(64, 64))


def head_inputs(count: int, seed: int) -> tuple[list[bytes], np.ndarray]:
    images = [encode(brain_like(96, seed=seed + i), "PNG") for i in range(count)]
    return images, np.stack([preprocess_bytes(data, CONFIG) for data in images])


@pytest.fixture(scope="module")
def tiny_guard() -> Guard:
    _, positives = head_inputs(160, seed=0)
    negatives = outlier_inputs(160, seed=3, config=CONFIG, anatomy=positives)
    network = train_guard(guard_inputs(positives), negatives, epochs=6, progress=lambda _: None)
    _, calibration = head_inputs(40, seed=500)
    provisional = Guard(network, GuardSettings(threshold=0.0))
    return Guard(network, GuardSettings(threshold=choose_threshold(provisional.scores(calibration),
                                                                   target=0.05)))  # fmt: skip


def test_colourfulness_tells_grey_scans_from_colour_pictures() -> None:
    rng = np.random.default_rng(0)
    grey_jpeg = encode(brain_like(128).convert("RGB"), "JPEG")
    assert colourfulness(grey_jpeg) < 0.02
    assert colourfulness(encode(brain_like(128), "PNG")) == 0.0
    assert colourfulness(encode(outliers.screenshot(rng, 200), "PNG")) > 0.06


def test_the_plain_checks_refuse_a_blank_and_a_colour_picture_whatever_the_network_says(
    tiny_guard: Guard,
) -> None:
    lenient = Guard(tiny_guard.network, GuardSettings(threshold=0.0))
    blank = encode(Image.new("L", (100, 100), 90), "PNG")
    colour = encode(outliers.screenshot(np.random.default_rng(1), 160), "PNG")
    arrays = np.stack([preprocess_bytes(d, CONFIG) for d in (blank, colour)])
    refusals = lenient.refusals([blank, colour], arrays)
    assert refusals[0] is not None and "blank" in refusals[0]
    assert refusals[1] is not None and "colour" in refusals[1]
    assert all(r.startswith(NOT_BRAIN_MRI) for r in refusals if r)


def test_a_trained_guard_refuses_a_document_and_noise_and_accepts_head_like_slices(
    tiny_guard: Guard,
) -> None:
    rng = np.random.default_rng(99)
    document = encode(outliers.document(rng, 256), "PNG")
    noise = encode(Image.fromarray(rng.integers(0, 256, (128, 128), dtype=np.uint8)), "PNG")
    heads, head_arrays = head_inputs(20, seed=900)
    outsiders = [document, noise]
    arrays = np.stack([preprocess_bytes(d, CONFIG) for d in outsiders])
    assert all(r is not None for r in tiny_guard.refusals(outsiders, arrays))
    accepted = [r is None for r in tiny_guard.refusals(heads, head_arrays)]
    assert sum(accepted) >= 15, tiny_guard.refusals(heads, head_arrays)  # 5% cut-off, 20 slices


def test_the_guard_is_saved_with_the_artefact_and_a_model_without_one_has_none(
    tiny_guard: Guard, tmp_path: Path
) -> None:
    (tmp_path / "metadata.json").write_text(json.dumps({"version": "x"}))
    assert Guard.load(tmp_path, {"version": "x"}) is None
    save_guard(tmp_path, tiny_guard.network, tiny_guard.settings, {"catch_rate": 1.0})
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["guard"]["threshold"] == tiny_guard.settings.threshold
    assert metadata["guard"]["figures"] == {"catch_rate": 1.0}
    loaded = Guard.load(tmp_path, metadata)
    assert loaded is not None and loaded.settings == tiny_guard.settings
    _, arrays = head_inputs(3, seed=7)
    np.testing.assert_allclose(loaded.scores(arrays), tiny_guard.scores(arrays), atol=1e-5)


def test_every_outlier_kind_generates_and_encodes() -> None:
    rng = np.random.default_rng(4)
    for kind in outliers.GENERATORS:
        data = outliers.encoded(outliers.generate(kind, rng, 120), rng)
        assert preprocess_bytes(data, CONFIG).shape == (64, 64, 1), kind
