"""Serving: `InferenceEngine` loads one artefact and classifies image bytes in batches.

Decoding and preprocessing run in a thread pool (Pillow releases the GIL) while
TensorFlow runs the previous batch, and the forward pass is one `tf.function`
traced once at load: `model.predict` per image spends ~30 of its ~36 ms on
per-call overhead (field notes). TensorFlow is imported lazily, so importing
this module costs nothing until an engine is loaded.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ml.artefact import read_metadata
from ml.errors import InvalidImageError, MLError, ModelNotFoundError
from ml.preprocessing import (
    PreprocessConfig,
    crop_to_head,
    decode_image,
    load_array,
    preprocess,
    to_standard_mode,
)
from ml.registry import MODEL_FILE

OVERLAY_SIZE = 256
_configured = False


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]
    model_version: str
    inference_ms: float


@dataclass
class Explanation:
    heatmap: np.ndarray  # (h, w) float32 in [0, 1], over the model's input frame
    overlay_png: bytes  # the scan in grayscale with the heat map blended on, PNG


def configure_tensorflow(intra_op_threads: int = 0, inter_op_threads: int = 0) -> None:
    """Set GPU memory growth and thread pools; call once per process before any TF op.

    Thread counts default to $TF_NUM_INTRAOP_THREADS / $TF_NUM_INTEROP_THREADS,
    else TensorFlow's own choice. Later calls are no-ops.
    """
    global _configured
    if _configured:
        return
    import tensorflow as tf

    # Without memory growth one process takes the whole GPU and the next worker fails.
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    intra = intra_op_threads or int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0"))
    inter = inter_op_threads or int(os.environ.get("TF_NUM_INTEROP_THREADS", "0"))
    try:
        if intra:
            tf.config.threading.set_intra_op_parallelism_threads(intra)
        if inter:
            tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        pass  # TensorFlow already started: its thread pools can no longer change
    _configured = True


class InferenceEngine:
    """One loaded model: batched, overlapped prediction and Grad-CAM explanations."""

    def __init__(
        self, model: Any, metadata: dict[str, Any], batch_size: int = 64, decode_threads: int = 2
    ) -> None:
        self.model = model
        self.metadata = metadata
        self.version: str = str(metadata["version"])
        self.class_names: tuple[str, ...] = tuple(metadata["class_names"])
        self.config = PreprocessConfig.from_metadata(metadata["preprocessing"])
        self.batch_size = batch_size
        self._pool = ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="decode")
        self._forward, self._gradcam = _compile(model, self.config, metadata)

    @classmethod
    def load(
        cls,
        artefact_dir: Path | str,
        batch_size: int = 64,
        test_time_augmentation: str | None = None,
    ) -> InferenceEngine:
        """Load model.keras + metadata.json, compile the forward pass and warm it up.

        `test_time_augmentation` ("none" | "hflip") overrides what the metadata records.
        """
        artefact_dir = Path(artefact_dir)
        metadata = read_metadata(artefact_dir)
        if test_time_augmentation is not None:
            metadata = {**metadata, "test_time_augmentation": test_time_augmentation}
        model = _load_keras(artefact_dir / MODEL_FILE)
        engine = cls(model, metadata, batch_size=batch_size)
        engine.predict_arrays(np.zeros((1, *engine.input_shape), np.float32))
        return engine

    @property
    def input_shape(self) -> tuple[int, int, int]:
        height, width = self.config.input_size
        return (height, width, self.config.channels)

    def predict_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Return probabilities (N, classes) float32 for preprocessed (N, H, W, C) images."""
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            raise ValueError(f"expected (N, {self.input_shape}) arrays, got {batch.shape}")
        outputs = [
            self._forward(np.ascontiguousarray(batch[start : start + self.batch_size], np.float32))
            for start in range(0, len(batch), self.batch_size)
        ]
        if not outputs:
            return np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate([output.numpy() for output in outputs])

    def predict(self, images: list[bytes]) -> list[Prediction]:
        """Classify image bytes; raise InvalidImageError if any of them is not a usable image."""
        results = self.predict_outcomes(images)
        for index, result in enumerate(results):
            if isinstance(result, InvalidImageError):
                raise InvalidImageError(f"image {index}: {result}") from result
        return [result for result in results if isinstance(result, Prediction)]

    def predict_outcomes(self, images: list[bytes]) -> list[Prediction | InvalidImageError]:
        """Classify image bytes; a bad image yields its InvalidImageError in its place."""
        outcomes: list[Prediction | InvalidImageError] = []
        for started, chunk in self._decoded_chunks(images):
            good = [array for array in chunk if isinstance(array, np.ndarray)]
            probabilities = iter(self.predict_arrays(np.stack(good)) if good else [])
            elapsed_ms = (time.perf_counter() - started) * 1000 / max(len(chunk), 1)
            for array in chunk:
                if isinstance(array, InvalidImageError):
                    outcomes.append(array)
                else:
                    outcomes.append(self._prediction(next(probabilities), elapsed_ms))
        return outcomes

    def explain(self, image: bytes) -> tuple[Prediction, Explanation]:
        """Classify one image and return its Grad-CAM heat map (one forward + backward)."""
        started = time.perf_counter()
        decoded = decode_image(image, draft_size=self.config.draft_size())
        array = preprocess(decoded, self.config)
        probabilities = self._forward(array[np.newaxis]).numpy()[0]  # with test-time augmentation
        cam = self._gradcam(array[np.newaxis], tf_int(int(np.argmax(probabilities))))
        heatmap = _resize_heatmap(cam.numpy(), self.config.input_size)
        overlay = overlay_png(_overlay_base(decoded, self.config), heatmap)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return self._prediction(probabilities, elapsed_ms), Explanation(heatmap, overlay)

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def _prediction(self, probabilities: np.ndarray, elapsed_ms: float) -> Prediction:
        values = {name: float(p) for name, p in zip(self.class_names, probabilities, strict=True)}
        label = self.class_names[int(np.argmax(probabilities))]
        return Prediction(label, values, self.version, round(elapsed_ms, 3))

    def _decoded_chunks(
        self, images: list[bytes]
    ) -> Iterator[tuple[float, list[np.ndarray | InvalidImageError]]]:
        """Yield batches of decoded arrays while the pool already decodes the next batches."""
        window = 3 * self.batch_size  # bounded read-ahead keeps memory flat for long lists
        futures: list[Future[np.ndarray]] = []
        submitted = 0
        for start in range(0, len(images), self.batch_size):
            started = time.perf_counter()
            while submitted < min(len(images), start + window):
                futures.append(self._pool.submit(load_array, images[submitted], self.config))
                submitted += 1
            chunk = futures[start : start + self.batch_size]
            yield started, [_result(future) for future in chunk]
            for index in range(start, start + len(chunk)):
                futures[index] = _DONE  # drop references to finished arrays


