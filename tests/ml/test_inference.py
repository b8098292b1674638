from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.errors import InvalidImageError, ModelNotFoundError, NotBrainMRIError
from ml.inference import InferenceEngine
from ml.labels import CLASS_NAMES
from tests.images import brain_like, encode, jpeg_bytes, png_bytes


@pytest.fixture(scope="module")
def engine(tiny_registry: Path) -> InferenceEngine:
    return InferenceEngine.load(tiny_registry / "tiny-a")


def test_predicts_a_label_and_probabilities_in_class_order(engine: InferenceEngine) -> None:
    predictions = engine.predict([png_bytes(), jpeg_bytes(300), png_bytes(40, seed=3)])
    assert len(predictions) == 3
    for prediction in predictions:
        assert tuple(prediction.probabilities) == CLASS_NAMES
        assert math.isclose(sum(prediction.probabilities.values()), 1.0, abs_tol=1e-5)
        assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.get)
        assert prediction.model_version == "tiny-a"


def test_batches_give_the_same_answer_as_single_images(engine: InferenceEngine) -> None:
    images = [png_bytes(64, seed) for seed in range(70)]  # more than one batch
    together = engine.predict(images)
    alone = [engine.predict([image])[0] for image in images[:3]]
    for joint, single in zip(together[:3], alone, strict=True):
        for name in CLASS_NAMES:
            assert joint.probabilities[name] == pytest.approx(single.probabilities[name], abs=1e-5)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK"])
def test_accepts_images_of_any_mode(engine: InferenceEngine, mode: str) -> None:
    image = brain_like(50).convert("RGB").convert(mode)
    image_format = "JPEG" if mode == "CMYK" else "PNG"
    assert engine.predict([encode(image, image_format)])[0].label in CLASS_NAMES


def test_refuses_a_non_image_with_a_clear_error(engine: InferenceEngine) -> None:
    with pytest.raises(InvalidImageError, match="not an image"):
        engine.predict([b"%PDF-1.7"])


def test_explains_with_a_heat_map_and_a_layer_the_originals_size(engine: InferenceEngine) -> None:
    prediction, explanation = engine.explain(jpeg_bytes(200))
    assert prediction.label in CLASS_NAMES
    assert explanation.heatmap.shape == (32, 32)
    assert explanation.heatmap.min() >= 0 and explanation.heatmap.max() <= 1
    layer = Image.open(io.BytesIO(explanation.layer_png))
    assert layer.format == "PNG" and layer.has_transparency_data and layer.size == (200, 200)


def test_explaining_an_unknown_label_is_a_clear_error(engine: InferenceEngine) -> None:
    with pytest.raises(ValueError, match="unknown label 'astrocytoma'"):
        engine.explain(jpeg_bytes(100), label="astrocytoma")


def test_predict_arrays_matches_predict(engine: InferenceEngine) -> None:
    from ml.preprocessing import preprocess_bytes

    data = png_bytes(90)
    array = preprocess_bytes(data, engine.config)[np.newaxis]
    probabilities = engine.predict_arrays(array)[0]
    expected = engine.predict([data])[0].probabilities
    assert probabilities == pytest.approx([expected[name] for name in CLASS_NAMES], abs=1e-6)


def test_loading_a_folder_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"holds no model\.keras"):
        InferenceEngine.load(tmp_path)


def blank_png(size: int = 64) -> bytes:
    return encode(Image.new("L", (size, size), 128), "PNG")


def test_explain_many_answers_each_image_in_order_like_explain(engine: InferenceEngine) -> None:
    images = [jpeg_bytes(200), png_bytes(64, seed=1), png_bytes(90, seed=2)]
    outcomes = engine.explain_many(images)
    assert len(outcomes) == 3
    for image, outcome in zip(images, outcomes, strict=True):
        assert not isinstance(outcome, Exception)
        prediction, explanation = outcome
        alone_prediction, alone_explanation = engine.explain(image)
        assert prediction.label == alone_prediction.label
        for name in CLASS_NAMES:
            expected = alone_prediction.probabilities[name]
            assert prediction.probabilities[name] == pytest.approx(expected, abs=1e-5)
        np.testing.assert_allclose(explanation.heatmap, alone_explanation.heatmap, atol=1e-4)
        layer = Image.open(io.BytesIO(explanation.layer_png))
        assert layer.size == Image.open(io.BytesIO(image)).size


def test_a_bad_or_refused_image_fails_only_its_own_place_in_the_batch(
    engine: InferenceEngine,
) -> None:
    outcomes = engine.explain_many([png_bytes(64), b"%PDF-1.7", blank_png(), jpeg_bytes(100)])
    assert isinstance(outcomes[1], InvalidImageError) and "not an image" in str(outcomes[1])
    assert isinstance(outcomes[2], NotBrainMRIError) and "blank" in str(outcomes[2])
    for good in (outcomes[0], outcomes[3]):
        assert not isinstance(good, Exception)
        assert good[0].label in CLASS_NAMES and good[0].inference_ms > 0


def test_explain_many_of_nothing_or_only_bad_images(engine: InferenceEngine) -> None:
    assert engine.explain_many([]) == []
    outcomes = engine.explain_many([b"", blank_png(), b"\x89PNG\r\n\x1a\n cut"])
    assert isinstance(outcomes[0], InvalidImageError)
    assert isinstance(outcomes[1], NotBrainMRIError)
    assert isinstance(outcomes[2], InvalidImageError)


def test_explain_many_over_one_model_batch(engine: InferenceEngine) -> None:
    from ml.inference import BATCH_SIZE

    images = [png_bytes(48, seed) for seed in range(BATCH_SIZE + 3)]
    outcomes = engine.explain_many(images)
    assert len(outcomes) == BATCH_SIZE + 3
    last = outcomes[-1]
    assert not isinstance(last, Exception)
    assert last[0].label == engine.explain(images[-1])[0].label


def test_explain_still_raises_for_a_bad_image(engine: InferenceEngine) -> None:
    with pytest.raises(InvalidImageError, match="not an image"):
        engine.explain(b"%PDF-1.7")
    with pytest.raises(NotBrainMRIError, match="blank"):
        engine.explain(blank_png())
