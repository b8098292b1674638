"""Honest figures for a model: accuracy, per-class precision/recall/F1, confusion, calibration."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ml.labels import CLASS_NAMES

CALIBRATION_BINS = 15


def confusion_matrix(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, n_classes: int
) -> np.ndarray:
    """Return counts[true, predicted] as int64 (n_classes, n_classes)."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def expected_calibration_error(
    y_true: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[float, list[dict[str, float]]]:
    """Return the ECE of the top-class confidence and the per-bin table behind it."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    table, ece = [], 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if not inside.any():
            continue
        accuracy, mean_confidence = float(correct[inside].mean()), float(confidence[inside].mean())
        ece += inside.mean() * abs(accuracy - mean_confidence)
        table.append({"low": float(low), "high": float(high), "count": int(inside.sum()),
                      "accuracy": accuracy, "confidence": mean_confidence})  # fmt: skip
    return float(ece), table


def tumour_miss_rates(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    flagged: np.ndarray | None = None,
    class_names: Sequence[str] = CLASS_NAMES,
) -> dict[str, Any]:
    """The share of tumour images called "no tumour": overall and per tumour class.

    With `flagged` (the results marked "needs review"), `unflagged` counts only the
    misses that were not flagged: the ones a reader would be told to trust.
    """
    no_tumor = list(class_names).index("no_tumor")
    tumour = y_true != no_tumor
    missed = tumour & (y_pred == no_tumor)
    unflagged = missed & ~flagged if flagged is not None else missed
    per_class = {
        name: _ratio(missed[y_true == index].sum(), (y_true == index).sum())
        for index, name in enumerate(class_names)
        if index != no_tumor
    }
    return {
        "overall": _ratio(missed.sum(), tumour.sum()),
        "per_class": per_class,
        "missed": int(missed.sum()),
        "tumours": int(tumour.sum()),
        "unflagged": _ratio(unflagged.sum(), tumour.sum()),
    }


def compute_metrics(
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str] = CLASS_NAMES,
    flagged: np.ndarray | None = None,
) -> dict[str, Any]:
    """Figures for `probabilities` against `y_true`; `flagged`: results marked "needs review"."""
    truth = np.asarray(y_true)
    y_pred = probabilities.argmax(axis=1)
    matrix = confusion_matrix(truth, y_pred, len(class_names))
    per_class = {}
    for index, name in enumerate(class_names):
        true_positive = matrix[index, index]
        precision = _ratio(true_positive, matrix[:, index].sum())
        recall = _ratio(true_positive, matrix[index, :].sum())
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1,
                           "support": int(matrix[index, :].sum())}  # fmt: skip
    ece, calibration = expected_calibration_error(truth, probabilities)
    return {
        "n": len(truth),
        "accuracy": float((y_pred == truth).mean()) if len(truth) else 0.0,
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
        "tumour_miss": (
            tumour_miss_rates(truth, y_pred, flagged, class_names)
            if "no_tumor" in class_names
            else None
        ),
        "needs_review": _ratio(flagged.sum(), len(y_true)) if flagged is not None else None,
        "ece": ece,
        "calibration": calibration,
    }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def format_report(metrics: dict[str, Any]) -> str:
    lines = [f"images {metrics['n']}  accuracy {metrics['accuracy']:.4f}  "
             f"macro-F1 {metrics['macro_f1']:.4f}  ECE {metrics['ece']:.4f}"]  # fmt: skip
    if miss := metrics.get("tumour_miss"):
        lines.append(_miss_line(miss, metrics.get("needs_review")))
    lines.append(f"{'class':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for name, row in metrics["per_class"].items():
        lines.append(f"{name:<12}{row['precision']:>10.3f}{row['recall']:>10.3f}"
                     f"{row['f1']:>10.3f}{row['support']:>9}")  # fmt: skip
    lines.append("confusion matrix (rows: true, columns: predicted)")
    lines.append(" " * 12 + "".join(f"{name[:10]:>11}" for name in metrics["class_names"]))
    for name, row in zip(metrics["class_names"], metrics["confusion_matrix"], strict=True):
        lines.append(f"{name:<12}" + "".join(f"{count:>11}" for count in row))
    return "\n".join(lines)


def _miss_line(miss: dict[str, Any], needs_review: float | None) -> str:
    per_class = ", ".join(f"{name} {rate:.3f}" for name, rate in miss["per_class"].items())
    line = (f"tumour-miss rate {miss['overall']:.4f} ({miss['missed']} of {miss['tumours']} "
            f"tumours called no_tumor; {per_class})")  # fmt: skip
    if needs_review is not None:
        line += f"  unflagged {miss['unflagged']:.4f}, needs review {needs_review:.3f}"
    return line


def write_reports(metrics: dict[str, Any], out_dir: Path, prefix: str = "") -> list[Path]:
    """Write metrics.json and the two plots into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{prefix}metrics.json", out_dir / f"{prefix}confusion_matrix.png",
             out_dir / f"{prefix}reliability.png"]  # fmt: skip
    paths[0].write_text(json.dumps(metrics, indent=2))
    plot_confusion_matrix(metrics).save(paths[1])
    plot_reliability(metrics).save(paths[2])
    return paths


def plot_confusion_matrix(metrics: dict[str, Any], cell: int = 90) -> Image.Image:
    names, matrix = metrics["class_names"], np.array(metrics["confusion_matrix"])
    margin = 110
    image = Image.new("RGB", (margin + cell * len(names), margin + cell * len(names)), "white")
    draw = ImageDraw.Draw(image)
    rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
    for (true, predicted), count in np.ndenumerate(matrix):
        share = count / rows[true, 0]
        shade = int(255 * (1 - share))
        box = (margin + predicted * cell, margin + true * cell)
        draw.rectangle([box, (box[0] + cell - 2, box[1] + cell - 2)], fill=(shade, shade, 255))
        draw.text((box[0] + 8, box[1] + cell // 2 - 6), f"{count} ({share:.0%})",
                  fill="black" if share < 0.6 else "white")  # fmt: skip
    for index, name in enumerate(names):
        draw.text((margin + index * cell + 6, margin - 20), name[:12], fill="black")
        draw.text((6, margin + index * cell + cell // 2 - 6), name[:14], fill="black")
    draw.text((margin, 10), "predicted ->   (rows: true class)", fill="black")
    return image


def plot_reliability(metrics: dict[str, Any], size: int = 400) -> Image.Image:
    margin = 40
    image = Image.new("RGB", (size + 2 * margin, size + 2 * margin), "white")
    draw = ImageDraw.Draw(image)
    origin = (margin, margin + size)
    draw.line([origin, (margin + size, margin)], fill=(160, 160, 160), width=1)
    for row in metrics["calibration"]:
        left = margin + row["low"] * size
        right = margin + row["high"] * size - 2
        draw.rectangle([(left, origin[1] - row["accuracy"] * size), (right, origin[1])],
                       fill=(70, 110, 200))  # fmt: skip
    draw.rectangle([(margin, margin), (margin + size, margin + size)], outline="black")
    draw.text((margin, 10), f"reliability: accuracy per confidence bin, ECE {metrics['ece']:.3f}",
              fill="black")  # fmt: skip
    draw.text((margin, margin + size + 12), "confidence 0 -> 1", fill="black")
    return image
