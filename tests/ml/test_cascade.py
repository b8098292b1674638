"""The cascade (ml/cascade.py): one member alone where it is sure, the ensemble where not;
its reference Keras model, its two-part LiteRT serving and its heat maps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from ml.cascade import build_cascade, cascade_of, choose_margin, escalates, top_margin
from ml.ensemble import build_ensemble
from ml.gradcam import resize_bilinear
from ml.inference import InferenceEngine
from ml.model import build_model, for_serving
from ml.registry import METADATA_FILE, MODEL_FILE, ModelRegistry
from ml.runtimes import ESCALATION_FILE, LITERT_FILE, RUNTIME_ENV, export_litert
from ml.testing import make_tiny_artefact
from tests.images import jpeg_bytes
from tests.ml.test_ensemble import twin_ensemble
from tests.ml.test_gradcam import MAP_TOLERANCE, _tape_cams
from tests.ml.test_litert import _slices
from tests.ml.test_train_and_cli import run_cli, trained  # noqa: F401  (module-scoped fixture)


def test_the_margin_is_the_top_probability_minus_the_runner_up() -> None:
    probabilities = np.array([[0.7, 0.2, 0.1, 0.0], [0.3, 0.25, 0.4, 0.05]], np.float32)
    np.testing.assert_allclose(top_margin(probabilities), [0.5, 0.1], atol=1e-6)
    assert escalates(probabilities, 0.1).tolist() == [False, True]


def test_the_cut_is_the_lowest_that_keeps_every_label_the_ensembles() -> None:
    first = np.array([[0.9, 0.1, 0, 0], [0.6, 0.4, 0, 0], [0.3, 0.7, 0, 0], [0.45, 0.55, 0, 0]])
    ensemble = np.array([[0.8, 0.2, 0, 0], [0.4, 0.6, 0, 0], [0.3, 0.7, 0, 0], [0.6, 0.4, 0, 0]])
    margin = choose_margin(first, ensemble)
    assert margin == pytest.approx(0.2)  # the second row disagrees with the larger margin
    escalated = escalates(first, margin)
    assert escalated.tolist() == [False, True, False, True]
    served = np.where(escalated[:, None], ensemble, first)
    assert (served.argmax(1) == ensemble.argmax(1)).all()
    assert choose_margin(ensemble, ensemble) == 0.0


def _members() -> list[keras.Model]:
    keras.utils.set_random_seed(11)
    return [build_model("tiny") for _ in range(2)]


def _cut_between(first: keras.Model, images: np.ndarray) -> float:
    """A cut that sends about half of `images` to the ensemble."""
    return float(np.median(top_margin(np.asarray(first(images, training=False)))))


def test_the_reference_model_selects_row_by_row() -> None:
    members = _members()
    images = _slices(12, seed=3)
    margin = _cut_between(members[1], images)
    cascade = build_cascade(members, first=1, margin=margin)
    alone = np.asarray(members[1](images, training=False))
    ensemble = np.asarray(build_ensemble(members)(images, training=False))
    escalated = escalates(alone, margin)
    assert 0 < escalated.sum() < len(images)
    expected = np.where(escalated[:, None], ensemble, alone)
    np.testing.assert_allclose(np.asarray(cascade(images, training=False)), expected, atol=1e-6)
    found = cascade_of(cascade)
    assert found is not None and found[1:] == (1, margin, True) and len(found[0]) == 2
    assert cascade_of(build_ensemble(members)) is None


@pytest.fixture(scope="module")
def cascade(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny artefact whose network is a cascade of two tiny networks, half escalated.

    The second member goes first: Keras then lists it first among the model's layers,
    which the conversion and the heat maps must not take for member 0."""
    folder = make_tiny_artefact(tmp_path_factory.mktemp("cascade"))
    members = _members()
    margin = _cut_between(members[1], _slices(40))
    build_cascade(members, first=1, margin=margin).save(folder / MODEL_FILE)
    export_litert(folder, _slices(40))
    return folder


def test_the_conversion_writes_both_parts_and_matches_keras(cascade: Path) -> None:
    entry = json.loads((cascade / METADATA_FILE).read_text())["litert"]
    assert (cascade / LITERT_FILE).is_file() and (cascade / ESCALATION_FILE).is_file()
    assert entry["explains"] == {"classes": 4, "networks": 1, "activations": [16, 16, 8]}
    assert entry["cascade"]["explains"] == entry["explains"]  # the one other member
    assert entry["cascade"]["passes"] == 4 and entry["cascade"]["first_member"] == 1
    assert entry["parity"]["max_abs_diff"] <= entry["parity"]["tolerance"]
    assert entry["parity"]["label_agreement"] == 1.0


