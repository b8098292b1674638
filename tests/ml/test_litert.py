"""The LiteRT runtime: served probabilities match Keras; stale or missing conversions fall back."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from ml.inference import InferenceEngine
from ml.registry import METADATA_FILE
from ml.runtimes import LITERT_FILE, PARITY_TOLERANCE, RUNTIME_ENV, export_litert
from ml.testing import make_tiny_artefact
from tests.images import jpeg_bytes, png_bytes


def _slices(count: int, seed: int = 0) -> np.ndarray:
    """Brain-like 32x32 model inputs: a bright disc with darker structures, some noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    images = []
    for _ in range(count):
        centre = rng.uniform(12, 20, 2)
        disc = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < rng.uniform(60, 150)) * 180.0
        images.append(disc + rng.normal(0, 25, (32, 32)))
    return np.clip(np.stack(images), 0, 255)[..., np.newaxis].astype(np.float32)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = make_tiny_artefact(tmp_path_factory.mktemp("litert"))
    export_litert(folder, _slices(40))
    return folder


def _engine(folder: Path, runtime: str, monkeypatch: pytest.MonkeyPatch) -> InferenceEngine:
    monkeypatch.setenv(RUNTIME_ENV, runtime)
    return InferenceEngine.load(folder)


def test_the_served_probabilities_match_keras_within_the_tolerance(
    converted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata = json.loads((converted / METADATA_FILE).read_text())
    assert metadata["litert"]["parity"]["max_abs_diff"] <= PARITY_TOLERANCE
    served, keras_engine = (_engine(converted, r, monkeypatch) for r in ("auto", "tensorflow"))
    assert (served.runtime, keras_engine.runtime) == ("litert", "tensorflow")
    images = _slices(70, seed=1)  # another batch size than the conversion saw, and a remainder
    raw = served.predict_arrays(images, calibrated=False)
    reference = keras_engine.predict_arrays(images, calibrated=False)
    assert raw.shape == (70, 4)
    np.testing.assert_allclose(raw, reference, atol=PARITY_TOLERANCE, rtol=0)
    assert np.array_equal(raw.argmax(1), reference.argmax(1))
    encoded = [png_bytes(60), jpeg_bytes(90)]
    for ours, theirs in zip(served.predict(encoded), keras_engine.predict(encoded), strict=True):
        assert ours.label == theirs.label
        for name, p in ours.probabilities.items():
            assert p == pytest.approx(theirs.probabilities[name], abs=PARITY_TOLERANCE)


def test_grad_cam_still_explains_the_label_served_by_litert(
    converted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served, keras_engine = (_engine(converted, r, monkeypatch) for r in ("litert", "tensorflow"))
    prediction, explanation = served.explain(jpeg_bytes(90))
    _, reference = keras_engine.explain(jpeg_bytes(90), label=prediction.label)
    assert explanation.heatmap.shape == (32, 32)
    np.testing.assert_allclose(explanation.heatmap, reference.heatmap, atol=1e-5)


def test_threads_sharing_one_litert_engine_get_their_own_answers(
    converted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(converted, "litert", monkeypatch)
    batches = [_slices(size, seed=size) for size in (1, 5, 16, 7, 32, 3)]
    alone = [engine.predict_arrays(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(engine.predict_arrays, batches * 3))
    for index, result in enumerate(together):
        np.testing.assert_array_equal(result, alone[index % len(batches)])


def test_a_conversion_of_another_keras_model_is_not_served(
    converted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_tiny_artefact(tmp_path, "tiny-other")
    (other / LITERT_FILE).write_bytes((converted / LITERT_FILE).read_bytes())
    metadata = json.loads((other / METADATA_FILE).read_text())
    metadata["litert"] = json.loads((converted / METADATA_FILE).read_text())["litert"]
    (other / METADATA_FILE).write_text(json.dumps(metadata))
    assert _engine(other, "auto", monkeypatch).runtime == "tensorflow"
    with pytest.raises(ValueError, match="converted from another"):
        _engine(other, "litert", monkeypatch)


def test_an_artefact_without_a_conversion_is_served_by_tensorflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = make_tiny_artefact(tmp_path)
    assert _engine(plain, "auto", monkeypatch).runtime == "tensorflow"
    with pytest.raises(ValueError, match=r"no model\.tflite"):
        _engine(plain, "litert", monkeypatch)
    with pytest.raises(ValueError, match="auto, tensorflow or litert"):
        _engine(plain, "onnx", monkeypatch)


def test_export_refuses_a_conversion_beyond_the_tolerance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_tiny_artefact(tmp_path)
    monkeypatch.setattr("ml.runtimes.PARITY_TOLERANCE", -1.0)  # any difference is too much
    with pytest.raises(ValueError, match="differs from Keras"):
        export_litert(folder, _slices(8))
    assert not (folder / LITERT_FILE).exists()
    assert "litert" not in json.loads((folder / METADATA_FILE).read_text())
