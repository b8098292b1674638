"""Combine trained models into one artefact that averages them, with test-time flips.

Members must share the preprocessing, so the scan is decoded and prepared once;
the ensemble is a single Keras model, served by the same engine in one compiled
call. Averaging models trained differently, and each model's view of the scan
and its mirror image, cancels part of their independent errors.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from ml.data import load_dataset
from ml.evaluate import compute_metrics, format_report, write_reports
from ml.model import HorizontalFlip
from ml.registry import METADATA_FILE, MODEL_FILE, TRAINING_HISTORY_FILE
from ml.sources import held_out_part

MEMBER_PREFIX = "member_"
SHARED_METADATA = ("class_names", "input_size", "channels", "preprocessing", "training_data")


def build_ensemble(members: list[keras.Model], test_time_flip: bool = True) -> keras.Model:
    """Return a model averaging `members` (and, with `test_time_flip`, their mirrored views)."""
    inputs = keras.Input(members[0].input_shape[1:], name="image")
    passes, _ = member_passes(inputs, members, test_time_flip)
    averaged = layers.Average(name="probabilities")(passes) if len(passes) > 1 else passes[0]
    return keras.Model(inputs, averaged, name="ensemble")


def member_passes(
    inputs: Any, members: list[keras.Model], test_time_flip: bool
) -> tuple[list[Any], list[Any]]:
    """Each member's output on the image (then on its mirror), in the order the ensemble
    averages them; and each member's output on the image alone."""
    mirrored = HorizontalFlip(name="mirror")(inputs) if test_time_flip else None
    passes, unmirrored = [], []
    for index, member in enumerate(members):
        named = keras.Model(member.inputs, member.output, name=f"{MEMBER_PREFIX}{index}")
        unmirrored.append(named(inputs))
        passes.append(unmirrored[-1])
        if mirrored is not None:
            passes.append(named(mirrored))
    return passes, unmirrored


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The member networks of a model built by `build_ensemble` (or `ml.cascade`), in order.

    By their number: Keras lists a model's layers in an order of its own (a cascade's
    first member comes first)."""
    members = [layer for layer in model.layers if layer.name.startswith(MEMBER_PREFIX)]
    return sorted(members, key=lambda member: int(member.name.removeprefix(MEMBER_PREFIX)))


def make_ensemble(
    member_dirs: list[Path], data_dir: Path, out_dir: Path, test_time_flip: bool = True
) -> Path:
    """Build, validate on the members' shared held-out split, and save; return the folder."""
    import ml.model  # noqa: F401  registers the custom layers

    metadatas = [json.loads((d / METADATA_FILE).read_text()) for d in member_dirs]
    _check_compatible(metadatas)
    members = [keras.saving.load_model(d / MODEL_FILE, compile=False) for d in member_dirs]
    model = build_ensemble(members, test_time_flip)
    first = metadatas[0]
    metrics = _validate(model, first, data_dir)
    created = datetime.now(UTC)
    version = f"ensemble-{created:%Y%m%d-%H%M%S}"
    folder = out_dir / version
    folder.mkdir(parents=True)
    model.save(folder / MODEL_FILE)
    metadata = {
        **{key: first[key] for key in SHARED_METADATA},
        "version": version,
        "architecture": "ensemble",
        "members": [m["version"] for m in metadatas],
        "member_validation": {m["version"]: m.get("validation") for m in metadatas},
        "test_time_flip": test_time_flip,
        "validation": _headline(metrics),
        "parameters": int(model.count_params()),
        "flops_per_image": sum(m.get("flops_per_image", 0) for m in metadatas)
        * (2 if test_time_flip else 1),
        "libraries": first.get("libraries"),
        "created_at": created.isoformat(),
    }
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    (folder / TRAINING_HISTORY_FILE).write_text(json.dumps(member_histories(member_dirs), indent=2))
    write_reports(metrics, folder, prefix="validation_")
    print(format_report(metrics))
    print(f"wrote {folder}")
    return folder


def member_histories(member_dirs: list[Path]) -> dict[str, Any]:
    """Return each member's training history (loss and accuracy per epoch) by version."""
    histories = {}
    for member in member_dirs:
        path = member / TRAINING_HISTORY_FILE
        version = json.loads((member / METADATA_FILE).read_text())["version"]
        histories[version] = json.loads(path.read_text()) if path.exists() else None
    return histories


def _check_compatible(metadatas: list[dict[str, Any]]) -> None:
    keys = ("preprocessing", "class_names")
    for key in keys:
        if any(m[key] != metadatas[0][key] for m in metadatas):
            raise ValueError(f"ensemble members must share {key}")
    splits = {json.dumps(m["training_data"], sort_keys=True) for m in metadatas}
    if len(splits) != 1:
        raise ValueError("ensemble members must be trained on the same data and split")


def _validate(model: keras.Model, metadata: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    from ml.preprocessing import PreprocessConfig

    config = PreprocessConfig.from_metadata(metadata["preprocessing"])
    dataset = load_dataset(data_dir, config, Path("artifacts/cache"))
    validation = held_out_part(dataset, metadata)
    if validation is None:
        raise ValueError("the data folder differs from the ones the members were trained on")
    started = time.monotonic()
    probabilities = model.predict(dataset.images[validation], batch_size=128, verbose=0)
    print(f"validated {len(validation)} images in {time.monotonic() - started:.1f}s")
    return compute_metrics(dataset.labels[validation], np.asarray(probabilities))


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    from ml.train import _headline as headline

    return headline(metrics)
