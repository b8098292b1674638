"""Evaluation: accuracy, per-class precision/recall/F1, confusion matrix, calibration, plots.

Metric functions are numpy-only; `evaluate_model` loads an engine (TensorFlow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

ECE_BINS = 15


def compute_metrics(
    labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...] | list[str]
) -> dict[str, Any]:
    """Return accuracy, per-class precision/recall/F1, macro-F1, confusion matrix and ECE.

    `labels` (N,) int class indices; `probabilities` (N, classes) float.
    The confusion matrix's rows are true classes, columns predicted ones.
    """
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, len(class_names))
    per_class = _per_class(matrix, class_names)
    return {
        "images": len(labels),
        "accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
        "macro_f1": float(np.mean([entry["f1"] for entry in per_class.values()])),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
        "ece": expected_calibration_error(labels, probabilities),
        "reliability": reliability_bins(labels, probabilities),
    }


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(int), predictions.astype(int)), 1)
    return matrix


def _per_class(matrix: np.ndarray, class_names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for index, name in enumerate(class_names):
        true_positive = float(matrix[index, index])
        predicted, actual = float(matrix[:, index].sum()), float(matrix[index].sum())
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        results[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(actual)}
    return results


def reliability_bins(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """Return per confidence bin: count, mean confidence and accuracy of the top class."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bins are (low, high]; a confidence of exactly 0 joins the first bin.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows = []
    for index in range(bins):
        members = which == index
        count = int(members.sum())
        rows.append({
            "low": float(edges[index]),
            "high": float(edges[index + 1]),
            "count": count,
            "confidence": float(confidence[members].mean()) if count else 0.0,
            "accuracy": float(correct[members].mean()) if count else 0.0,
        })  # fmt: skip
    return rows


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Return ECE: the count-weighted mean |accuracy - confidence| over confidence bins."""
    rows = reliability_bins(labels, probabilities, bins)
    total = max(sum(row["count"] for row in rows), 1)
    gaps = sum(row["count"] * abs(row["accuracy"] - row["confidence"]) for row in rows)
    return float(gaps / total)


def format_table(metrics: dict[str, Any]) -> str:
    """Return a readable text report of `compute_metrics` output."""
    names = metrics["class_names"]
    lines = [
        f"images {metrics['images']}  accuracy {metrics['accuracy']:.4f}  "
        f"macro-F1 {metrics['macro_f1']:.4f}  ECE {metrics['ece']:.4f}",
        f"{'class':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}",
    ]
    for name in names:
        row = metrics["per_class"][name]
        lines.append(
            f"{name:<12}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}"
            f"{row['support']:>9d}"
        )
    lines.append("confusion matrix (rows true, columns predicted):")
    lines.append(" " * 12 + "".join(f"{name[:10]:>11}" for name in names))
    for name, row in zip(names, metrics["confusion_matrix"], strict=True):
        lines.append(f"{name:<12}" + "".join(f"{value:>11d}" for value in row))
    return "\n".join(lines)


def plot_confusion_matrix(metrics: dict[str, Any], path: Path, cell: int = 90) -> None:
    """Write a PNG of the confusion matrix, shaded by row-normalised counts."""
    names, matrix = metrics["class_names"], np.asarray(metrics["confusion_matrix"])
    margin = 110
    size = margin + cell * len(names)
    image = Image.new("RGB", (size + 10, size + 10), "white")
    draw = ImageDraw.Draw(image)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for row, col in np.ndindex(matrix.shape):
        shade = int(255 - 200 * rows[row, col])
        box = (margin + col * cell, margin + row * cell,
               margin + (col + 1) * cell, margin + (row + 1) * cell)  # fmt: skip
        draw.rectangle(box, fill=(shade, shade, 255), outline="gray")
        colour = "white" if rows[row, col] > 0.6 else "black"
        draw.text((box[0] + cell // 3, box[1] + cell // 2 - 6), str(matrix[row, col]), fill=colour)
    for index, name in enumerate(names):
        draw.text((5, margin + index * cell + cell // 2 - 6), name, fill="black")
        draw.text((margin + index * cell + 5, margin - 20), name, fill="black")
    draw.text((5, 5), "rows: true class, columns: predicted", fill="black")
    image.save(path)


def plot_reliability(metrics: dict[str, Any], path: Path, size: int = 400) -> None:
    """Write a PNG reliability diagram: accuracy per confidence bin against the diagonal."""
    margin = 40
    image = Image.new("RGB", (size + 2 * margin, size + 2 * margin), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((margin, margin, margin + size, margin + size), outline="black")
    draw.line((margin, margin + size, margin + size, margin), fill="gray")
    for row in metrics["reliability"]:
        if not row["count"]:
            continue
        left = margin + row["low"] * size
        right = margin + row["high"] * size
        draw.rectangle((left, margin + size * (1 - row["accuracy"]), right, margin + size),
                       fill=(90, 130, 230), outline="black")  # fmt: skip
    draw.text((margin, 10), f"reliability (ECE {metrics['ece']:.3f}): accuracy vs confidence",
              fill="black")  # fmt: skip
    image.save(path)


def write_report(metrics: dict[str, Any], folder: Path, prefix: str = "") -> None:
    from ml.artefact import write_json

    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / f"{prefix}metrics.json", metrics)
    plot_confusion_matrix(metrics, folder / f"{prefix}confusion_matrix.png")
    plot_reliability(metrics, folder / f"{prefix}reliability.png")


def evaluate_folder(
    model_dir: Path,
    data_dir: Path,
    split: str = "val",
    out_dir: Path | None = None,
    test_time_augmentation: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """Evaluate the artefact on `data_dir`; write metrics JSON and plots; return both.

    `split="val"` keeps only the validation groups the model was trained without,
    rebuilt from the seed and fraction in its metadata and checked against the
    recorded hash of the validation file list.
    """
    from ml.data import DEFAULT_CACHE_DIR, load_arrays, scan_folder
    from ml.inference import InferenceEngine, configure_tensorflow

    configure_tensorflow()
    engine = InferenceEngine.load(model_dir, test_time_augmentation=test_time_augmentation)
    dataset = scan_folder(data_dir)
    indices = _indices_for(split, dataset, engine.metadata)
    arrays = load_arrays(dataset, engine.config, DEFAULT_CACHE_DIR)[indices]
    labels = _to_model_order(dataset.labels[indices], engine.class_names)
    metrics = compute_metrics(labels, engine.predict_arrays(arrays), engine.class_names)
    tta = str(engine.metadata.get("test_time_augmentation", "none"))
    metrics.update(model_version=engine.version, data=str(data_dir), split=split,
                   test_time_augmentation=tta)  # fmt: skip
    folder = out_dir or Path(model_dir)
    prefix = "" if split == "val" else f"{Path(data_dir).name}-{split}-"
    if test_time_augmentation is not None:
        prefix += f"tta-{test_time_augmentation}-"
    write_report(metrics, folder, prefix)
    return metrics, folder / f"{prefix}metrics.json"


def _indices_for(split: str, dataset: Any, metadata: dict[str, Any]) -> np.ndarray:
    import hashlib

    from ml.data import DEFAULT_CACHE_DIR, split_dataset

    if split == "all":
        return np.arange(len(dataset))
    recorded = metadata.get("split")
    if not recorded:
        raise ValueError("the model's metadata records no split; use --split all")
    rebuilt = split_dataset(dataset, recorded["val_fraction"], recorded["seed"], DEFAULT_CACHE_DIR)
    paths = sorted(dataset.paths[i] for i in rebuilt.validation)
    digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()
    if digest != recorded.get("validation_paths_sha256"):
        raise ValueError("this folder does not rebuild the model's validation split "
                         "(different data?); use --split all")  # fmt: skip
    return rebuilt.validation


def _to_model_order(labels: np.ndarray, class_names: tuple[str, ...]) -> np.ndarray:
    # Dataset labels index CLASS_NAMES; a model's metadata may order classes differently.
    from ml.labels import CLASS_NAMES

    return np.asarray([class_names.index(CLASS_NAMES[int(i)]) for i in labels], dtype=np.int64)
