from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ml.ensemble import build_ensemble, make_ensemble
from ml.inference import InferenceEngine
from ml.registry import ModelRegistry
from tests.images import jpeg_bytes, png_bytes
from tests.ml.test_train_and_cli import trained  # noqa: F401  (module-scoped fixture)


def twin_ensemble(root: Path, tmp_path: Path) -> Path:
    """An ensemble artefact of the model in the `trained` fixture's `root` and a copy of it."""
    member = ModelRegistry(root / "models").active_path()
    twin = tmp_path / "twin"
    shutil.copytree(member, twin)
    return make_ensemble([member, twin], root / "data", tmp_path / "models")


def test_an_ensemble_averages_its_members_and_their_mirror_images(
    trained: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    member = ModelRegistry(trained / "models").active_path()
    folder = twin_ensemble(trained, tmp_path)

    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["architecture"] == "ensemble" and metadata["test_time_flip"] is True
    assert metadata["members"] == [member.name, member.name]
    histories = json.loads((folder / "history.json").read_text())
    assert list(histories) == [member.name] and len(histories[member.name]["loss"]) == 1
    ensemble, single = InferenceEngine.load(folder), InferenceEngine.load(member)
    image = png_bytes(70)
    from ml.preprocessing import preprocess_bytes

    array = preprocess_bytes(image, single.config)[np.newaxis]
    # Raw outputs: each artefact calibrates its own (a member's temperature is not the ensemble's).
    mirrored = array[:, :, ::-1].copy()
    expected = (
        single.predict_arrays(array, calibrated=False)
        + single.predict_arrays(mirrored, calibrated=False)
    ) / 2
    assert ensemble.predict_arrays(array, calibrated=False) == pytest.approx(expected, abs=1e-5)
    prediction, explanation = ensemble.explain(image)
    assert prediction.model_version == folder.name
    assert explanation.heatmap.shape == (32, 32)


def test_members_with_different_preprocessing_are_refused(
    trained: Path,  # noqa: F811
    tiny_registry: Path,
    tmp_path: Path,
) -> None:
    member = ModelRegistry(trained / "models").active_path()
    other = tmp_path / "other"
    shutil.copytree(member, other)
    metadata = json.loads((other / "metadata.json").read_text())
    metadata["preprocessing"]["head_crop"] = False
    (other / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="must share preprocessing"):
        make_ensemble([member, other], trained / "data", tmp_path / "models")


def test_an_ensembles_heat_map_averages_its_members_maps_for_the_served_label(
    trained: Path,  # noqa: F811
    tiny_registry: Path,
) -> None:
    first = InferenceEngine.load(ModelRegistry(trained / "models").active_path())
    second = InferenceEngine.load(tiny_registry / "tiny-a")  # other weights, same input
    model = build_ensemble([first.model, second.model], test_time_flip=False)
    ensemble = InferenceEngine(model, first.metadata)
    image = jpeg_bytes(120)

    prediction, explanation = ensemble.explain(image)

    maps = [member.explain(image, label=prediction.label)[1].heatmap for member in (first, second)]
    assert explanation.heatmap == pytest.approx((maps[0] + maps[1]) / 2, abs=1e-4)
