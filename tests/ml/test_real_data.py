"""Training on the shared data set: only where the folder exists, and marked slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "datasets"
    / "brain-tumor-mri"
    / "Training"
)

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not DATA.is_dir(), reason=f"the shared data set is not at {DATA}")
def test_one_epoch_on_the_real_training_folder_writes_honest_figures(tmp_path: Path) -> None:
    from ml.train import TrainingOptions, train

    options = TrainingOptions(
        architecture="tiny", epochs=1, cache_dir=tmp_path / "cache", guard=False
    )
    folder = train(DATA, tmp_path / "models", options)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["training_data"]["images"] == 2870
    validation = metadata["validation"]
    # A grouped 20% split of 2,870 images, every class present.
    assert 500 < validation["n"] < 650
    assert set(validation["recall"]) == {"glioma", "meningioma", "no_tumor", "pituitary"}
