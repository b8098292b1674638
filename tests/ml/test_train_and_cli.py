"""The command line end to end on a tiny synthetic data set: train, evaluate, predict, registry."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import pytest

from ml.cli import main
from ml.registry import METADATA_FILE, MODEL_FILE, ModelRegistry
from tests.images import jpeg_bytes


def run_cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    return int(exited.value.code or 0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short epoch of the tiny architecture, promoted in a fresh registry."""
    from tests.ml.conftest import write_class_folders

    root = tmp_path_factory.mktemp("cli")
    data = write_class_folders(root / "data", per_class=8)
    assert run_cli("train", "--data", str(data), "--arch", "tiny", "--epochs", "1",
                   "--out", str(root / "models"), "--no-guard", "--promote") == 0  # fmt: skip
    return root


def test_train_writes_a_complete_versioned_artefact(trained: Path) -> None:
    registry = ModelRegistry(trained / "models")
    folder = registry.active_path()
    assert folder.name.startswith("tiny-")
    for name in (MODEL_FILE, METADATA_FILE, "history.json", "validation_metrics.json",
                 "validation_confusion_matrix.png", "validation_reliability.png"):  # fmt: skip
        assert (folder / name).is_file(), name
    metadata = json.loads((folder / METADATA_FILE).read_text())
    assert metadata["class_names"] == ["glioma", "meningioma", "no_tumor", "pituitary"]
    assert metadata["preprocessing"]["input_size"] == [32, 32]
    assert len(metadata["training_data"]["sources"][0]["fingerprint"]) == 64
    assert set(metadata["validation"]) >= {"accuracy", "macro_f1", "ece", "recall"}
    assert {"tensorflow", "keras"} <= set(metadata["libraries"])
    assert len(json.loads((folder / "history.json").read_text())["loss"]) == 1
    assert getattr(keras.saving.load_model(folder / MODEL_FILE), "optimizer", None) is None


def test_evaluate_on_the_models_own_validation_split(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = ModelRegistry(trained / "models").active_path()
    assert run_cli("evaluate", "--model", str(folder), "--data", str(trained / "data")) == 0
    assert "macro-F1" in capsys.readouterr().out
    metrics = json.loads((folder / "evaluate_val_data_metrics.json").read_text())
    stored = json.loads((folder / "validation_metrics.json").read_text())
    assert metrics["confusion_matrix"] == stored["confusion_matrix"]


def test_predict_prints_one_json_line_per_image_and_fails_on_a_non_image(
    trained: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODEL_REGISTRY_DIR", str(trained / "models"))
    good, bad = tmp_path / "scan.jpg", tmp_path / "notes.txt"
    good.write_bytes(jpeg_bytes(300))
    bad.write_text("not a scan")
    assert run_cli("predict", str(good), str(bad)) == 1
    captured = capsys.readouterr()
    line = json.loads(captured.out.strip())
    assert line["path"] == str(good) and set(line) == {
        "path",
        "outcome",
        "label",
        "probabilities",
        "needs_review",
        "model_version",
    }
    assert line["outcome"] == "classified"
    assert line["model_version"] == ModelRegistry(trained / "models").active_version()
    assert f"error: {bad}: not an image" in captured.err


def test_registry_commands_promote_and_roll_back(
    tiny_registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    root = tmp_path / "models"
    shutil.copytree(tiny_registry, root)
    assert run_cli("registry", "--root", str(root), "promote", "tiny-a") == 0
    assert run_cli("registry", "--root", str(root), "list") == 0
    assert "* tiny-a" in capsys.readouterr().out
    assert run_cli("registry", "--root", str(root), "rollback") == 0
    assert ModelRegistry(root).active_version() == "tiny-b"
    assert run_cli("registry", "--root", str(root), "promote", "missing") == 2
    assert "is not in" in capsys.readouterr().err


def test_another_training_seed_keeps_the_validation_split(trained: Path, tmp_path: Path) -> None:
    """Models trained with different seeds are compared (and ensembled) on one split."""
    first = ModelRegistry(trained / "models").active_path()
    assert run_cli("train", "--data", str(trained / "data"), "--arch", "tiny", "--epochs", "1",
                   "--seed", "2", "--no-guard", "--out", str(tmp_path)) == 0  # fmt: skip
    (second,) = tmp_path.iterdir()
    metadatas = [json.loads((folder / METADATA_FILE).read_text()) for folder in (first, second)]
    assert metadatas[0]["training_data"] == metadatas[1]["training_data"]
    assert [m["training"]["seed"] for m in metadatas] == [1337, 2]
    assert metadatas[0]["validation"]["n"] == metadatas[1]["validation"]["n"]


def test_train_at_another_input_size_serves_at_that_size(trained: Path, tmp_path: Path) -> None:
    from ml.inference import InferenceEngine

    assert run_cli("train", "--data", str(trained / "data"), "--arch", "tiny", "--epochs", "1",
                   "--input-size", "40", "--no-guard", "--out", str(tmp_path)) == 0  # fmt: skip
    (folder,) = tmp_path.iterdir()
    assert json.loads((folder / METADATA_FILE).read_text())["input_size"] == [40, 40]
    engine = InferenceEngine.load(folder)
    assert engine.model.input_shape[1:3] == (40, 40)
    assert engine.explain(jpeg_bytes(90))[1].heatmap.shape == (40, 40)