def test_litert_serves_the_cascade_as_tensorflow_does(
    cascade: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUNTIME_ENV, "litert")
    served = InferenceEngine.load(cascade)
    monkeypatch.setenv(RUNTIME_ENV, "tensorflow")
    reference = InferenceEngine.load(cascade)
    assert type(served._litert).__name__ == "CascadeRunner"
    images = _slices(30, seed=9)
    ours = served.predict_arrays(images, calibrated=False)
    theirs = reference.predict_arrays(images, calibrated=False)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_a_heat_map_comes_from_the_networks_that_answered(
    cascade: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first member's map where it answered alone; both members' mean where escalated."""
    monkeypatch.setenv(RUNTIME_ENV, "litert")
    engine = InferenceEngine.load(cascade)
    members = [for_serving(m) for m in cascade_of(engine.model)[0]]  # type: ignore[index]
    batch = _slices(16, seed=4)
    probabilities, networks = engine._classify_for_maps(batch)
    targets = probabilities.argmax(1).astype(np.int32)
    margin = json.loads((cascade / METADATA_FILE).read_text())["litert"]["cascade"]["margin"]
    escalated = escalates(np.asarray(members[1](batch, training=False)), margin)
    assert 0 < escalated.sum() < len(batch)
    # The other member ran on the escalated slices only; its other rows are NaN.
    other_activations = networks[0][1]
    assert np.isnan(other_activations[~escalated]).all()
    assert not np.isnan(other_activations[escalated]).any()
    maps = engine._heatmaps(batch, targets, networks)
    first = _tape_cams(members[1], batch, targets)
    both = np.mean([_tape_cams(member, batch, targets) for member in members], axis=0)
    expected = resize_bilinear(np.where(escalated[:, None, None], both, first), (32, 32))
    np.testing.assert_allclose(maps, expected, atol=MAP_TOLERANCE)
    _, explanation = engine.explain(jpeg_bytes(90))
    assert explanation.heatmap.shape == (32, 32) and not np.isnan(explanation.heatmap).any()


def test_a_missing_escalation_part_falls_back_to_tensorflow(
    cascade: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / cascade.name
    shutil.copytree(cascade, copy)
    (copy / ESCALATION_FILE).unlink()
    monkeypatch.setenv(RUNTIME_ENV, "auto")
    assert InferenceEngine.load(copy).runtime == "tensorflow"
    monkeypatch.setenv(RUNTIME_ENV, "litert")
    with pytest.raises(ValueError, match=ESCALATION_FILE):
        InferenceEngine.load(copy)


def test_ml_cascade_builds_calibrates_and_promotes_a_cascade_of_an_ensemble(
    trained: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    ensemble = twin_ensemble(trained, tmp_path)
    out = tmp_path / "models"
    assert run_cli("cascade", "--ensemble", str(ensemble), "--data", str(trained / "data"),
                   "--out", str(out), "--promote") == 0  # fmt: skip
    folder = ModelRegistry(out).active_path()
    metadata = json.loads((folder / METADATA_FILE).read_text())
    assert folder.name.startswith("cascade-") and metadata["architecture"] == "cascade"
    summary = metadata["cascade"]
    assert summary["ensemble"] == ensemble.name and summary["first_member"] in (0, 1)
    assert 0.0 <= summary["escalated_share"]["validation"] <= 1.0
    flops = summary["flops"]
    assert flops["escalation"] == 3 * flops["first"]  # twins, each also on the mirror image
    assert flops["first"] <= metadata["flops_per_image"] <= flops["first"] + flops["escalation"]
    assert "decision" in metadata and "evaluation" in metadata
    assert (
        metadata["preprocessing"]
        == json.loads((ensemble / METADATA_FILE).read_text())["preprocessing"]
    )
    engine = InferenceEngine.load(folder)
    assert engine.predict([jpeg_bytes(70)])[0].model_version == folder.name


def test_only_an_ensemble_can_be_cascaded(trained: Path, tmp_path: Path) -> None:  # noqa: F811
    member = ModelRegistry(trained / "models").active_path()
    with pytest.raises(ValueError, match="not an ensemble"):
        from ml.cascade import make_cascade

        make_cascade(member, [trained / "data"], tmp_path)
