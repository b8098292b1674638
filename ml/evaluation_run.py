"""`python -m ml evaluate`: a model's figures on each data folder, with the shortcut's probes.

For every folder: on the model's own held-out validation images if it was
trained on that folder, else on all of it (a source the model never saw: the
cross-source figure). Beside accuracy and macro-F1 come the tumour-miss rates,
with and without the model's "needs review" flag, and the same figures on each
sequence probe (`ml.probes`), which a model that reads the sequence fails.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.data import Dataset, load_dataset
from ml.evaluate import compute_metrics, format_report, write_reports
from ml.inference import InferenceEngine
from ml.probes import PROBES, apply_probe
from ml.sources import held_out_part, source_name

CACHE = Path("artifacts/cache")


def evaluate_model(
    model_dir: Path,
    data_dirs: Path | Sequence[Path],
    split: str = "val",
    out_dir: Path | None = None,
    probes: Sequence[str] = PROBES,
) -> dict[str, Any]:
    """Evaluate on each folder; return {source name: {"scope", "metrics", "probes"}}."""
    engine = InferenceEngine.load(model_dir)
    folders = [Path(data_dirs)] if isinstance(data_dirs, str | Path) else list(data_dirs)
    out = Path(out_dir or model_dir)
    report: dict[str, Any] = {"model_version": engine.version, "split": split, "sources": {}}
    for folder in folders:
        name = source_name(folder)
        figures = evaluate_source(engine, folder, split, probes)
        report["sources"][name] = figures
        print(f"\n== {name} ({figures['scope']}) ==")
        print(format_report(figures["metrics"]))
        for probe, metrics in figures["probes"].items():
            print(f"-- probe {probe}: {probe_line(metrics)}")
        prefix = f"evaluate_{split}_{name}_"
        for path in write_reports(figures["metrics"], out, prefix=prefix):
            print(f"wrote {path}")
    summary = out / f"evaluate_{split}_summary.json"
    summary.write_text(json.dumps(summarise(report), indent=2))
    print(f"wrote {summary}")
    return report


def evaluate_source(
    engine: InferenceEngine, folder: Path, split: str, probes: Sequence[str]
) -> dict[str, Any]:
    dataset = load_dataset(folder, engine.config, CACHE)
    index, scope = _images_to_evaluate(dataset, engine.metadata, split)
    images, labels = dataset.images[index], dataset.labels[index]
    probe_figures = {
        probe: _metrics(engine, apply_probe(probe, images, labels, seed=0), labels)
        for probe in probes
    }
    return {"scope": scope, "metrics": _metrics(engine, images, labels), "probes": probe_figures}


def _images_to_evaluate(
    dataset: Dataset, metadata: dict[str, Any], split: str
) -> tuple[np.ndarray, str]:
    """The indices to evaluate and what they are: the held-out part, or the whole folder."""
    everything = np.arange(len(dataset.labels))
    if split != "val":
        return everything, "all images"
    held_out = held_out_part(dataset, metadata)
    if held_out is None:
        return everything, "all images: a source the model was not trained on (cross-source)"
    return held_out, "held-out validation part"


def _metrics(engine: InferenceEngine, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    probabilities = engine.predict_arrays(images)
    flagged = engine.decision.needs_review(probabilities)
    return compute_metrics(labels, probabilities, engine.class_names, flagged=flagged)


def probe_line(metrics: dict[str, Any]) -> str:
    miss = metrics["tumour_miss"]
    return (
        f"accuracy {metrics['accuracy']:.3f}  tumour-miss {miss['overall']:.3f} "
        f"(glioma {miss['per_class']['glioma']:.3f}, meningioma "
        f"{miss['per_class']['meningioma']:.3f}, pituitary {miss['per_class']['pituitary']:.3f})"
        f"  unflagged {miss['unflagged']:.3f}"
    )


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures per source and probe, without the per-bin tables."""

    def headline(metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "n": metrics["n"],
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "ece": metrics["ece"],
            "tumour_miss": metrics["tumour_miss"],
            "needs_review": metrics["needs_review"],
        }

    return {
        "model_version": report["model_version"],
        "split": report["split"],
        "sources": {
            name: {
                "scope": figures["scope"],
                **headline(figures["metrics"]),
                "probes": {p: headline(m) for p, m in figures["probes"].items()},
            }
            for name, figures in report["sources"].items()
        },
    }
