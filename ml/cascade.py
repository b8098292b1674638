"""A cascade: one member of an ensemble answers alone where it is sure, the ensemble where not.

The shipped ensemble runs its network four times per slice (two members, each on the
slice and its mirror). Most slices are easy: the members agree, and one of them alone
gives the ensemble's answer. The cascade runs one member first; where its margin (its
top probability minus the runner-up) is at or below a cut, it runs the three other
passes too and serves the ensemble's average, exactly as the ensemble would. The cut is
the lowest at which the cascade gives the ensemble's label on every slice of the
calibration parts (never the validation parts the figures come from). On slices like
the training data it costs about a third of the ensemble (the shipped one: 166 against
474 MFLOP); where the member is unsure, on unfamiliar scans for instance, it spends what
the ensemble spends.

`model.keras` computes every pass and selects (the reference, for TensorFlow and for
figures); the LiteRT conversion (`ml.runtimes`) runs the other passes only for the
slices that need them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from ml.data import load_dataset
from ml.ensemble import ensemble_members, member_passes
from ml.evaluate import compute_metrics, format_report, write_reports
from ml.guard import GUARD_FILE
from ml.model import CascadeSelect, HorizontalFlip, estimate_flops, for_serving
from ml.preprocessing import PreprocessConfig
from ml.registry import METADATA_FILE, MODEL_FILE
from ml.sources import held_out_part

CASCADE_RULE = (
    "the lowest margin cut at which the cascade gives the ensemble's label on every "
    "slice of the calibration parts"
)
# What an ensemble's metadata says of the data, preprocessing and members; the cascade
# serves the same networks, so it keeps them.
INHERITED_METADATA = (
    "class_names", "input_size", "channels", "preprocessing", "training_data", "members",
    "member_validation", "test_time_flip", "libraries",
)  # fmt: skip


def top_margin(probabilities: np.ndarray) -> np.ndarray:
    """(n,) top probability minus the runner-up, of (n, classes) probabilities."""
    top_two = np.sort(probabilities, axis=1)[:, -2:]
    margin: np.ndarray = top_two[:, 1] - top_two[:, 0]
    return margin


def escalates(probabilities: np.ndarray, margin: float) -> np.ndarray:
    """(n,) bool: the rows whose first-member probabilities need the whole ensemble."""
    escalated: np.ndarray = top_margin(probabilities) <= margin
    return escalated


def choose_margin(first: np.ndarray, ensemble: np.ndarray) -> float:
    """The lowest cut at which the cascade's labels are the ensemble's on every given row."""
    differ = first.argmax(axis=1) != ensemble.argmax(axis=1)
    return float(top_margin(first)[differ].max()) if differ.any() else 0.0


def build_cascade(
    members: list[keras.Model], first: int, margin: float, test_time_flip: bool = True
) -> keras.Model:
    """Return the reference model: every pass of the ensemble, then `CascadeSelect`."""
    if not 0 <= first < len(members):
        raise ValueError(f"no member {first} among {len(members)}")
    inputs = keras.Input(members[0].input_shape[1:], name="image")
    passes, unmirrored = member_passes(inputs, members, test_time_flip)
    averaged = layers.Average(name="ensemble")(passes) if len(passes) > 1 else passes[0]
    served = CascadeSelect(margin, first, name="probabilities")([unmirrored[first], averaged])
    return keras.Model(inputs, served, name="cascade")


def cascade_of(model: keras.Model) -> tuple[list[keras.Model], int, float, bool] | None:
    """(members, first member, margin, mirrored) of a `build_cascade` model; None otherwise."""
    select = [layer for layer in model.layers if isinstance(layer, CascadeSelect)]
    if not select:
        return None
    members = ensemble_members(model)
    mirrored = any(isinstance(layer, HorizontalFlip) for layer in model.layers)
    return members, select[0].first, select[0].margin, mirrored


def make_cascade(ensemble_dir: Path, folders: Sequence[Path], out_dir: Path) -> Path:
    """Build a cascade of the ensemble artefact, choose its first member and cut on the
    calibration parts of `folders`, validate it, and save it; return the folder.

    The first member is the one that needs the ensemble on the fewest calibration slices.
    The ensemble's guard comes along (same preprocessing, same data); the decision rule is
    fitted afterwards (`ml.finalize.calibrate`), as for any model.
    """
    ensemble_dir = Path(ensemble_dir)
    ensemble_metadata = json.loads((ensemble_dir / METADATA_FILE).read_text())
    if ensemble_metadata.get("architecture") != "ensemble":
        raise ValueError(f"{ensemble_dir} is not an ensemble (python -m ml ensemble)")
    ensemble = keras.saving.load_model(ensemble_dir / MODEL_FILE, compile=False)
    members = ensemble_members(ensemble)
    flip = bool(ensemble_metadata.get("test_time_flip", True))
    parts = _held_out(folders, ensemble_metadata)
    served_members = [for_serving(member) for member in members]
    calibration = _passes(served_members, parts["calibration"][0], flip)
    choices = [_choice(calibration, index) for index in range(len(members))]
    first, margin, calibration_share = min(choices, key=lambda choice: choice[2])
    validation = _passes(served_members, parts["validation"][0], flip)
    probabilities = _cascade_probabilities(validation, first, margin)
    metrics = compute_metrics(parts["validation"][1], probabilities)
    print(format_report(metrics), flush=True)
    validation_share = float(escalates(validation["unmirrored"][first], margin).mean())
    model = build_cascade(members, first, margin, flip)
    flops = _flops(members, first, flip)
    created = datetime.now(UTC)
    version = f"cascade-{created:%Y%m%d-%H%M%S}"
    folder = Path(out_dir) / version
    folder.mkdir(parents=True)
    model.save(folder / MODEL_FILE)
    metadata = {
        **{key: ensemble_metadata[key] for key in INHERITED_METADATA if key in ensemble_metadata},
        "version": version,
        "architecture": "cascade",
        "cascade": {
            "ensemble": ensemble_metadata["version"],
            "first_member": first,
            "margin": margin,
            "rule": CASCADE_RULE,
            "escalated_share": {"calibration": calibration_share, "validation": validation_share},
            "flops": {
                **flops,
                "expected_on_validation": round(
                    flops["first"] + validation_share * flops["escalation"]
                ),
            },
        },
        "validation": _headline(metrics),
        "parameters": int(model.count_params()),
        # What a slice costs on average on the validation parts; at most first + escalation.
        "flops_per_image": round(flops["first"] + validation_share * flops["escalation"]),
        "created_at": created.isoformat(),
    }
    _bring_guard(ensemble_dir, ensemble_metadata, folder, metadata)
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    write_reports(metrics, folder, prefix="validation_")
    print(f"first member {first}, margin cut {margin:.4f}: the ensemble runs for "
          f"{calibration_share:.1%} of calibration and {validation_share:.1%} of validation "
          f"slices; wrote {folder}", flush=True)  # fmt: skip
    return folder


def _held_out(
    folders: Sequence[Path], metadata: dict[str, Any]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"calibration" | "validation": (images, labels)} of every folder's held-out parts."""
    config = PreprocessConfig.from_metadata(metadata["preprocessing"])
    gathered: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {
        "calibration": ([], []), "validation": ([], []),
    }  # fmt: skip
    for folder in folders:
        dataset = load_dataset(Path(folder), config, Path("artifacts/cache"))
        for part, (images, labels) in gathered.items():
            indices = held_out_part(dataset, metadata, part)
            if indices is None or not len(indices):
                raise ValueError(f"{folder} has no {part} part the ensemble kept out")
            images.append(dataset.images[indices])
            labels.append(dataset.labels[indices])
    return {part: (np.concatenate(images), np.concatenate(labels))
            for part, (images, labels) in gathered.items()}  # fmt: skip


