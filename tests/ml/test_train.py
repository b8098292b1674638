from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.cli import main
from ml.registry import ModelRegistry

ARTEFACT_FILES = ("model.keras", "metadata.json", "history.json", "metrics.json",
                  "confusion_matrix.png", "reliability.png")  # fmt: skip


@pytest.mark.slow
def test_one_short_epoch_writes_a_complete_artefact(
    class_folders: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models"
    assert main(["train", "--data", str(class_folders), "--arch", "tiny", "--epochs", "1",
                 "--out", str(out), "--val-fraction", "0.25", "--no-cache"]) == 0  # fmt: skip
    (folder,) = out.iterdir()
    assert folder.name.startswith("tiny-")
    for name in ARTEFACT_FILES:
        assert (folder / name).is_file(), name
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["version"] == folder.name
    assert metadata["class_names"] == ["glioma", "meningioma", "no_tumor", "pituitary"]
    assert metadata["preprocessing"]["input_size"] == [32, 32]
    assert len(metadata["training_data"]["fingerprint"]) == 64
    assert metadata["split"]["seed"] == 0
    assert "accuracy" in metadata["validation_metrics"]
    assert "epoch   1" in capsys.readouterr().out

    assert main(["evaluate", "--model", str(folder), "--data", str(class_folders)]) == 0
    evaluated = json.loads((folder / "metrics.json").read_text())
    assert evaluated["images"] == metadata["split"]["validation_images"]
    assert evaluated["accuracy"] == pytest.approx(metadata["validation_metrics"]["accuracy"])

    ModelRegistry(out).promote(folder.name)
    assert ModelRegistry(out).active_path() == folder


REAL_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "brain-tumor-mri"


@pytest.mark.slow
def test_training_on_the_real_folder_splits_by_groups(tmp_path: Path) -> None:
    training = REAL_DATA / "Training"
    if not training.is_dir():
        pytest.skip(f"data set not present at {training}")
    from ml.data import scan_folder, split_dataset
    from ml.train import TrainingOptions, train

    dataset = scan_folder(training)
    split = split_dataset(dataset, 0.2, seed=0, cache_dir=None)
    assert not set(split.groups[split.train]) & set(split.groups[split.validation])
    options = TrainingOptions(architecture="tiny", epochs=1, cache_dir=tmp_path / "cache")
    folder = train(training, tmp_path / "models", options)
    assert json.loads((folder / "metadata.json").read_text())["training_data"]["images"] == 2870
