"""Throughput: the tutorial's way, decode + resize alone, and the batched engine (images/s)."""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ml.data import IMAGE_SUFFIXES
from ml.preprocessing import PreprocessConfig, normalise, to_standard_mode


def run_bench(
    model_dir: Path,
    data_dir: Path,
    limit: int,
    seed_model_dir: Path | None = None,
    repeats: int = 3,
    tutorial_limit: int = 100,
) -> Iterator[str]:
    """Yield report lines; each figure is the median of `repeats` timed passes."""
    from ml.inference import InferenceEngine, configure_tensorflow

    configure_tensorflow()
    paths = image_paths(data_dir, limit)
    contents = [path.read_bytes() for path in paths]
    engine = InferenceEngine.load(model_dir)
    tutorial = tutorial_way(seed_model_dir or model_dir)
    tutorial_paths = paths[:tutorial_limit]
    yield f"images: {len(paths)} from {data_dir} ({len(tutorial_paths)} for the tutorial's way)"
    seed_rate = _rate(lambda: [tutorial(path) for path in tutorial_paths], len(tutorial_paths),
                      repeats)  # fmt: skip
    yield f"(a) tutorial's way (load, resize, model.predict per image): {seed_rate:,.1f} images/s"
    decode_rate = _rate(lambda: [decode_and_resize(d, engine.config) for d in contents],
                        len(contents), repeats)  # fmt: skip
    yield f"(b) JPEG decode + resize alone (PIL, one thread): {decode_rate:,.1f} images/s"
    engine_rate = _rate(lambda: engine.predict(contents), len(contents), repeats)
    yield f"(c) engine (batched, decode overlapped): {engine_rate:,.1f} images/s"
    yield f"engine/decode: {100 * engine_rate / decode_rate:.0f}%"
    yield f"engine/seed: {engine_rate / seed_rate:.1f}x"


def image_paths(data_dir: Path, limit: int) -> list[Path]:
    paths = sorted(p for p in Path(data_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no images under {data_dir}")
    # Spread the sample over all class folders rather than taking the first folder only.
    step = max(1, len(paths) // limit)
    return paths[::step][:limit]


def decode_and_resize(data: bytes, config: PreprocessConfig) -> np.ndarray:
    """The least any pipeline does: full decode, convert, resize to the input size."""
    height, width = config.input_size
    with Image.open(io.BytesIO(data)) as image:
        converted = image.convert("L" if config.channels == 1 else "RGB")
        return np.asarray(converted.resize((width, height), Image.Resampling.BILINEAR))


def tutorial_way(model_dir: Path) -> Callable[[Path], Any]:
    """Return the tutorial's per-image prediction: load from disk, resize, model.predict."""
    import keras

    from ml.artefact import read_metadata

    model = keras.saving.load_model(Path(model_dir) / "model.keras", compile=False)
    config = PreprocessConfig.from_metadata(read_metadata(Path(model_dir))["preprocessing"])
    height, width = config.input_size

    def predict(path: Path) -> Any:
        image = to_standard_mode(Image.open(path), "L" if config.channels == 1 else "RGB")
        array = np.asarray(image.resize((width, height)), dtype=np.float32)
        array = normalise(array.reshape(height, width, config.channels), config.normalisation)
        return model.predict(array[np.newaxis], verbose=0)

    predict(_first_image_like(config))  # warm-up, as a served model would be
    return predict


def _first_image_like(config: PreprocessConfig) -> Path:
    import tempfile

    height, width = config.input_size
    path = Path(tempfile.mkdtemp()) / "warmup.png"
    Image.new("L", (width, height)).save(path)
    return path


def _rate(work: Callable[[], Any], count: int, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return count / statistics.median(timings)
