"""Train on two sources, then calibrate: decision rule, guard and figures land in the artefact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml import finalize
from ml.inference import InferenceEngine
from ml.train import TrainingOptions, train
from tests.ml.conftest import write_class_folders


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("sources")
    folders = [
        write_class_folders(root / "hospital-a" / "Training", per_class=14),
        write_class_folders(root / "hospital-b" / "Training", per_class=14, seed_offset=50_000),
    ]
    options = TrainingOptions(architecture="tiny", epochs=1, cache_dir=None, guard=False)
    return train(folders, root / "models", options), folders


def test_training_on_two_sources_records_each_split_and_calibrates_itself(
    two_sources: tuple[Path, list[Path]],
) -> None:
    folder, _ = two_sources
    metadata = json.loads((folder / "metadata.json").read_text())
    sources = metadata["training_data"]["sources"]
    assert [s["name"] for s in sources] == ["hospital-a", "hospital-b"]
    for source in sources:
        counts = source["counts"]
        assert counts["calibration"] > 0 and counts["validation"] > 0
        assert sum(counts.values()) == source["images"] == 56
    assert metadata["training"]["early_stopping_on"] == "calibration"
    assert set(metadata["decision"]) >= {"temperature", "no_tumor_threshold", "review_threshold"}
    assert "guard" not in metadata  # guard=False
    evaluation = metadata["evaluation"]["sources"]
    assert set(evaluation) == {"hospital-a", "hospital-b"}
    assert set(evaluation["hospital-a"]["probes"]) == {"sequence_swap", "inverted", "random_curve"}
    assert "tumour_miss" in evaluation["hospital-b"]


def test_calibrate_fits_a_guard_that_ships_in_the_artefact(
    two_sources: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, folders = two_sources
    monkeypatch.setattr(finalize, "OUTLIER_TRAINING_IMAGES", 120)
    monkeypatch.setattr(finalize, "OUTLIER_TEST_PER_KIND", 2)
    report = finalize.calibrate(folder, folders)
    guard = report["guard"]
    assert set(guard["false_refusals"]) == {"hospital-a", "hospital-b"}
    assert "document" in guard["caught"] and "ct_head_on_validation_heads" in guard["caught"]
    assert 0.0 <= guard["catch_rate"] <= 1.0
    engine = InferenceEngine.load(folder)
    assert engine.guard is not None
    assert engine.guard.settings.threshold == engine.metadata["guard"]["threshold"]
