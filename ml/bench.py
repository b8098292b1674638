"""`python -m ml bench`: images per second, the tutorial's way against the inference engine.

(a) the tutorial's way: per image, load from disk, resize, `model.predict` on a batch of one;
(b) the floor: JPEG decode + resize alone, the work no model can avoid;
(c) the engine: read the files, then `InferenceEngine.predict` on batches, decoding in
    threads while the model runs.
Each figure is the median of `repeats` runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ml.data import scan_folder
from ml.inference import InferenceEngine

TUTORIAL_IMAGES = 100  # model.predict per image is slow; 100 images give a stable rate


def run(
    model_dir: Path,
    data_dir: Path,
    seed_model: Path | None,
    limit: int,
    repeats: int,
    runtimes: bool = False,
) -> None:
    paths = _sample(data_dir, limit)
    engine = InferenceEngine.load(model_dir)
    tutorial_engine = InferenceEngine.load(seed_model) if seed_model else engine
    print(f"{len(paths)} images from {data_dir}; model {engine.version} ({engine.runtime}); "
          f"tutorial's way on {tutorial_engine.version}")  # fmt: skip
    tutorial = _rate(lambda: _tutorial_way(tutorial_engine, paths[:TUTORIAL_IMAGES]), repeats)
    size = tuple(reversed(engine.config.input_size))
    decode = _rate(lambda: _decode_and_resize(paths, size), repeats)
    batched = _rate(lambda: engine.predict([p.read_bytes() for p in paths]), repeats)
    print(f"tutorial's way (predict per image): {tutorial:8.1f} images/s")
    print(f"JPEG decode + resize alone:         {decode:8.1f} images/s")
    print(f"engine, batched:                    {batched:8.1f} images/s")
    print(f"engine/decode: {batched / decode:.0%}")
    print(f"engine/seed: {batched / tutorial:.1f}x")
    if runtimes:
        compare_runtimes(engine, model_dir, data_dir, repeats)


def compare_runtimes(
    engine: InferenceEngine, model_dir: Path, data_dir: Path, repeats: int
) -> None:
    """TensorFlow against LiteRT float32 and int8 on the model's own validation slices."""
    import keras

    from ml.data import load_dataset
    from ml.registry import MODEL_FILE
    from ml.runtimes import REPRESENTATIVE_IMAGES, compare, format_rows
    from ml.sources import held_out_part

    dataset = load_dataset(data_dir, engine.config, Path("artifacts/cache"))
    validation = held_out_part(dataset, engine.metadata, "validation")
    train = held_out_part(dataset, engine.metadata, "train")
    if validation is None or train is None:
        raise ValueError(f"{data_dir} is not a folder {engine.version} was trained on")
    rng = np.random.default_rng(0)
    images = dataset.images[np.sort(rng.choice(validation, min(208, len(validation)), False))]
    representative = dataset.images[
        rng.choice(train, min(REPRESENTATIVE_IMAGES, len(train)), False)
    ]
    saved = keras.saving.load_model(model_dir / MODEL_FILE, compile=False)
    reference = np.asarray(saved.predict(images, batch_size=64, verbose=0))
    print(f"runtimes on {len(images)} validation slices (int8 calibrated on "
          f"{len(representative)} training slices):")  # fmt: skip
    print(format_rows(compare(engine.model, reference, images, representative, repeats)))


def _sample(data_dir: Path, limit: int) -> list[Path]:
    examples = scan_folder(data_dir)
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(examples), size=min(limit, len(examples)), replace=False)
    return [examples[i].path for i in sorted(chosen)]


def _rate(work: Callable[[], object], repeats: int) -> float:
    """Return images per second: the median over `repeats` timed runs of `work`."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = len(work())  # type: ignore[arg-type]
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def _tutorial_way(engine: InferenceEngine, paths: list[Path]) -> list[np.ndarray]:
    height, width = engine.config.input_size
    mode = "RGB" if engine.config.channels == 3 else "L"
    results = []
    for path in paths:
        image = Image.open(path).convert(mode).resize((width, height))
        array = np.asarray(image, np.float32).reshape(1, height, width, engine.config.channels)
        results.append(engine.model.predict(array, verbose=0))
    return results


def _decode_and_resize(paths: list[Path], size: tuple[int, ...]) -> list[Image.Image]:
    return [Image.open(path).convert("L").resize(size) for path in paths]  # type: ignore[arg-type]
