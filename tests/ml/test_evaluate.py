from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.evaluate import (
    compute_metrics,
    expected_calibration_error,
    format_table,
    write_report,
)

NAMES = ("glioma", "meningioma", "no_tumor", "pituitary")


def _one_hot_predictions(predicted: list[int], confidence: float = 0.7) -> np.ndarray:
    rest = (1 - confidence) / 3
    probabilities = np.full((len(predicted), 4), rest)
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_metrics_match_a_hand_computed_confusion_matrix() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3, 3])
    predicted = [0, 0, 2, 1, 0, 2, 2, 3, 3, 1]
    # Confusion matrix by hand (rows true, columns predicted):
    # glioma     2 0 1 0 | meningioma 1 1 0 0 | no_tumor 0 0 2 0 | pituitary 0 1 0 2
    metrics = compute_metrics(labels, _one_hot_predictions(predicted), NAMES)
    assert metrics["confusion_matrix"] == [[2, 0, 1, 0], [1, 1, 0, 0], [0, 0, 2, 0], [0, 1, 0, 2]]
    assert metrics["accuracy"] == pytest.approx(0.7)
    glioma = metrics["per_class"]["glioma"]
    assert glioma["precision"] == pytest.approx(2 / 3)
    assert glioma["recall"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["no_tumor"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["no_tumor"]["recall"] == pytest.approx(1.0)
    assert metrics["per_class"]["meningioma"]["f1"] == pytest.approx(0.5)
    f1s = [2 / 3, 0.5, 0.8, 0.8]
    assert metrics["macro_f1"] == pytest.approx(sum(f1s) / 4)
    # Every prediction has confidence 0.7 and 70% are right: perfectly calibrated.
    assert metrics["ece"] == pytest.approx(0.0, abs=1e-9)


def test_ece_is_the_gap_between_confidence_and_accuracy() -> None:
    labels = np.array([0, 0, 0, 0])
    probabilities = _one_hot_predictions([0, 0, 1, 1], confidence=0.9)
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.4)


def test_report_writes_json_and_png_plots(tmp_path: Path) -> None:
    metrics = compute_metrics(np.array([0, 1, 2, 3]), _one_hot_predictions([0, 1, 2, 0]), NAMES)
    write_report(metrics, tmp_path)
    assert (tmp_path / "metrics.json").is_file()
    for name in ("confusion_matrix.png", "reliability.png"):
        assert Image.open(tmp_path / name).format == "PNG"
    assert "macro-F1" in format_table(metrics)
