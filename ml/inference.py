"""Serve a trained model: load once, warm up, classify batches, explain with Grad-CAM."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ml.calibration import DecisionRule
from ml.errors import InvalidImageError, ModelNotFoundError, NotBrainMRIError
from ml.gradcam import closed_form_cams, resize_bilinear, softmax_head_kernel
from ml.guard import Guard
from ml.preprocessing import (
    Geometry,
    PreprocessConfig,
    preprocess_bytes,
    preprocess_bytes_with_geometry,
)
from ml.registry import METADATA_FILE, MODEL_FILE

if TYPE_CHECKING:
    from ml.runtimes import CascadeRunner, LiteRTRunner, TensorFlowOptions

BATCH_SIZE = 64
# The heat-map layer's longest side. Grad-CAM's map comes from a 10 x 10 feature grid of a
# 160 x 160 input, so 256 px already holds all it says; the portal stretches it over the
# scan. At 512 px the PNG cost about 45 ms a slice, most of a batched slice's time.
LAYER_MAX_SIDE = 256
# zlib's fastest level: about 3x quicker than the default 6 for a layer about a third larger.
LAYER_PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class Classification:
    """What the model says about one slice.

    `needs_review` is the model's own decision rule (its metadata records the
    threshold), not something each caller derives from the probabilities.
    """

    label: str
    probabilities: dict[str, float]
    model_version: str
    inference_ms: float
    needs_review: bool = False
    # Set when the model's guard says the image is not a brain MRI slice: then there
    # is no answer, and `label` must not be shown to anyone.
    refusal: str | None = None


@dataclass(frozen=True)
class Explanation:
    heatmap: np.ndarray  # (height, width) float32 in [0, 1], the model input's size
    geometry: Geometry  # how the model input was cut from the original
    # A transparent RGBA PNG with the original's proportions (`heatmap_layer_png`):
    # stretched over the original at any size, it lies exactly on what the model saw.
    layer_png: bytes


# One image's answer from `explain_many`: the result, or the error that stopped that image only.
ExplainOutcome = tuple[Classification, Explanation] | InvalidImageError | NotBrainMRIError


def _with_time(outcome: ExplainOutcome, inference_ms: float) -> ExplainOutcome:
    if isinstance(outcome, Exception):
        return outcome
    classification, explanation = outcome
    return dataclasses.replace(classification, inference_ms=round(inference_ms, 2)), explanation


_configured = False


def configure_tensorflow() -> None:
    """Set up TensorFlow for this process; call before any TensorFlow op, once per process.

    GPU memory growth stops one process from reserving the whole card, so several
    worker processes (or a worker and a training job) can share it.
    """
    global _configured
    if _configured:
        return
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    if threads := os.environ.get("TF_INTRA_OP_THREADS"):
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
    _configured = True


class InferenceEngine:
    def __init__(
        self,
        model: Any,
        metadata: dict[str, Any],
        guard: Guard | None = None,
        litert: LiteRTRunner | CascadeRunner | None = None,
        tensorflow: TensorFlowOptions | None = None,
    ) -> None:
        """`litert`, if given, computes the probabilities (`ml.runtimes.LiteRTRunner`, or
        `CascadeRunner` for a cascade); the Keras `model` then only explains (Grad-CAM).
        Otherwise TensorFlow does, with `tensorflow`'s options (the model already cloned
        for mixed precision when they ask for it: `ml.model.for_serving`)."""
        import tensorflow as tf

        from ml.model import LAST_CONV_LAYER
        from ml.runtimes import TensorFlowOptions

        self.model = model
        self._litert = litert
        self._tensorflow = tensorflow or TensorFlowOptions()
        self.runtime = "litert" if litert is not None else self._tensorflow.name
        self.metadata = metadata
        self.version: str = metadata["version"]
        self.class_names: tuple[str, ...] = tuple(metadata["class_names"])
        self.config = PreprocessConfig.from_metadata(metadata["preprocessing"])
        self.decision = DecisionRule.from_metadata(metadata)
        self.guard = guard
        signature = [tf.TensorSpec([None, *self.config.input_size, self.config.channels],
                                   tf.float32)]  # fmt: skip
        self._forward = tf.function(
            lambda x: model(x, training=False),
            input_signature=signature,
            jit_compile=self._tensorflow.xla,
        )
        explainers = [
            _keras().Model(inner.inputs, [inner.get_layer(LAST_CONV_LAYER).output, inner.output])
            for inner in _explained_models(model, LAST_CONV_LAYER)
        ]
        target_spec = tf.TensorSpec([None], tf.int32)
        self._gradcam = tf.function(
            lambda x, target: _gradcam(explainers, x, target),
            input_signature=[*signature, target_spec],
        )
        self._pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
        # The softmax kernels of the networks whose activations the served LiteRT call
        # returns (`ml.runtimes.explaining_network`): Grad-CAM then needs no TensorFlow pass.
        self._head_kernels: list[np.ndarray] | None = None
        if litert is not None and litert.explains:
            self._head_kernels = _head_kernels(model)

    @classmethod
    def load(cls, artefact_dir: Path | str) -> InferenceEngine:
        """Load an artefact folder (model.keras + metadata.json) and warm it up."""
        folder = Path(artefact_dir)
        if not (folder / MODEL_FILE).is_file() or not (folder / METADATA_FILE).is_file():
            raise ModelNotFoundError(f"{folder} holds no {MODEL_FILE} and {METADATA_FILE}")
        from ml.model import for_serving  # also registers the custom layers

        model = _keras().saving.load_model(folder / MODEL_FILE, compile=False)
        metadata = json.loads((folder / METADATA_FILE).read_text())
        from ml.runtimes import TensorFlowOptions, serving_runtime

        litert = serving_runtime(folder, metadata)
        options = TensorFlowOptions.from_environment() if litert is None else None
        served = for_serving(model, mixed_precision=bool(options and options.mixed_precision))
        engine = cls(served, metadata, Guard.load(folder, metadata), litert, options)
        engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """Trace the compiled calls now, so the first real scan is not slow."""
        blank = np.zeros((1, *self.config.input_size, self.config.channels), np.float32)
        self._run_raw(blank)
        if self._head_kernels is None:
            self._gradcam(blank, np.zeros(1, np.int32))
        if self.guard is not None:
            self.guard.scores(blank)

    def predict(self, images: Sequence[bytes]) -> list[Classification]:
        """Classify encoded images (any size or mode) in batches.

        Decoding runs in a thread pool while the model works on the previous batch.
        Raises `InvalidImageError` for the first image that cannot be decoded. An image
        the guard refuses gets a `Classification` whose `refusal` says why.
        """
        started = time.perf_counter()
        probabilities, refusals = [], []
        for offset, batch in self._batches(images):
            probabilities += list(self._run(batch))
            refusals += self._refusals(images[offset : offset + len(batch)], batch)
        per_image_ms = (time.perf_counter() - started) * 1000 / max(1, len(images))
        return [
            self._prediction(row, per_image_ms, refusal)
            for row, refusal in zip(probabilities, refusals, strict=True)
        ]

    def _refusals(self, images: Sequence[bytes], batch: np.ndarray) -> list[str | None]:
        if self.guard is None:
            return [None] * len(batch)
        return self.guard.refusals(images, batch)

    def predict_arrays(self, batch: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Return probabilities (n, classes) for preprocessed float32 (n, h, w, c) images.

        Calibrated by the model's decision rule unless `calibrated` is False (to fit it).
        """
        run = self._run if calibrated else self._run_raw
        if not len(batch):
            return np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate([run(batch[i : i + BATCH_SIZE])
                               for i in range(0, len(batch), BATCH_SIZE)])  # fmt: skip

    def explain(self, image: bytes, label: str | None = None) -> tuple[Classification, Explanation]:
        """Classify one image and return where the model looked for `label` (Grad-CAM).

        Raises `InvalidImageError` for an image that cannot be decoded and
        `NotBrainMRIError` when the model's guard refuses it. By default the label
        explained is the one served, which for an ensemble may differ from what any one
        member would say on its own.
        """
        outcome = self.explain_many([image], labels=[label])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def explain_many(
        self, images: Sequence[bytes], labels: Sequence[str | None] | None = None
    ) -> list[ExplainOutcome]:
        """Classify and explain a batch of encoded images; one outcome per image, in order.

        An image's outcome is (Classification, Explanation), or the error that stops
        only that image: `InvalidImageError` (cannot be decoded) or `NotBrainMRIError`
        (the guard refuses it). Decoding runs in the engine's thread pool; the valid
        images go through the model in one forward call and one Grad-CAM pass per
        BATCH_SIZE chunk, and each heat-map layer is drawn in its original's geometry.
        `inference_ms` is each image's share of the batch's time.
        """
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        started = time.perf_counter()
        decoded = list(self._pool.map(self._decode_with_geometry, images))
        outcomes: list[ExplainOutcome | None] = [
            item if isinstance(item, InvalidImageError) else None for item in decoded
        ]
        valid = [index for index, item in enumerate(decoded) if not isinstance(item, Exception)]
        for offset in range(0, len(valid), BATCH_SIZE):
            chunk = valid[offset : offset + BATCH_SIZE]
            inputs = [decoded[index] for index in chunk]
            explained = self._explain_decoded(
                [images[index] for index in chunk],
                [item for item in inputs if not isinstance(item, Exception)],
                [labels[index] if labels else None for index in chunk],
            )
            for index, outcome in zip(chunk, explained, strict=True):
                outcomes[index] = outcome
        per_image_ms = (time.perf_counter() - started) * 1000 / max(1, len(images))
        return [_with_time(outcome, per_image_ms) for outcome in outcomes if outcome is not None]

    def _decode_with_geometry(
        self, image: bytes
    ) -> tuple[np.ndarray, Geometry] | InvalidImageError:
        try:
            return preprocess_bytes_with_geometry(image, self.config)
        except InvalidImageError as exc:
            return exc
        except Exception as exc:
            # Whatever a decoder raises about one image must not sink the others of its batch.
            return InvalidImageError(f"the image cannot be decoded ({type(exc).__name__}: {exc})")

    def _explain_decoded(
        self,
        images: list[bytes],
        inputs: list[tuple[np.ndarray, Geometry]],
        labels: list[str | None],
    ) -> list[ExplainOutcome]:
        """Guard, classify and explain decoded images (at most BATCH_SIZE) as one batch."""
        batch = np.stack([array for array, _ in inputs])
        refusals = self._refusals(images, batch)
        kept = [index for index, refusal in enumerate(refusals) if refusal is None]
        outcomes: list[ExplainOutcome] = [NotBrainMRIError(refusal or "") for refusal in refusals]
        if not kept:
            return outcomes
        batch = batch[kept]
        probabilities, networks = self._classify_for_maps(batch)
        targets = np.array(
            [self._class_index(label) if label else int(np.argmax(row))
             for label, row in zip([labels[i] for i in kept], probabilities, strict=True)],
            np.int32,
        )  # fmt: skip
        heatmaps = self._heatmaps(batch, targets, networks)
        geometries = [inputs[index][1] for index in kept]
        layers = self._pool.map(heatmap_layer_png, heatmaps, geometries)
        for index, row, heatmap, geometry, layer in zip(
            kept, probabilities, heatmaps, geometries, layers, strict=True
        ):
            explanation = Explanation(heatmap=heatmap, geometry=geometry, layer_png=layer)
            outcomes[index] = (self._prediction(row, 0.0), explanation)
        return outcomes

    def _classify_for_maps(
        self, batch: np.ndarray
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]] | None]:
        """Calibrated probabilities and, when the served call returns them, each network's
        (probabilities, last activations) for the closed-form Grad-CAM."""
        if self._head_kernels is None or self._litert is None:
            return self._run(batch), None
        raw, networks = self._litert.explain(batch.astype(np.float32, copy=False))
        return self.decision.calibrate(raw), networks

    def _heatmaps(
        self,
        batch: np.ndarray,
        targets: np.ndarray,
        networks: list[tuple[np.ndarray, np.ndarray]] | None,
    ) -> np.ndarray:
        """Grad-CAM maps (n, h, w) at the input's size, averaged over the networks that ran."""
        if networks is None or self._head_kernels is None:
            return np.asarray(self._gradcam(batch, targets))
        cams = [
            closed_form_cams(activations, probabilities, kernel, targets)
            for (probabilities, activations), kernel in zip(
                networks, self._head_kernels, strict=True
            )
        ]
        height, width = self.config.input_size
        # A cascade's member that did not run on an image reports NaN there (CascadeRunner).
        return resize_bilinear(np.nanmean(cams, axis=0), (height, width))

    def _class_index(self, label: str) -> int:
        if label not in self.class_names:
            raise ValueError(f"unknown label {label!r}; the model knows {list(self.class_names)}")
        return self.class_names.index(label)

    def _batches(self, images: Sequence[bytes]) -> Iterator[tuple[int, np.ndarray]]:
        """(offset of the batch's first image, preprocessed batch)."""
        arrays = self._pool.map(lambda data: preprocess_bytes(data, self.config), images)
        batch: list[np.ndarray] = []
        offset = 0
        for array in arrays:
            batch.append(array)
            if len(batch) == BATCH_SIZE:
                yield offset, np.stack(batch)
                offset += len(batch)
                batch = []
        if batch:
            yield offset, np.stack(batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.decision.calibrate(self._run_raw(batch))

    def _run_raw(self, batch: np.ndarray) -> np.ndarray:
        if self._litert is not None:
            return self._litert(batch.astype(np.float32, copy=False))
        inputs = batch.astype(np.float32, copy=False)
        if self._tensorflow.xla:
            # XLA compiles once per batch shape: a power of two bounds them to a handful.
            inputs = _padded_to_power_of_two(inputs)
        probabilities: np.ndarray = self._forward(inputs).numpy()[: len(batch)]
        return probabilities

    def _prediction(
        self, row: np.ndarray, inference_ms: float, refusal: str | None = None
    ) -> Classification:
        probabilities = {name: float(p) for name, p in zip(self.class_names, row, strict=True)}
        return Classification(
            label=self.class_names[int(np.argmax(row))],
            probabilities=probabilities,
            model_version=self.version,
            inference_ms=round(inference_ms, 2),
            needs_review=bool(self.decision.needs_review(row[np.newaxis])[0]),
            refusal=refusal,
        )


def _padded_to_power_of_two(batch: np.ndarray) -> np.ndarray:
    size = 1 << max(0, len(batch) - 1).bit_length()
    if size == len(batch):
        return batch
    padding = np.zeros((size - len(batch), *batch.shape[1:]), batch.dtype)
    return np.concatenate([batch, padding])


def _explained_models(model: Any, layer_name: str) -> list[Any]:
    """Return the models whose `layer_name` Grad-CAM reads: the model, or an ensemble's members
    (in their order)."""
    from ml.ensemble import ensemble_members

    if layer_name in {layer.name for layer in model.layers}:
        return [model]
    members = [
        layer
        for layer in ensemble_members(model)
        if hasattr(layer, "get_layer") and layer_name in {inner.name for inner in layer.layers}
    ]
    if not members:
        raise ValueError(f"no layer named {layer_name!r} to explain the prediction with")
    return members


def _head_kernels(model: Any) -> list[np.ndarray]:
    """The softmax kernel of each network Grad-CAM explains, for the closed form."""
    from ml.model import LAST_CONV_LAYER

    kernels = [softmax_head_kernel(inner, LAST_CONV_LAYER)
               for inner in _explained_models(model, LAST_CONV_LAYER)]  # fmt: skip
    if any(kernel is None for kernel in kernels):
        raise ValueError(
            "the LiteRT conversion returns activations for Grad-CAM, but a network's head "
            "allows no closed form: convert it again with python -m ml litert"
        )
    return [kernel for kernel in kernels if kernel is not None]


def _keras() -> Any:
    import keras

    return keras


def _gradcam(explainers: list[Any], batch: Any, target: Any) -> Any:
    """Return heat maps in [0, 1] at the input's size, for class `target` of each image.

    With several explainers (an ensemble's members) their maps are averaged: each
    shows where that member found evidence for the served label.
    """
    import tensorflow as tf

    cams = []
    for explainer in explainers:
        with tf.GradientTape() as tape:
            activations, probabilities = explainer(batch, training=False)
            score = tf.gather(probabilities, target, axis=1, batch_dims=1)
        gradients = tape.gradient(score, activations)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1, keepdims=True))
        cams.append(cam / (tf.reduce_max(cam, axis=(1, 2, 3), keepdims=True) + 1e-8))
    cam = tf.add_n(cams) / len(cams)
    cam = tf.image.resize(cam, tf.shape(batch)[1:3], method="bilinear")
    return cam[:, :, :, 0]


