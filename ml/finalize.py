"""`python -m ml calibrate`: fit a trained model's decision rule and guard, on its calibration part.

Run after training (`train` does it by itself when it kept a calibration part).
Everything here is fitted on the calibration part of each training folder and
measured on the validation part, which nothing was chosen on:

1. the temperature that calibrates the probabilities (ECE before and after);
2. the "no tumour" threshold for a target tumour-miss rate, on the calibration
   images and their sequence probes together, and the review threshold;
3. the guard against what is not a brain MRI slice, with its false-refusal rate
   on the validation parts and its catch rate on outliers it was not trained on;
4. then `evaluate` on every folder, sequence probes included, into the metadata
   (`evaluation`), where the model card and its tests read the figures.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml import outliers
from ml.calibration import (
    TARGET_MISS_RATE,
    DecisionRule,
    apply_temperature,
    fit_no_tumor_threshold,
    fit_review_threshold,
    fit_temperature,
)
from ml.data import load_dataset
from ml.errors import InvalidImageError
from ml.evaluate import compute_metrics, write_reports
from ml.evaluation_run import evaluate_model, summarise
from ml.guard import (
    Guard,
    GuardSettings,
    choose_threshold,
    guard_inputs,
    outlier_inputs,
    save_guard,
    train_guard,
)
from ml.inference import InferenceEngine
from ml.probes import PROBES, apply_probe
from ml.registry import METADATA_FILE
from ml.sources import held_out_part, source_name

CACHE = Path("artifacts/cache")
OUTLIER_TRAINING_IMAGES = 6000
OUTLIER_TEST_PER_KIND = 60


def calibrate(
    model_dir: Path,
    folders: Sequence[Path],
    target_miss_rate: float = TARGET_MISS_RATE,
    with_guard: bool = True,
) -> dict[str, Any]:
    model_dir = Path(model_dir)
    engine = InferenceEngine.load(model_dir)
    parts = _parts(engine, folders)
    rule, figures = fit_decision(engine, parts, target_miss_rate)
    _update_metadata(model_dir, {"decision": {**rule.to_metadata(), "figures": figures}})
    engine.decision = rule
    images, labels = _stack(parts, "validation")
    calibrated = engine.predict_arrays(images)
    metrics = compute_metrics(labels, calibrated, engine.class_names,
                              flagged=rule.needs_review(calibrated))  # fmt: skip
    write_reports(metrics, model_dir, prefix="validation_calibrated_")
    print(f"validation, calibrated: ECE {metrics['ece']:.4f}, tumour-miss "
          f"{metrics['tumour_miss']['overall']:.4f}, unflagged "
          f"{metrics['tumour_miss']['unflagged']:.4f}, needs review "
          f"{metrics['needs_review']:.3f}", flush=True)  # fmt: skip
    report = {"decision": figures, "validation_calibrated": metrics}
    if with_guard:
        report["guard"] = fit_guard(engine, model_dir, parts)
    evaluation = summarise(evaluate_model(model_dir, folders, "val", model_dir))
    _update_metadata(model_dir, {"evaluation": evaluation})
    report["evaluation"] = evaluation
    return report


def _parts(engine: InferenceEngine, folders: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Per source: its dataset and the train, calibration and validation indices."""
    parts = {}
    for folder in folders:
        dataset = load_dataset(folder, engine.config, CACHE)
        split = {
            part: held_out_part(dataset, engine.metadata, part)
            for part in ("train", "calibration", "validation")
        }
        if split["validation"] is None:
            raise ValueError(f"{folder} is not one of the folders the model was trained on")
        calibration = split["calibration"]
        if calibration is None or not len(calibration):
            raise ValueError(
                "the model kept no calibration part: train with --calibration-fraction"
            )
        parts[source_name(folder)] = {"dataset": dataset, **split}
    return parts


def _stack(parts: dict[str, dict[str, Any]], part: str) -> tuple[np.ndarray, np.ndarray]:
    images = np.concatenate([p["dataset"].images[p[part]] for p in parts.values()])
    labels = np.concatenate([p["dataset"].labels[p[part]] for p in parts.values()])
    return images, labels


