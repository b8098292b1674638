"""Heat maps batched or on demand: what Grad-CAM costs next to the forward pass, per image.

    .venv/bin/python scripts/bench_gradcam.py [--model models/<version>] [--data DIR]

For batch sizes 1, 8, 16 and 32 it times, per image (median of `--repeats` runs; wall
time, and in brackets the process's CPU time, which is what a busy worker pays):
  forward        the served model's forward pass alone (what a label costs)
  +tf cam        the forward pass, then TensorFlow's Grad-CAM pass (gradient tape over
                 every network of an ensemble: the reference, and the path for other heads)
  +closed form   the served call that also returns the networks' last activations, then
                 the closed-form maps (`ml.gradcam`): what the worker runs when it can
  explain_many   the whole batched call: decode, guard, forward, maps, heat-map PNGs
On-demand heat maps would save (+closed form - forward) per job and add a second task,
its round trips and the image's decode again when a result is opened.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ml.inference import InferenceEngine, configure_tensorflow  # noqa: E402
from ml.preprocessing import preprocess_bytes  # noqa: E402
from ml.registry import ModelRegistry  # noqa: E402

BATCH_SIZES = (1, 8, 16, 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="an artefact folder (default: models/ACTIVE)")
    parser.add_argument("--data", type=Path, help="a folder of JPEG/PNG slices")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    configure_tensorflow()
    registry = ModelRegistry(ROOT / "models")
    model_dir = args.model or registry.path_of(registry.active_version())
    engine = InferenceEngine.load(model_dir)
    images = _images(args.data, max(BATCH_SIZES))
    print(f"model {engine.version}; {len(images)} images; median of {args.repeats} runs")
    print(f"{'batch':>5} {'forward':>17} {'+tf cam':>17} {'+closed form':>17} "
          f"{'explain_many':>17}")  # fmt: skip
    for size in BATCH_SIZES:
        chosen = images[:size]
        arrays = np.stack([preprocess_bytes(data, engine.config) for data in chosen])
        targets = np.zeros(size, np.int32)
        runs: list[Callable[[], object]] = [
            lambda a=arrays: engine.predict_arrays(a),
            lambda a=arrays, t=targets: (
                engine.predict_arrays(a),
                np.asarray(engine._gradcam(a, t)),
            ),
            lambda a=arrays, t=targets: engine._heatmaps(a, t, engine._classify_for_maps(a)[1]),
            lambda c=chosen: engine.explain_many(c),
        ]
        cells = [_per_image_ms(run, size, args.repeats) for run in runs]
        print(f"{size:>5} " + " ".join(f"{wall:>6.1f} ({cpu:>5.1f}) ms" for wall, cpu in cells))
    if engine._head_kernels is None:
        print("(this model's served call returns no activations: +closed form is TensorFlow's)")


def _images(folder: Path | None, count: int) -> list[bytes]:
    if folder is not None:
        paths = sorted(
            p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
        )
        if len(paths) < count:
            raise SystemExit(f"{folder} holds {len(paths)} images, {count} needed")
        step = len(paths) // count
        return [paths[i * step].read_bytes() for i in range(count)]
    from tests.images import encode, mri_like

    return [encode(mri_like(512, seed), "JPEG") for seed in range(count)]


def _per_image_ms(work: Callable[[], object], size: int, repeats: int) -> tuple[float, float]:
    """(wall, CPU) milliseconds per image, each the median over `repeats` runs."""
    work()  # warm: traces a new batch shape
    walls, cpus = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        work()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
    return statistics.median(walls) * 1000 / size, statistics.median(cpus) * 1000 / size


if __name__ == "__main__":
    main()