def _passes(members: list[keras.Model], images: np.ndarray, flip: bool) -> dict[str, Any]:
    """Each member's probabilities on the images (and mirrors), and the ensemble's average."""
    unmirrored, passes = [], []
    for member in members:
        unmirrored.append(np.asarray(member.predict(images, batch_size=64, verbose=0)))
        passes.append(unmirrored[-1])
        if flip:
            passes.append(np.asarray(member.predict(images[:, :, ::-1], batch_size=64, verbose=0)))
    return {"unmirrored": unmirrored, "ensemble": np.mean(passes, axis=0)}


def _choice(passes: dict[str, Any], first: int) -> tuple[int, float, float]:
    margin = choose_margin(passes["unmirrored"][first], passes["ensemble"])
    return first, margin, float(escalates(passes["unmirrored"][first], margin).mean())


def _cascade_probabilities(passes: dict[str, Any], first: int, margin: float) -> np.ndarray:
    alone = passes["unmirrored"][first]
    chosen: np.ndarray = np.where(escalates(alone, margin)[:, None], passes["ensemble"], alone)
    return chosen


def _flops(members: list[keras.Model], first: int, flip: bool) -> dict[str, int]:
    """The first pass's cost and what the escalation's other passes add."""
    per_member = [estimate_flops(member) for member in members]
    total = sum(per_member) * (2 if flip else 1)
    return {"first": per_member[first], "escalation": total - per_member[first]}


def _bring_guard(
    ensemble_dir: Path, ensemble_metadata: dict[str, Any], folder: Path, metadata: dict[str, Any]
) -> None:
    if (ensemble_dir / GUARD_FILE).is_file() and "guard" in ensemble_metadata:
        shutil.copy2(ensemble_dir / GUARD_FILE, folder / GUARD_FILE)
        metadata["guard"] = ensemble_metadata["guard"]


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    from ml.train import _headline as headline

    return headline(metrics)
