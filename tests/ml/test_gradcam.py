"""Closed-form Grad-CAM (ml/gradcam.py) against TensorFlow's gradient tape, and the LiteRT
conversion that returns what it needs (`ml.runtimes.explaining_network`)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from ml.ensemble import build_ensemble
from ml.gradcam import closed_form_cams, resize_bilinear, softmax_head_kernel
from ml.inference import InferenceEngine, _gradcam
from ml.model import LAST_CONV_LAYER, build_model, for_serving
from ml.registry import METADATA_FILE, MODEL_FILE
from ml.runtimes import RUNTIME_ENV, explaining_network, export_litert
from ml.testing import make_tiny_artefact
from tests.images import jpeg_bytes, png_bytes
from tests.ml.test_litert import _slices

# Both paths compute in float32; measured differences are about 1e-7.
MAP_TOLERANCE = 1e-5


@pytest.mark.parametrize(("source", "target"), [((10, 10), (160, 160)), ((7, 5), (32, 45))])
def test_the_resize_is_tensorflows_bilinear_resize(
    source: tuple[int, int], target: tuple[int, int]
) -> None:
    maps = np.random.default_rng(3).random((3, *source), np.float32)
    expected = tf.image.resize(maps[..., np.newaxis], target, method="bilinear")[..., 0].numpy()
    np.testing.assert_allclose(resize_bilinear(maps, target), expected, atol=1e-6, rtol=0)


def _tape_cams(network: keras.Model, batch: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Grad-CAM by TensorFlow's gradient tape, before the resize, for one network."""
    explainer = keras.Model(
        network.inputs, [network.get_layer(LAST_CONV_LAYER).output, network.output]
    )
    with tf.GradientTape() as tape:
        activations, probabilities = explainer(batch, training=False)
        score = tf.gather(probabilities, targets, axis=1, batch_dims=1)
    gradients = tape.gradient(score, activations)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1))
    return (cam / (tf.reduce_max(cam, axis=(1, 2), keepdims=True) + 1e-8)).numpy()


@pytest.mark.parametrize("architecture", ["tiny", "mri_cnn"])
def test_the_closed_form_matches_the_gradient_tape(architecture: str) -> None:
    keras.utils.set_random_seed(7)
    network = for_serving(build_model(architecture))
    size = network.input_shape[1]
    rng = np.random.default_rng(1)
    batch = rng.uniform(0, 255, (6, size, size, 1)).astype(np.float32)
    targets = np.array([0, 1, 2, 3, 2, 0], np.int32)
    explainer = keras.Model(
        network.inputs, [network.get_layer(LAST_CONV_LAYER).output, network.output]
    )
    activations, probabilities = (np.asarray(x) for x in explainer(batch, training=False))
    kernel = softmax_head_kernel(network, LAST_CONV_LAYER)
    assert kernel is not None and kernel.shape == (activations.shape[-1], 4)
    ours = closed_form_cams(activations, probabilities, kernel, targets)
    np.testing.assert_allclose(ours, _tape_cams(network, batch, targets), atol=MAP_TOLERANCE)
    peaks = ours.reshape(6, -1).max(1)  # 1 but for the epsilon added to each peak
    assert ours.min() >= 0 and np.all(peaks <= 1) and np.all(peaks > 0.99)


def test_a_head_with_hidden_layers_has_no_closed_form() -> None:
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name=LAST_CONV_LAYER)(inputs)
    x = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(x))
    flattened = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    assert softmax_head_kernel(flattened, LAST_CONV_LAYER) is None
    assert explaining_network(flattened) is None
    pooled = keras.layers.GlobalAveragePooling2D()(flattened.get_layer(LAST_CONV_LAYER).output)
    linear = keras.Model(inputs, keras.layers.Dense(4)(pooled))  # no softmax
    assert softmax_head_kernel(linear, LAST_CONV_LAYER) is None


def _tiny_ensemble(folder: Path) -> Path:
    """A tiny artefact whose network is `build_ensemble` of two tiny networks, mirrored."""
    keras.utils.set_random_seed(11)
    members = [build_model("tiny") for _ in range(2)]
    build_ensemble(members, test_time_flip=True).save(folder / MODEL_FILE)
    return folder


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = _tiny_ensemble(make_tiny_artefact(tmp_path_factory.mktemp("ensemble")))
    export_litert(folder, _slices(40))
    return folder


def test_the_conversion_of_an_ensemble_returns_each_networks_activations(ensemble: Path) -> None:
    entry = json.loads((ensemble / METADATA_FILE).read_text())["litert"]
    assert entry["explains"] == {"classes": 4, "networks": 2, "activations": [16, 16, 8]}
    assert entry["parity"]["label_agreement"] == 1.0


def test_litert_heat_maps_of_an_ensemble_match_tensorflows(
    ensemble: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUNTIME_ENV, "litert")
    served = InferenceEngine.load(ensemble)
    monkeypatch.setenv(RUNTIME_ENV, "tensorflow")
    reference = InferenceEngine.load(ensemble)
    assert served._head_kernels is not None and reference._head_kernels is None
    images = [jpeg_bytes(90, seed) for seed in range(5)] + [png_bytes(60)]
    labels = [None, "glioma", None, "pituitary", None, "no_tumor"]
    ours = served.explain_many(images, labels)
    theirs = reference.explain_many(images, labels)
    for mine, other in zip(ours, theirs, strict=True):
        assert not isinstance(mine, Exception) and not isinstance(other, Exception)
        assert mine[0].label == other[0].label
        assert mine[1].heatmap.shape == other[1].heatmap.shape == (32, 32)
        np.testing.assert_allclose(mine[1].heatmap, other[1].heatmap, atol=MAP_TOLERANCE)


def test_the_engine_never_runs_tensorflows_grad_cam_when_litert_explains(
    ensemble: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUNTIME_ENV, "litert")
    engine = InferenceEngine.load(ensemble)

    def refuse(*_: object) -> None:
        raise AssertionError("TensorFlow's Grad-CAM ran")

    monkeypatch.setattr(engine, "_gradcam", refuse)
    _, explanation = engine.explain(jpeg_bytes(90))
    assert explanation.heatmap.shape == (32, 32)
    assert 0 < explanation.heatmap.max() <= 1  # the mean of the networks' maps, each peaking at 1
    assert explanation.layer_png.startswith(b"\x89PNG")


def test_the_reference_grad_cam_is_what_the_tape_gives(ensemble: Path) -> None:
    """The TensorFlow path (`ml.inference._gradcam`) averages the networks' tape maps."""
    model = for_serving(keras.saving.load_model(ensemble / MODEL_FILE, compile=False))
    members = [layer for layer in model.layers if hasattr(layer, "get_layer")]
    batch = _slices(4, seed=5)
    targets = np.array([0, 3, 1, 2], np.int32)
    explainers = [
        keras.Model(m.inputs, [m.get_layer(LAST_CONV_LAYER).output, m.output]) for m in members
    ]
    expected = resize_bilinear(
        np.mean([_tape_cams(m, batch, targets) for m in members], axis=0), (32, 32)
    )
    reference = _gradcam(explainers, tf.constant(batch), tf.constant(targets)).numpy()
    np.testing.assert_allclose(reference, expected, atol=MAP_TOLERANCE)


def test_activations_the_head_cannot_use_are_a_clear_error_at_load(
    ensemble: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUNTIME_ENV, "litert")
    monkeypatch.setattr("ml.inference.softmax_head_kernel", lambda *_: None)
    with pytest.raises(ValueError, match="allows no closed form"):
        InferenceEngine.load(ensemble)
