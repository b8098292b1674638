"""Several data folders ("sources": hospitals, collections) and their honest three-way split.

Each source is split on its own, by near-duplicate groups and stratified by class,
into training, calibration and validation parts. Calibration (temperature, the
decision thresholds, the out-of-distribution guard's cut-off) is fitted on its
own part, so the validation figures stay untouched by every choice made after
training. The split of every source is recorded in the artefact's metadata, so
`evaluate` finds the same validation images again, and knows which folders the
model never saw (those are evaluated whole: the cross-source figures).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.data import Dataset, grouped_split, load_dataset, split_only
from ml.preprocessing import PreprocessConfig

SPLIT_METHOD = "grouped-by-near-duplicate-dHash, stratified, per source"


@dataclass(frozen=True)
class SplitOptions:
    val_fraction: float = 0.2
    # Of what is left after validation: 0.1 of 0.8 is 8% of the source.
    calibration_fraction: float = 0.1
    seed: int = 1337

    def to_metadata(self) -> dict[str, Any]:
        return {
            "method": SPLIT_METHOD,
            "val_fraction": self.val_fraction,
            "calibration_fraction": self.calibration_fraction,
            "seed": self.seed,
        }


@dataclass
class Source:
    """One data folder, preprocessed, with its three index arrays into `dataset`."""

    name: str
    dataset: Dataset
    train: np.ndarray
    calibration: np.ndarray
    validation: np.ndarray

    def to_metadata(self, split: SplitOptions) -> dict[str, Any]:
        return {
            "name": self.name,
            "fingerprint": self.dataset.fingerprint,
            "images": len(self.dataset.examples),
            "split": split.to_metadata(),
            "counts": {
                "train": len(self.train),
                "calibration": len(self.calibration),
                "validation": len(self.validation),
            },
        }


def source_name(folder: Path) -> str:
    """`.../brain-tumor-mri/Training` -> `brain-tumor-mri`: the collection, not its split."""
    folder = Path(folder).resolve()
    return folder.parent.name if folder.name.lower() in {"training", "train"} else folder.name


def split_three_ways(dataset: Dataset, options: SplitOptions) -> tuple[np.ndarray, ...]:
    """Return (train, calibration, validation) index arrays; no near-duplicate group straddles."""
    rest, validation = dataset.split(options.val_fraction, options.seed)
    if options.calibration_fraction <= 0:
        return rest, np.array([], dtype=np.int64), validation
    labels, groups = dataset.labels[rest].tolist(), dataset.groups[rest].tolist()
    train, calibration = grouped_split(labels, groups, options.calibration_fraction, options.seed)
    return rest[train], rest[calibration], validation


def load_sources(
    folders: Sequence[Path],
    config: PreprocessConfig,
    options: SplitOptions,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] = print,
) -> list[Source]:
    sources = []
    for folder in folders:
        dataset = load_dataset(folder, config, cache_dir, progress)
        train, calibration, validation = split_three_ways(dataset, options)
        sources.append(Source(source_name(folder), dataset, train, calibration, validation))
        progress(f"{sources[-1].name}: {len(train)} training, {len(calibration)} calibration, "
                 f"{len(validation)} validation images")  # fmt: skip
    return sources


def recorded_sources(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The sources an artefact was trained on, also from the one-folder metadata of old models."""
    training = metadata.get("training_data") or {}
    if "sources" in training:
        return list(training["sources"])
    if training.get("fingerprint"):
        split = dict(training.get("split") or {})
        split.setdefault("calibration_fraction", 0.0)
        return [{"name": "training", "fingerprint": training["fingerprint"], "split": split}]
    return []


def held_out_files(folder: Path, metadata: dict[str, Any], part: str = "validation") -> list[Path]:
    """The image files of `folder` the model kept out for `part`; all of them if the model
    never saw the folder. Reads no image beyond its hash (`ml.data.split_only`)."""
    dataset = split_only(folder)
    indices = held_out_part(dataset, metadata, part)
    examples = dataset.examples
    return [e.path for e in examples] if indices is None else [examples[i].path for i in indices]


def held_out_part(
    dataset: Dataset, metadata: dict[str, Any], part: str = "validation"
) -> np.ndarray | None:
    """Return the indices of `dataset` the model kept out for `part`, or None if it never saw it.

    None means the folder is not one the model was trained on: all of it is unseen.
    """
    for recorded in recorded_sources(metadata):
        if recorded["fingerprint"] != dataset.fingerprint:
            continue
        split = recorded["split"]
        options = SplitOptions(
            val_fraction=float(split["val_fraction"]),
            calibration_fraction=float(split.get("calibration_fraction", 0.0)),
            seed=int(split["seed"]),
        )
        train, calibration, validation = split_three_ways(dataset, options)
        return {"train": train, "calibration": calibration, "validation": validation}[part]
    return None
