"""Heat maps batched or on demand: what Grad-CAM costs next to the forward pass, per image.

    .venv/bin/python scripts/bench_gradcam.py [--model models/<version>] [--data DIR]

For batch sizes 1, 8, 16 and 32 it times, per image (median of `--repeats` runs):
  forward        the served model's forward pass alone (what a label costs)
  forward+cam    the forward pass, then one batched Grad-CAM pass (what the worker runs)
  explain_many   the whole batched call: decode, guard, forward, Grad-CAM, heat-map PNGs
On-demand heat maps would save (forward+cam - forward) per job and add a second task,
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
    print(
        f"{'batch':>5} {'forward':>12} {'forward+cam':>12} {'cam/forward':>12} {'explain_many':>13}"
    )
    for size in BATCH_SIZES:
        chosen = images[:size]
        arrays = np.stack([preprocess_bytes(data, engine.config) for data in chosen])
        targets = np.zeros(size, np.int32)
        forward = _per_image_ms(lambda a=arrays: engine._forward(a).numpy(), size, args.repeats)
        with_cam = _per_image_ms(
            lambda a=arrays, t=targets: (engine._forward(a).numpy(), engine._gradcam(a, t).numpy()),
            size,
            args.repeats,
        )
        whole = _per_image_ms(lambda c=chosen: engine.explain_many(c), size, args.repeats)
        print(f"{size:>5} {forward:>9.2f} ms {with_cam:>9.2f} ms {with_cam / forward:>11.1f}x "
              f"{whole:>10.2f} ms")  # fmt: skip


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


def _per_image_ms(work: Callable[[], object], size: int, repeats: int) -> float:
    work()  # warm: traces a new batch shape
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000 / size


if __name__ == "__main__":
    main()