_DONE: Future[np.ndarray] = Future()


def _result(future: Future[np.ndarray]) -> np.ndarray | InvalidImageError:
    try:
        return future.result()
    except InvalidImageError as exc:
        return exc


def _load_keras(path: Path) -> Any:
    import keras

    if not path.is_file():
        raise ModelNotFoundError(f"no model file at {path}")
    try:
        return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError) as exc:
        raise MLError(f"cannot load model {path}: {exc}") from exc


def _compile(model: Any, config: PreprocessConfig, metadata: dict[str, Any]) -> tuple[Any, Any]:
    """Return (forward, gradcam) tf.functions with fixed signatures: traced once each."""
    import keras
    import tensorflow as tf

    height, width = config.input_size
    spec = tf.TensorSpec((None, height, width, config.channels), tf.float32)
    layer = model.get_layer(metadata.get("gradcam_layer", "last_conv"))
    grad_model = keras.Model(model.inputs, [layer.output, model.output])

    flip = metadata.get("test_time_augmentation") == "hflip"

    @tf.function(input_signature=[spec])
    def forward(batch: Any) -> Any:
        if not flip:
            return model(batch, training=False)
        # Test-time augmentation: average with the mirror image (heads are near-symmetric).
        both = model(tf.concat([batch, tf.reverse(batch, axis=[2])], axis=0), training=False)
        original, mirrored = tf.split(both, 2, axis=0)
        return (original + mirrored) / 2

    single = tf.TensorSpec((1, height, width, config.channels), tf.float32)

    @tf.function(input_signature=[single, tf.TensorSpec((), tf.int32)])
    def gradcam(batch: Any, target: Any) -> Any:
        with tf.GradientTape() as tape:
            activations, probabilities = grad_model(batch, training=False)
            # Log-probability: its gradient does not vanish when the softmax saturates.
            score = tf.math.log(tf.gather(probabilities[0], target) + 1e-9)
        gradients = tape.gradient(score, activations)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(activations * weights, axis=-1))[0]
        return cam / (tf.reduce_max(cam) + 1e-9)

    return forward, gradcam


def tf_int(value: int) -> Any:
    import tensorflow as tf

    return tf.constant(value, tf.int32)


def _resize_heatmap(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    image = Image.fromarray(cam.astype(np.float32), mode="F")
    resized = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
    return np.clip(resized, 0.0, 1.0).astype(np.float32)


def _overlay_base(image: Image.Image, config: PreprocessConfig) -> Image.Image:
    # The same crop the model saw, so the heat map lines up with the anatomy.
    gray = to_standard_mode(image, "L")
    if config.head_crop:
        gray = crop_to_head(gray)
    return gray.resize((OVERLAY_SIZE, OVERLAY_SIZE), Image.Resampling.BILINEAR)


def overlay_png(gray: Image.Image, heatmap: np.ndarray, max_alpha: float = 0.6) -> bytes:
    """Return PNG bytes: `gray` with `heatmap` (values 0..1) as a jet colour map blended on."""
    size = gray.size
    heat = np.asarray(
        Image.fromarray(heatmap.astype(np.float32), mode="F").resize(
            size, Image.Resampling.BILINEAR
        )
    ).clip(0, 1)
    base = np.asarray(gray.convert("RGB"), dtype=np.float32)
    alpha = (max_alpha * heat)[:, :, np.newaxis]  # cold regions leave the scan readable
    blended = (1 - alpha) * base + alpha * jet(heat)
    buffer = io.BytesIO()
    Image.fromarray(blended.clip(0, 255).astype(np.uint8), mode="RGB").save(buffer, "PNG")
    return buffer.getvalue()


def jet(values: np.ndarray) -> np.ndarray:
    """Map 0..1 values to jet RGB colours, 0..255 float32 (..., 3)."""
    red = np.clip(1.5 - np.abs(4 * values - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * values - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * values - 1), 0, 1)
    return (np.stack([red, green, blue], axis=-1) * 255).astype(np.float32)
