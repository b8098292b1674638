"""TensorFlow's serving options for GPU workers (ML_TF_XLA, ML_TF_MIXED_PRECISION): they
change how the forward pass runs, not what it answers beyond a stated tolerance."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from ml.inference import InferenceEngine, _padded_to_power_of_two
from ml.model import MIXED_PRECISION, build_model, for_serving
from ml.runtimes import MIXED_PRECISION_ENV, RUNTIME_ENV, XLA_ENV, TensorFlowOptions
from ml.testing import make_tiny_artefact
from tests.images import jpeg_bytes
from tests.ml.test_litert import _slices

# Float16 convolutions with float32 weights and a float32 softmax: measured about 1e-3.
MIXED_PRECISION_TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def artefact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_artefact(tmp_path_factory.mktemp("tf-options"))


def _engine(artefact: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> InferenceEngine:
    monkeypatch.setenv(RUNTIME_ENV, "tensorflow")
    for name in (XLA_ENV, MIXED_PRECISION_ENV):
        monkeypatch.setenv(name, env.get(name, "0"))
    return InferenceEngine.load(artefact)


def test_the_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(XLA_ENV, raising=False)
    monkeypatch.delenv(MIXED_PRECISION_ENV, raising=False)
    assert TensorFlowOptions.from_environment() == TensorFlowOptions(False, False)
    monkeypatch.setenv(XLA_ENV, "1")
    monkeypatch.setenv(MIXED_PRECISION_ENV, "on")
    options = TensorFlowOptions.from_environment()
    assert options == TensorFlowOptions(True, True)
    assert options.name == "tensorflow+xla+mixed_float16"
    monkeypatch.setenv(XLA_ENV, "fast")
    with pytest.raises(ValueError, match="ML_TF_XLA must be 1 or 0, not 'fast'"):
        TensorFlowOptions.from_environment()


def test_mixed_precision_halves_the_convolutions_only() -> None:
    keras.utils.set_random_seed(3)
    model = build_model("mri_cnn")
    served = for_serving(model, mixed_precision=True)
    policies = {layer.name: layer.dtype_policy.name for layer in served.layers}
    convolutions = [layer for layer in served.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convolutions and all(policies[c.name] == MIXED_PRECISION for c in convolutions)
    assert policies["standardize"] == policies["probabilities"] == "float32"
    assert all(w.dtype == "float32" for w in served.weights)
    images = np.random.default_rng(3).uniform(0, 255, (4, 160, 160, 1)).astype(np.float32)
    halved = np.asarray(served(images, training=False))
    full = np.asarray(for_serving(model)(images, training=False))
    assert halved.dtype == np.float32 and np.abs(halved - full).max() > 0  # really float16
    np.testing.assert_allclose(halved, full, atol=MIXED_PRECISION_TOLERANCE)


@pytest.mark.parametrize(
    ("env", "tolerance"),
    [({XLA_ENV: "1"}, 1e-5), ({MIXED_PRECISION_ENV: "1"}, MIXED_PRECISION_TOLERANCE),
     ({XLA_ENV: "1", MIXED_PRECISION_ENV: "1"}, MIXED_PRECISION_TOLERANCE)],
)  # fmt: skip
def test_each_option_answers_as_plain_tensorflow_does(
    artefact: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tolerance: float
) -> None:
    plain = _engine(artefact, monkeypatch)
    tuned = _engine(artefact, monkeypatch, **env)
    assert plain.runtime == "tensorflow" and tuned.runtime.startswith("tensorflow+")
    for count in (1, 5, 13):  # XLA pads each batch to a power of two and drops the padding
        images = _slices(count, seed=count)
        ours = tuned.predict_arrays(images, calibrated=False)
        theirs = plain.predict_arrays(images, calibrated=False)
        assert ours.shape == theirs.shape == (count, 4) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, atol=tolerance)
    _, explanation = tuned.explain(jpeg_bytes(90))
    assert explanation.heatmap.shape == (32, 32) and np.isfinite(explanation.heatmap).all()


def test_a_batch_is_padded_to_the_next_power_of_two() -> None:
    for count, size in ((1, 1), (2, 2), (3, 4), (5, 8), (64, 64)):
        padded = _padded_to_power_of_two(np.ones((count, 2, 2, 1), np.float32))
        assert padded.shape == (size, 2, 2, 1) and padded[count:].sum() == 0
