"""`python -m ml evaluate`: a model's figures on a data set, or on its own validation split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.data import load_dataset
from ml.evaluate import compute_metrics, format_report, write_reports
from ml.inference import InferenceEngine


def evaluate_model(
    model_dir: Path, data_dir: Path, split: str = "val", out_dir: Path | None = None
) -> dict[str, object]:
    """Evaluate; with split "val", only on the held-out groups recorded in the metadata."""
    engine = InferenceEngine.load(model_dir)
    dataset = load_dataset(data_dir, engine.config, Path("artifacts/cache"))
    index = np.arange(len(dataset.labels))
    if split == "val":
        index = _validation_index(engine.metadata, dataset)
    probabilities = engine.predict_arrays(dataset.images[index])
    metrics = compute_metrics(dataset.labels[index], probabilities, engine.class_names)
    metrics.update({"model_version": engine.version, "data": str(data_dir), "split": split})
    print(format_report(metrics))
    for path in write_reports(metrics, out_dir or Path(model_dir), prefix=f"evaluate_{split}_"):
        print(f"wrote {path}")
    return metrics


def _validation_index(metadata: dict[str, object], dataset: object) -> np.ndarray:
    training = metadata.get("training_data") or {}
    split = training.get("split") if isinstance(training, dict) else None
    if not split or training.get("fingerprint") != getattr(dataset, "fingerprint", None):
        raise ValueError(
            "this data set is not the one the model was trained on (or the model records "
            "no split): use --split all"
        )
    _, validation = dataset.split(float(split["val_fraction"]), int(split["seed"]))  # type: ignore[attr-defined]
    return validation
