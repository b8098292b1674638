from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ml.errors import InvalidImageError
from ml.inference import InferenceEngine
from ml.labels import CLASS_NAMES
from tests.ml.images import brain_like, encode
from tests.ml.test_preprocessing import VALID_INPUTS


def test_predict_returns_one_prediction_per_image(tiny_engine: InferenceEngine) -> None:
    images = list(VALID_INPUTS.values())
    predictions = tiny_engine.predict(images)
    assert len(predictions) == len(images)
    for prediction in predictions:
        assert list(prediction.probabilities) == list(CLASS_NAMES)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        best = max(prediction.probabilities, key=prediction.probabilities.__getitem__)
        assert prediction.label == best
        assert prediction.model_version == "tiny-a"
        assert prediction.inference_ms >= 0


def test_predict_handles_a_huge_image(tiny_engine: InferenceEngine) -> None:
    huge = encode(Image.new("RGB", (6000, 6000), (30, 30, 30)), "JPEG")
    assert tiny_engine.predict([huge])[0].label in CLASS_NAMES


def test_predict_refuses_a_bad_image_saying_which(tiny_engine: InferenceEngine) -> None:
    with pytest.raises(InvalidImageError, match="image 1: not an image"):
        tiny_engine.predict([VALID_INPUTS["grayscale png"], b"%PDF-1.4 not an image"])


def test_predict_outcomes_keeps_good_results_beside_bad(tiny_engine: InferenceEngine) -> None:
    outcomes = tiny_engine.predict_outcomes([b"", VALID_INPUTS["rgb jpeg"]])
    assert isinstance(outcomes[0], InvalidImageError)
    assert str(outcomes[0]) == "empty file"
    assert outcomes[1].label in CLASS_NAMES  # type: ignore[union-attr]


def test_batches_larger_than_one_model_call_keep_their_order(tiny_artefact) -> None:  # type: ignore[no-untyped-def]
    engine = InferenceEngine.load(tiny_artefact, batch_size=4)
    images = [encode(brain_like(64, seed=i, class_index=i % 4)) for i in range(11)]
    batched = [p.probabilities for p in engine.predict(images)]
    single = [engine.predict([image])[0].probabilities for image in images]
    for left, right in zip(batched, single, strict=True):
        assert np.allclose(list(left.values()), list(right.values()), atol=1e-5)


def test_explain_returns_a_heatmap_and_an_overlay_png(tiny_engine: InferenceEngine) -> None:
    prediction, explanation = tiny_engine.explain(VALID_INPUTS["grayscale jpeg"])
    assert prediction.label in CLASS_NAMES
    assert explanation.heatmap.dtype == np.float32
    assert explanation.heatmap.shape == (32, 32)
    assert 0.0 <= explanation.heatmap.min() <= explanation.heatmap.max() <= 1.0
    overlay = Image.open(io.BytesIO(explanation.overlay_png))
    assert overlay.format == "PNG"
    assert overlay.size == (256, 256)


def test_explain_agrees_with_predict(tiny_engine: InferenceEngine) -> None:
    image = VALID_INPUTS["rgba png"]
    explained, _ = tiny_engine.explain(image)
    predicted = tiny_engine.predict([image])[0]
    assert explained.label == predicted.label
    for name in CLASS_NAMES:
        expected = predicted.probabilities[name]
        assert explained.probabilities[name] == pytest.approx(expected, abs=1e-5)


def test_predict_arrays_checks_the_shape(tiny_engine: InferenceEngine) -> None:
    with pytest.raises(ValueError, match="expected"):
        tiny_engine.predict_arrays(np.zeros((2, 64, 64, 1), np.float32))


def test_flip_test_time_augmentation_averages_image_and_mirror(tiny_artefact) -> None:  # type: ignore[no-untyped-def]
    plain = InferenceEngine.load(tiny_artefact, test_time_augmentation="none")
    flipped = InferenceEngine.load(tiny_artefact, test_time_augmentation="hflip")
    images = np.random.default_rng(0).normal(size=(3, 32, 32, 1)).astype(np.float32)
    expected = (plain.predict_arrays(images) + plain.predict_arrays(images[:, :, ::-1])) / 2
    np.testing.assert_allclose(flipped.predict_arrays(images), expected, atol=1e-5)
    explained, _ = flipped.explain(VALID_INPUTS["grayscale png"])
    predicted = flipped.predict([VALID_INPUTS["grayscale png"]])[0]
    for name, probability in predicted.probabilities.items():
        assert explained.probabilities[name] == pytest.approx(probability, abs=1e-5)
