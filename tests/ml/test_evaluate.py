from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.evaluate import compute_metrics, expected_calibration_error, write_reports

NAMES = ("a", "b", "c")


def one_hot_like(predicted: list[int], confidence: float = 0.8) -> np.ndarray:
    rest = (1 - confidence) / 2
    probabilities = np.full((len(predicted), 3), rest)
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_figures_match_a_hand_computed_confusion_matrix() -> None:
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 2, 0, 2]
    metrics = compute_metrics(y_true, one_hot_like(y_pred), NAMES)
    # rows true, columns predicted: a: 2 a, 1 b; b: 1 b, 1 c; c: 1 a, 4 c
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 4]]
    assert metrics["accuracy"] == pytest.approx(7 / 10)
    assert metrics["per_class"]["a"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["a"]["recall"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["b"]["precision"] == pytest.approx(1 / 2)
    assert metrics["per_class"]["c"]["recall"] == pytest.approx(4 / 5)
    assert metrics["per_class"]["c"]["f1"] == pytest.approx(0.8)
    expected_macro = np.mean([2 / 3, 0.5, 0.8])
    assert metrics["macro_f1"] == pytest.approx(expected_macro)


def test_ece_is_the_gap_between_confidence_and_accuracy() -> None:
    y_true = np.array([0, 0, 0, 0, 0])
    probabilities = one_hot_like([0, 0, 0, 1, 1], confidence=0.8)  # 60% right at 0.8
    ece, table = expected_calibration_error(y_true, probabilities)
    assert ece == pytest.approx(0.2)
    assert sum(row["count"] for row in table) == 5


def test_a_perfectly_calibrated_certain_model_has_zero_ece() -> None:
    ece, _ = expected_calibration_error(np.array([0, 1]), np.eye(3)[[0, 1]])
    assert ece == pytest.approx(0.0)


def test_writes_metrics_and_two_plots(tmp_path: Path) -> None:
    metrics = compute_metrics([0, 1, 2], one_hot_like([0, 1, 1]), NAMES)
    paths = write_reports(metrics, tmp_path)
    assert json.loads(paths[0].read_text())["confusion_matrix"] == metrics["confusion_matrix"]
    for plot in paths[1:]:
        assert Image.open(plot).format == "PNG"