def fit_decision(
    engine: InferenceEngine, parts: dict[str, dict[str, Any]], target_miss_rate: float
) -> tuple[DecisionRule, dict[str, Any]]:
    images, labels = _stack(parts, "calibration")
    raw = engine.predict_arrays(images, calibrated=False)
    temperature = fit_temperature(raw, labels)
    probed = [apply_probe(p, images, labels, seed=1) for p in PROBES]
    raw_probed = [engine.predict_arrays(batch, calibrated=False) for batch in probed]
    everything = apply_temperature(np.concatenate([raw, *raw_probed]), temperature)
    repeated = np.tile(labels, 1 + len(PROBES))
    no_tumor = fit_no_tumor_threshold(everything, repeated, target_miss_rate)
    review = fit_review_threshold(apply_temperature(raw, temperature), labels)
    rule = DecisionRule(temperature, no_tumor, review)
    before = compute_metrics(labels, raw)["ece"]
    after = compute_metrics(labels, rule.calibrate(raw))["ece"]
    print(f"temperature {temperature:.3f} (calibration ECE {before:.4f} -> {after:.4f}); "
          f"no_tumor threshold {no_tumor:.3f} for a {target_miss_rate:.1%} miss target; "
          f"review threshold {review:.3f}", flush=True)  # fmt: skip
    figures = {"calibration_images": len(labels), "target_miss_rate": target_miss_rate,
               "calibration_ece_before": before, "calibration_ece_after": after,
               "fitted_on": "calibration parts and their sequence probes"}  # fmt: skip
    return rule, figures


def fit_guard(
    engine: InferenceEngine, model_dir: Path, parts: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    train_images, _ = _stack(parts, "train")
    positives = guard_inputs(train_images)
    negatives = outlier_inputs(OUTLIER_TRAINING_IMAGES, seed=11, config=engine.config,
                               anatomy=train_images)  # fmt: skip
    print(f"guard: {len(positives)} brain MRI slices against {len(negatives)} generated "
          "outliers", flush=True)  # fmt: skip
    network = train_guard(positives, negatives)
    provisional = Guard(network, GuardSettings(threshold=0.0))
    calibration_images, _ = _stack(parts, "calibration")
    settings = GuardSettings(threshold=choose_threshold(provisional.scores(calibration_images)))
    engine.guard = Guard(network, settings)
    report = guard_figures(engine, parts)
    save_guard(model_dir, network, settings, report)
    print(json.dumps(report, indent=2), flush=True)
    return report


def guard_figures(engine: InferenceEngine, parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """False refusals on each validation part; catches on outliers the guard never saw."""
    assert engine.guard is not None
    report: dict[str, Any] = {"false_refusals": {}, "caught": {}}
    for name, part in parts.items():
        dataset, index = part["dataset"], part["validation"]
        data = [dataset.examples[i].path.read_bytes() for i in index]
        refused = sum(r is not None for r in engine.guard.refusals(data, dataset.images[index]))
        report["false_refusals"][name] = {"refused": refused, "images": len(index),
                                          "rate": refused / max(1, len(index))}  # fmt: skip
    validation_images, _ = _stack(parts, "validation")
    caught: dict[str, Counter[str]] = defaultdict(Counter)
    for kind, image in outlier_test_set(validation_images):
        try:
            refused = engine.predict([image])[0].refusal is not None
        except InvalidImageError:
            refused = True  # the site refuses it at upload already
        caught[kind]["caught" if refused else "missed"] += 1
    report["caught"] = {
        kind: {"caught": c["caught"], "images": c["caught"] + c["missed"],
               "rate": c["caught"] / max(1, c["caught"] + c["missed"])}
        for kind, c in sorted(caught.items())
    }  # fmt: skip
    total = sum(c["images"] for c in report["caught"].values())
    report["catch_rate"] = sum(c["caught"] for c in report["caught"].values()) / max(1, total)
    return report


def outlier_test_set(anatomy: np.ndarray) -> list[tuple[str, bytes]]:
    """Outliers the guard was not trained on: another seed, CT drawn on validation heads,
    and the pictures that Python packages ship (kinds never generated for training)."""
    rng = np.random.default_rng(2026)
    test = list(outliers.generated_set(OUTLIER_TEST_PER_KIND, seed=2026))
    for _ in range(OUTLIER_TEST_PER_KIND):
        head = anatomy[int(rng.integers(len(anatomy)))][..., 0]
        image = outliers.ct_head(rng, head.shape[0], head)
        test.append(("ct_head_on_validation_heads", outliers.encoded(image, rng)))
    test += [("package:" + name, data) for name, data in outliers.package_images()]
    return test


def _update_metadata(model_dir: Path, entries: dict[str, Any]) -> None:
    path = model_dir / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata.update(entries)
    path.write_text(json.dumps(metadata, indent=2))
