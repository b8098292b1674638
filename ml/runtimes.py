"""CPU runtimes for a trained network, side by side: TensorFlow against LiteRT (float32, int8).

`python -m ml bench --runtimes` converts the served network with TFLiteConverter,
runs it with LiteRT's XNNPACK kernels (`ai-edge-litert`, installed separately: it
is not a dependency of the service unless it wins), and prints images per second
at a few batch sizes and how far each runtime's probabilities stray from Keras's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

BATCH_SIZES = (16, 32)
REPRESENTATIVE_IMAGES = 200


def tflite_bytes(model: Any, representative: np.ndarray | None = None) -> bytes:
    """Return `model` converted to a LiteRT flatbuffer: float32, or int8 given training images.

    With `representative` (n, h, w, c) float32 slices the weights and activations
    are quantised to int8 (inputs and outputs stay float32, ops without an int8
    kernel stay float).
    """
    import tensorflow as tf

    # From the Keras model: a concrete function would keep its weights as resource
    # variables, which the int8 calibrator cannot read.
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def samples() -> Iterator[list[np.ndarray]]:
            for image in representative:
                yield [image[np.newaxis].astype(np.float32)]

        converter.representative_dataset = samples
    converted: bytes = converter.convert()
    return converted


class LiteRTRunner:
    """Run a LiteRT flatbuffer on float32 batches with the XNNPACK delegate (LiteRT's default)."""

    def __init__(self, flatbuffer: bytes, threads: int | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ValueError(
                "LiteRT is not installed: pip install ai-edge-litert (see docs/model-lifecycle.md)"
            ) from exc
        self._interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Return probabilities (n, classes) for a float32 (n, h, w, c) batch."""
        if len(batch) != self._batch:
            self._interpreter.resize_tensor_input(self._input, list(batch.shape))
            self._interpreter.allocate_tensors()
            self._batch = len(batch)
        self._interpreter.set_tensor(self._input, batch.astype(np.float32, copy=False))
        self._interpreter.invoke()
        result: np.ndarray = self._interpreter.get_tensor(self._output).copy()
        return result


def compare(
    model: Any,
    reference: np.ndarray,
    images: np.ndarray,
    representative: np.ndarray,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    """Per runtime: images/s at each batch size and agreement with `reference` on `images`.

    `model` is the network as served (`for_serving`), `reference` the saved Keras
    model's probabilities (n, classes) for `images`.
    """
    import os

    import tensorflow as tf

    threads = os.cpu_count() or 1
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    runtimes: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "tensorflow (tf.function)": lambda batch: np.asarray(forward(batch)),
        "litert float32 (xnnpack)": LiteRTRunner(tflite_bytes(model), threads),
        "litert int8 (xnnpack)": LiteRTRunner(tflite_bytes(model, representative), threads),
    }
    rows = []
    for name, run in runtimes.items():
        row: dict[str, Any] = {"runtime": name}
        for size in BATCH_SIZES:
            row[f"images_per_s_batch_{size}"] = _rate(run, images, size, repeats)
        answers = np.concatenate([run(images[i : i + 32]) for i in range(0, len(images), 32)])
        row["max_abs_diff"] = float(np.abs(answers - reference).max())
        row["label_agreement"] = float(np.mean(answers.argmax(1) == reference.argmax(1)))
        rows.append(row)
    return rows


def _rate(
    run: Callable[[np.ndarray], np.ndarray], images: np.ndarray, size: int, repeats: int
) -> float:
    """Images per second over all of `images` in batches of `size`: median of `repeats` runs."""
    batches = [images[i : i + size] for i in range(0, len(images) - size + 1, size)]
    run(batches[0])  # warm up: trace, allocate, pack weights
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for batch in batches:
            run(batch)
        rates.append(size * len(batches) / (time.perf_counter() - started))
    return statistics.median(rates)


def format_rows(rows: list[dict[str, Any]]) -> str:
    sizes = "  ".join(f"batch {size:>2} img/s" for size in BATCH_SIZES)
    lines = [f"{'runtime':<26}{sizes}  max |p - keras|  label agreement"]
    for row in rows:
        rates = "  ".join(f"{row[f'images_per_s_batch_{size}']:>14.1f}" for size in BATCH_SIZES)
        lines.append(f"{row['runtime']:<26}{rates}  {row['max_abs_diff']:>15.5f}  "
                     f"{row['label_agreement']:>15.3f}")  # fmt: skip
    return "\n".join(lines)