def heatmap_layer_png(
    heatmap: np.ndarray, geometry: Geometry, max_side: int = LAYER_MAX_SIDE
) -> bytes:
    """Return the heat map as a transparent PNG in the original image's coordinates.

    The map over the model input is carried back through the crop, pad and resize
    (`Geometry.to_source`), so the layer has the original's proportions (its longest
    side at most `max_side`) and is drawn over it, not over the model's cropped view.
    Colour and opacity both grow with the weight: cold areas stay see-through.

    The map is quantised to 256 steps, each with its own colour and opacity, so the PNG
    stores one palette index per pixel with an RGBA palette (PLTE and tRNS): the same
    pixels as a truecolour-and-alpha PNG, in a quarter of the data, about 5x faster to
    write (0.9 against 4.9 ms for 256 x 230) and a quarter smaller.
    """
    values = np.clip(geometry.to_source(heatmap, geometry.source_size_within(max_side)), 0, 1)
    steps = np.ascontiguousarray((values * 255).astype(np.uint8))
    layer = Image.frombytes("P", (steps.shape[1], steps.shape[0]), steps.tobytes())
    layer.putpalette(_LAYER_PALETTE, rawmode="RGBA")
    buffer = io.BytesIO()
    layer.save(buffer, format="PNG", compress_level=LAYER_PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _colour_map(values: np.ndarray) -> np.ndarray:
    """Blue -> cyan -> yellow -> red, like the "jet" map radiologists know from Grad-CAM papers."""
    red = np.clip(1.5 - np.abs(4 * values - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * values - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * values - 1), 0, 1)
    return np.stack([red, green, blue], axis=-1) * 255


def _layer_colours() -> np.ndarray:
    """uint8 (256, 4): the RGBA of each weight 0..255; colour and opacity grow together."""
    levels = np.arange(256, dtype=np.float32) / 255
    return np.concatenate([_colour_map(levels), (levels * 255)[:, np.newaxis]], axis=-1).astype(
        np.uint8
    )


_LAYER_PALETTE = _layer_colours().tobytes()
