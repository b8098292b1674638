"""CPU runtimes for a trained network: TensorFlow, or LiteRT (float32, int8) with XNNPACK.

`python -m ml bench --runtimes` converts the served network with TFLiteConverter,
runs it with LiteRT's XNNPACK kernels (`ai-edge-litert`) and prints images per
second at a few batch sizes and how far each runtime's probabilities stray from
Keras's. `python -m ml litert` writes the float32 conversion into an artefact
(`model.tflite`), checked against Keras on its validation slices; CPU workers then
serve it (see `serving_runtime`). Where every network's head allows it
(`ml.gradcam.softmax_head_kernel`), the conversion also returns each member's last
activations and probabilities, so the worker draws Grad-CAM from the same call
(`explaining_network`); otherwise Grad-CAM runs on the Keras model. A cascade
(`ml.cascade`) converts into two: its first member, run on every slice, and the other
passes (`escalation.tflite`), run only on the slices the first member is unsure of
(`CascadeRunner`).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.registry import METADATA_FILE, MODEL_FILE

BATCH_SIZES = (16, 32)
REPRESENTATIVE_IMAGES = 200
LITERT_FILE = "model.tflite"
ESCALATION_FILE = "escalation.tflite"  # a cascade's other passes
# Served probabilities may differ from Keras's by at most this much (float32, measured
# 1e-7 to 1e-6: XNNPACK sums in another order); `ml litert` refuses a conversion beyond it.
PARITY_TOLERANCE = 1e-4
RUNTIME_ENV = "ML_RUNTIME"  # auto (default), tensorflow or litert
XLA_ENV = "ML_TF_XLA"  # 1: TensorFlow compiles the forward pass with XLA
MIXED_PRECISION_ENV = "ML_TF_MIXED_PRECISION"  # 1: convolutions in float16
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class TensorFlowOptions:
    """How TensorFlow serves where it does (GPU workers): XLA, mixed precision.

    Both off by default: they are for GPUs, and no GPU has measured them here yet
    (`scripts/bench_tensorflow.py` does; docs/model-lifecycle.md, "Serving runtime").
    """

    xla: bool = False
    mixed_precision: bool = False

    @classmethod
    def from_environment(cls) -> TensorFlowOptions:
        return cls(xla=_flag(XLA_ENV), mixed_precision=_flag(MIXED_PRECISION_ENV))

    @property
    def name(self) -> str:
        """`tensorflow`, with `+xla` and `+mixed_float16` when they are on."""
        parts = [
            "tensorflow",
            "xla" if self.xla else "",
            "mixed_float16" if self.mixed_precision else "",
        ]
        return "+".join(part for part in parts if part)


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(f"{name} must be 1 or 0, not {value!r}")
    return value in _TRUE


def tflite_bytes(
    model: Any, representative: np.ndarray | None = None, dynamic_range: bool = False
) -> bytes:
    """Return `model` converted to a LiteRT flatbuffer: float32 unless told otherwise.

    With `representative` (n, h, w, c) float32 slices, weights and activations are
    quantised to int8 (inputs and outputs stay float32, ops without an int8 kernel
    stay float); with `dynamic_range`, only the weights (activations stay float).
    """
    import tensorflow as tf

    # From the Keras model: a concrete function would keep its weights as resource
    # variables, which the int8 calibrator cannot read.
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None or dynamic_range:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if representative is not None:

        def samples() -> Iterator[list[np.ndarray]]:
            for image in representative:
                yield [image[np.newaxis].astype(np.float32)]

        converter.representative_dataset = samples
    converted: bytes = converter.convert()
    return converted


class LiteRTRunner:
    """Run a LiteRT flatbuffer on float32 batches with the XNNPACK delegate (LiteRT's default).

    One interpreter, resized when the batch size changes (cheap: measured no slower
    than a fixed size); a lock makes it safe to share between a worker's threads.
    """

    def __init__(
        self, flatbuffer: bytes, threads: int | None = None, explains: dict[str, Any] | None = None
    ) -> None:
        """`explains`: the layout of an `explaining_network` conversion (metadata), if it is one."""
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
        self._lock = threading.Lock()
        self.explains = explains

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Return probabilities (n, classes) for a float32 (n, h, w, c) batch."""
        rows = self._invoke(batch)
        return rows if self.explains is None else rows[:, : int(self.explains["classes"])]

    def explain(self, batch: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """Probabilities and, per network, its probabilities and last activations
        (`split_explaining`), from one call; only for an `explaining_network` conversion."""
        if self.explains is None:
            raise ValueError("this LiteRT model returns probabilities only (python -m ml litert)")
        return split_explaining(self._invoke(batch), self.explains)

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            if len(batch) != self._batch:
                self._interpreter.resize_tensor_input(self._input, list(batch.shape))
                self._interpreter.allocate_tensors()
                self._batch = len(batch)
            self._interpreter.set_tensor(self._input, batch.astype(np.float32, copy=False))
            self._interpreter.invoke()
            result: np.ndarray = self._interpreter.get_tensor(self._output).copy()
        return result


def export_litert(artefact_dir: Path, images: np.ndarray) -> dict[str, Any]:
    """Write `model.tflite` (float32) into the artefact and its parity with Keras into metadata.

    Parity is measured on `images` (n, h, w, c) float32, the model's validation
    slices; raises ValueError, writing nothing, if any probability differs from
    Keras's by more than PARITY_TOLERANCE. Return the metadata entry.
    """
    import keras

    from ml.model import for_serving

    folder = Path(artefact_dir)
    model = keras.saving.load_model(folder / MODEL_FILE, compile=False)
    served_model = for_serving(model)
    stages = cascade_stages(served_model)
    if stages is not None:
        (first, layout), (escalation, escalation_layout), cascade = stages
        flatbuffer, escalation_flatbuffer = tflite_bytes(first), tflite_bytes(escalation)
        explaining: tuple[Any, dict[str, Any]] | None = (first, layout)
        cascade["explains"] = escalation_layout
        runner: LiteRTRunner | CascadeRunner = CascadeRunner(
            LiteRTRunner(flatbuffer, os.cpu_count(), layout),
            LiteRTRunner(escalation_flatbuffer, os.cpu_count(), escalation_layout),
            cascade,
        )
    else:
        explaining = explaining_network(served_model)
        flatbuffer = tflite_bytes(served_model if explaining is None else explaining[0])
        runner = LiteRTRunner(
            flatbuffer, os.cpu_count(), None if explaining is None else explaining[1]
        )
    reference = np.asarray(model.predict(images, batch_size=64, verbose=0))
    served = np.concatenate([runner(images[i : i + 64]) for i in range(0, len(images), 64)])
    difference = float(np.abs(served - reference).max())
    if difference > PARITY_TOLERANCE:
        raise ValueError(f"LiteRT differs from Keras by {difference:.2g} > {PARITY_TOLERANCE}")
    entry = {
        "file": LITERT_FILE,
        "precision": "float32",
        "keras_sha256": _sha256(folder / MODEL_FILE),
        "parity": {
            "images": len(images),
            "max_abs_diff": difference,
            "label_agreement": float(np.mean(served.argmax(1) == reference.argmax(1))),
            "tolerance": PARITY_TOLERANCE,
        },
    }
    if explaining is not None:
        entry["explains"] = explaining[1]
    if stages is not None:
        entry["cascade"] = {**cascade, "file": ESCALATION_FILE}
        (folder / ESCALATION_FILE).write_bytes(escalation_flatbuffer)
    (folder / LITERT_FILE).write_bytes(flatbuffer)
    metadata_path = folder / METADATA_FILE
    metadata = json.loads(metadata_path.read_text())
    metadata["litert"] = entry
    metadata_path.write_text(json.dumps(metadata, indent=2))
    return entry


def explaining_network(model: Any) -> tuple[Any, dict[str, Any]] | None:
    """Return `model` (as served) rebuilt to output, in one row per image, its probabilities,
    then for each network it averages that network's probabilities on the unmirrored image
    and its last activations (flattened); and that layout. None when a head does not allow
    the closed-form Grad-CAM, or `model` is neither one network nor `build_ensemble`'s."""
    import keras
    from keras import layers

    from ml.cascade import cascade_of
    from ml.ensemble import ensemble_members
    from ml.gradcam import softmax_head_kernel
    from ml.model import LAST_CONV_LAYER, HorizontalFlip

    if cascade_of(model) is not None:
        return None  # two conversions: `cascade_stages`
    names = {layer.name for layer in model.layers}
    if LAST_CONV_LAYER in names:
        networks, mirror = [model], False
    else:
        networks = ensemble_members(model)
        mirror = any(isinstance(layer, HorizontalFlip) for layer in model.layers)
    if not networks or any(softmax_head_kernel(n, LAST_CONV_LAYER) is None for n in networks):
        return None
    inputs = keras.Input(model.input_shape[1:], name="image")
    averaged, parts = _explained_passes(inputs, networks, mirror)
    served = layers.Average()(averaged) if len(averaged) > 1 else averaged[0]
    rebuilt = keras.Model(inputs, layers.Concatenate()([served, *parts]), name="explaining")
    return rebuilt, _layout(served, networks)


def _explained_passes(
    inputs: Any, networks: list[Any], mirror: bool, skipped: Any = None
) -> tuple[list[Any], list[Any]]:
    """The probabilities of each network on the image (but `skipped`'s) and, with `mirror`,
    on its mirror, in `build_ensemble`'s order so the sums agree; and, for each network
    that ran on the image, its probabilities and flattened last activations."""
    import keras
    from keras import layers

    from ml.model import LAST_CONV_LAYER, HorizontalFlip

    mirrored = HorizontalFlip(name="mirror")(inputs) if mirror else None
    passes, parts = [], []
    for network in networks:
        if network is not skipped:
            explainer = keras.Model(
                network.inputs, [network.get_layer(LAST_CONV_LAYER).output, network.output]
            )
            activations, probabilities = explainer(inputs)
            passes.append(probabilities)
            parts += [probabilities, layers.Flatten()(activations)]
        if mirrored is not None:
            passes.append(network(mirrored))
    return passes, parts


def _layout(served: Any, networks: list[Any]) -> dict[str, Any]:
    from ml.model import LAST_CONV_LAYER

    shape = [int(d) for d in networks[0].get_layer(LAST_CONV_LAYER).output.shape[1:]]
    return {"classes": int(served.shape[-1]), "networks": len(networks), "activations": shape}


def cascade_stages(model: Any) -> tuple[Any, Any, dict[str, Any]] | None:
    """For a cascade (`ml.cascade`, as served): (first member's `explaining_network`,
    layout), (the escalation network and its layout), and what `CascadeRunner` needs;
    None for any other model. The escalation network returns, per image, the sum of the
    probabilities of every pass but the first member's, then each other member's
    probabilities and last activations."""
    import keras
    from keras import layers

    from ml.cascade import cascade_of
    from ml.gradcam import softmax_head_kernel
    from ml.model import LAST_CONV_LAYER

    found = cascade_of(model)
    if found is None:
        return None
    members, first, margin, mirror = found
    if any(softmax_head_kernel(member, LAST_CONV_LAYER) is None for member in members):
        raise ValueError("a cascade's networks must allow the closed-form Grad-CAM")
    first_stage = explaining_network(members[first])
    if first_stage is None:
        raise ValueError("the cascade's first member cannot be converted with its activations")
    others = [member for index, member in enumerate(members) if index != first]
    inputs = keras.Input(model.input_shape[1:], name="image")
    passes, parts = _explained_passes(inputs, members, mirror, skipped=members[first])
    total = layers.Add()(passes) if len(passes) > 1 else passes[0]
    escalation = keras.Model(inputs, layers.Concatenate()([total, *parts]), name="escalation")
    cascade = {
        "margin": margin,
        "first_member": first,
        "members": len(members),
        "passes": len(passes) + 1,
    }
    return first_stage, (escalation, _layout(total, others)), cascade


class CascadeRunner:
    """Serve a cascade with two LiteRT models: its first member on every slice, and the
    other passes only on the slices whose first-member margin is at or below the cut,
    whose probabilities are then the ensemble's average. `explain` reports, for each
    member, its probabilities and activations, NaN in the rows it did not run on."""

    def __init__(self, first: LiteRTRunner, escalation: LiteRTRunner, cascade: dict[str, Any]):
        self._first, self._escalation = first, escalation
        self.margin = float(cascade["margin"])
        self.first_member = int(cascade["first_member"])
        self.members = int(cascade["members"])
        self.passes = int(cascade["passes"])
        self.explains = first.explains

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Return probabilities (n, classes) for a float32 (n, h, w, c) batch."""
        return self.explain(batch)[0]

    def explain(self, batch: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        from ml.cascade import escalates

        served, [(alone, activations)] = self._first.explain(batch)
        networks = [
            (np.full_like(alone, np.nan), np.full_like(activations, np.nan))
            for _ in range(self.members)
        ]
        networks[self.first_member] = (alone, activations)
        escalated = escalates(alone, self.margin)
        if not escalated.any():
            return served, networks
        served = served.copy()
        rest, others = self._escalation.explain(batch[escalated])
        served[escalated] = (alone[escalated] + rest) / self.passes
        other_members = [index for index in range(self.members) if index != self.first_member]
        for index, (probabilities, maps) in zip(other_members, others, strict=True):
            networks[index][0][escalated] = probabilities
            networks[index][1][escalated] = maps
        return served, networks


def split_explaining(
    rows: np.ndarray, layout: dict[str, Any]
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Split `explaining_network`'s output (n, width) into the probabilities (n, classes) and,
    per network, (its probabilities (n, classes), its activations (n, h, w, channels))."""
    classes = int(layout["classes"])
    height, width, channels = layout["activations"]
    size = height * width * channels
    networks, offset = [], classes
    for _ in range(int(layout["networks"])):
        probabilities = rows[:, offset : offset + classes]
        activations = rows[:, offset + classes : offset + classes + size]
        networks.append((probabilities, activations.reshape(len(rows), height, width, channels)))
        offset += classes + size
    if offset != rows.shape[1]:
        raise ValueError(f"the LiteRT model returns {rows.shape[1]} values per image, "
                         f"its metadata describes {offset}")  # fmt: skip
    return rows[:, :classes], networks


def serving_runtime(
    artefact_dir: Path, metadata: dict[str, Any]
) -> LiteRTRunner | CascadeRunner | None:
    """Return the LiteRT runner to serve with, or None for TensorFlow.

    `ML_RUNTIME=auto` (default): LiteRT where it wins, a CPU-only host whose artefact
    holds a `model.tflite` converted from this very `model.keras`; TensorFlow on a
    GPU, or when LiteRT is missing or the conversion absent or stale.
    `ML_RUNTIME=tensorflow` always TensorFlow; `ML_RUNTIME=litert` LiteRT or an error.
    """
    choice = os.environ.get(RUNTIME_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "tensorflow", "litert"):
        raise ValueError(f"{RUNTIME_ENV} must be auto, tensorflow or litert, not {choice!r}")
    if choice == "tensorflow":
        return None
    problem = _why_not_litert(Path(artefact_dir), metadata, gpu_counts=choice == "auto")
    if problem is None:
        entry = metadata["litert"]
        flatbuffer = (Path(artefact_dir) / LITERT_FILE).read_bytes()
        runner = LiteRTRunner(flatbuffer, _threads(), entry.get("explains"))
        if "cascade" not in entry:
            return runner
        escalation = (Path(artefact_dir) / entry["cascade"]["file"]).read_bytes()
        return CascadeRunner(
            runner,
            LiteRTRunner(escalation, _threads(), entry["cascade"]["explains"]),
            entry["cascade"],
        )
    if choice == "litert":
        raise ValueError(f"{RUNTIME_ENV}=litert, but {problem}")
    return None


def _why_not_litert(folder: Path, metadata: dict[str, Any], gpu_counts: bool) -> str | None:
    entry = metadata.get("litert")
    if not entry or not (folder / LITERT_FILE).is_file():
        return f"{folder.name} holds no {LITERT_FILE} (python -m ml litert)"
    if entry.get("keras_sha256") != _sha256(folder / MODEL_FILE):
        return f"{folder / LITERT_FILE} was converted from another {MODEL_FILE}"
    if "cascade" in entry and not (folder / entry["cascade"]["file"]).is_file():
        return f"{folder.name} holds no {entry['cascade']['file']} (python -m ml litert)"
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return "ai-edge-litert is not installed"
    if gpu_counts:
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return "a GPU is visible (TensorFlow serves there)"
    return None


def _threads() -> int | None:
    threads = os.environ.get("TF_INTRA_OP_THREADS")  # the same knob as TensorFlow's
    return int(threads) if threads else os.cpu_count()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def validation_images(
    artefact_dir: Path, folders: Sequence[Path], config: Any, metadata: dict[str, Any]
) -> np.ndarray:
    """Return the model's validation slices (n, h, w, c) float32 from its training folders."""
    from ml.data import load_dataset
    from ml.sources import held_out_part

    parts = []
    for folder in folders:
        dataset = load_dataset(Path(folder), config, Path("artifacts/cache"))
        validation = held_out_part(dataset, metadata, "validation")
        if validation is None:
            raise ValueError(f"{folder} is not one of the folders {artefact_dir} was trained on")
        parts.append(dataset.images[validation])
    return np.concatenate(parts)


def compare(
    model: Any,
    reference: np.ndarray,
    images: np.ndarray,
    representative: np.ndarray,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    """Per runtime: images/s at each batch size and agreement with `reference` on `images`.

    `model` is the network as served (`for_serving`), `reference` the saved Keras
    model's probabilities (n, classes) for `images`. The runtimes take turns within
    each repeat, so a busy machine slows them alike; each figure is the median.
    """
    import os

    import tensorflow as tf

    threads = os.cpu_count() or 1
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    runtimes: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "tensorflow (tf.function)": lambda batch: np.asarray(forward(batch)),
        "litert float32": LiteRTRunner(tflite_bytes(model), threads),
        "litert int8 (full)": LiteRTRunner(tflite_bytes(model, representative), threads),
        "litert int8 weights": LiteRTRunner(tflite_bytes(model, dynamic_range=True), threads),
    }
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeats):
        for name, run in runtimes.items():
            for size in BATCH_SIZES:
                rates.setdefault((name, size), []).append(_rate(run, images, size))
    rows = []
    for name, run in runtimes.items():
        row: dict[str, Any] = {"runtime": name}
        for size in BATCH_SIZES:
            row[f"images_per_s_batch_{size}"] = statistics.median(rates[name, size])
        answers = np.concatenate([run(images[i : i + 32]) for i in range(0, len(images), 32)])
        row["max_abs_diff"] = float(np.abs(answers - reference).max())
        row["label_agreement"] = float(np.mean(answers.argmax(1) == reference.argmax(1)))
        rows.append(row)
    return rows


def _rate(run: Callable[[np.ndarray], np.ndarray], images: np.ndarray, size: int) -> float:
    """Images per second over all of `images` in batches of `size` (after one warm-up batch)."""
    batches = [images[i : i + size] for i in range(0, len(images) - size + 1, size)]
    run(batches[0])  # warm up: trace, allocate, pack weights
    started = time.perf_counter()
    for batch in batches:
        run(batch)
    return size * len(batches) / (time.perf_counter() - started)


def format_rows(rows: list[dict[str, Any]]) -> str:
    sizes = "  ".join(f"batch {size:>2} img/s" for size in BATCH_SIZES)
    lines = [f"{'runtime':<26}{sizes}  max |p - keras|  label agreement"]
    for row in rows:
        rates = "  ".join(f"{row[f'images_per_s_batch_{size}']:>14.1f}" for size in BATCH_SIZES)
        lines.append(f"{row['runtime']:<26}{rates}  {row['max_abs_diff']:>15.5f}  "
                     f"{row['label_agreement']:>15.3f}")  # fmt: skip
    return "\n".join(lines)
