#!/usr/bin/env python
"""TensorFlow's serving options side by side: plain, XLA, mixed precision, both.

For GPU workers (ML_RUNTIME=tensorflow, or auto where a GPU is visible). Loads the model
as a worker does (`InferenceEngine.load`) once per option, classifies the validation
slices of the given data folders in the engine's batches, and prints images per second
(median of --repeats runs, after a warm-up that compiles) and how far each option's
probabilities stray from plain TensorFlow's (max |p - p_plain|, label agreement). Runs on
a CPU too, where XLA and float16 are not expected to win; the figures that decide the
defaults come from a GPU (docs/model-lifecycle.md, "Serving runtime").

    python scripts/bench_tensorflow.py --data DIR [DIR ...] [--model DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ml.data import load_dataset  # noqa: E402
from ml.inference import InferenceEngine  # noqa: E402
from ml.preprocessing import PreprocessConfig  # noqa: E402
from ml.registry import ModelRegistry  # noqa: E402
from ml.runtimes import MIXED_PRECISION_ENV, RUNTIME_ENV, XLA_ENV  # noqa: E402
from ml.sources import held_out_part  # noqa: E402

OPTIONS = {
    "plain": {},
    "xla": {XLA_ENV: "1"},
    "mixed precision": {MIXED_PRECISION_ENV: "1"},
    "xla + mixed precision": {XLA_ENV: "1", MIXED_PRECISION_ENV: "1"},
}


def main() -> None:
    args = parse_args()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    folder = args.model or ModelRegistry().active_path()
    images = validation_slices(folder, args.data)
    print(f"{len(images)} validation slices; model {folder.name}; "
          f"device: {', '.join(g.name for g in gpus) or 'CPU only'}", flush=True)  # fmt: skip
    reference: np.ndarray | None = None
    print(f"{'option':24} {'images/s':>9} {'max |p - plain|':>16} {'labels as plain':>16}")
    for name, env in OPTIONS.items():
        engine = load(folder, env)
        engine.predict_arrays(images, calibrated=False)  # warm-up: traces and compiles
        rates, probabilities = [], np.zeros(0)
        for _ in range(args.repeats):
            started = time.perf_counter()
            probabilities = engine.predict_arrays(images, calibrated=False)
            rates.append(len(images) / (time.perf_counter() - started))
        reference = probabilities if reference is None else reference
        difference = float(np.abs(probabilities - reference).max())
        agreement = float(np.mean(probabilities.argmax(1) == reference.argmax(1)))
        print(f"{name:24} {statistics.median(rates):9.1f} {difference:16.2g} "
              f"{agreement:16.1%}", flush=True)  # fmt: skip


def load(folder: Path, env: dict[str, str]) -> InferenceEngine:
    os.environ[RUNTIME_ENV] = "tensorflow"
    for name in (XLA_ENV, MIXED_PRECISION_ENV):
        os.environ[name] = env.get(name, "0")
    return InferenceEngine.load(folder)


def validation_slices(folder: Path, data: list[Path]) -> np.ndarray:
    metadata = json.loads((folder / "metadata.json").read_text())
    config = PreprocessConfig.from_metadata(metadata["preprocessing"])
    parts = []
    for data_dir in data:
        dataset = load_dataset(data_dir, config, ROOT / "artifacts" / "cache")
        indices = held_out_part(dataset, metadata)
        parts.append(dataset.images if indices is None else dataset.images[indices])
    return np.concatenate(parts)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="data folders")
    parser.add_argument("--model", type=Path, help="artefact folder (default: active model)")
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    main()
