"""Train an architecture on a class-folder data set and write a versioned artefact."""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ml import augment
from ml.ensemble import MEMBER_PREFIX
from ml.evaluate import compute_metrics, format_report, write_reports
from ml.labels import CLASS_NAMES
from ml.model import build_model, estimate_flops, preprocess_config
from ml.registry import METADATA_FILE, MODEL_FILE, TRAINING_HISTORY_FILE
from ml.sources import Source, SplitOptions, load_sources


@dataclass(frozen=True)
class TrainingOptions:
    architecture: str = "mri_cnn"
    epochs: int = 60
    batch_size: int = 32
    val_fraction: float = 0.2
    # The split's seed is separate from the run's (initialisation, shuffling,
    # augmentation), so models trained with different seeds share one held-out
    # split and can be compared, or averaged into an ensemble, honestly.
    split_seed: int = 1337
    seed: int = 1337
    learning_rate: float = 2e-3
    label_smoothing: float = 0.1
    patience: int = 12
    cache_dir: Path | None = Path("artifacts/cache")
    input_size: tuple[int, int] | None = None  # (height, width); None: the architecture's
    calibration_fraction: float = 0.1
    sequence_randomisation: float = augment.SEQUENCE_RANDOMISATION
    guard: bool = True  # train the out-of-distribution guard after the model (minutes)
    # Start from a trained artefact's weights (of an ensemble, member `init_member`).
    init_from: Path | None = None
    init_member: int = 0
    # Knowledge distillation from a trained artefact (an ensemble, say); see ml/distill.py.
    distill_from: Path | None = None
    distill_temperature: float = 2.0
    distill_weight: float = 0.7

    def __post_init__(self) -> None:
        if self.distill_temperature <= 0:
            raise ValueError(
                f"distillation temperature must be positive: {self.distill_temperature}"
            )
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"distillation weight must be between 0 and 1: {self.distill_weight}")

    def split(self) -> SplitOptions:
        return SplitOptions(self.val_fraction, self.calibration_fraction, self.split_seed)


def as_the_tutorial_trained(options: TrainingOptions) -> TrainingOptions:
    """The tutorial trained plainly: Adam at 1e-3, cross-entropy, no intensity tricks."""
    return dataclasses.replace(
        options, learning_rate=1e-3, label_smoothing=0.0, sequence_randomisation=0.0
    )


def train(data_dirs: Path | Sequence[Path], out_dir: Path, options: TrainingOptions) -> Path:
    """Train, evaluate on the held-out groups, and write `out_dir/<version>/`; return it.

    With several folders (sources), each is split on its own and training draws
    from every source equally often, so the larger one does not set the model's
    idea of what a scan looks like. Early stopping watches the calibration part,
    never the validation part that the reported figures come from.
    """
    keras.utils.set_random_seed(options.seed)
    config = preprocess_config(options.architecture, options.input_size)
    folders = [Path(data_dirs)] if isinstance(data_dirs, str | Path) else list(data_dirs)
    sources = load_sources(folders, config, options.split(), options.cache_dir)
    model = build_model(options.architecture, input_size=options.input_size)
    if options.init_from is not None:
        start_from(model, options.init_from, options.init_member)
    train_size = sum(len(source.train) for source in sources)
    steps = _steps(train_size, options.batch_size)
    trainee = _with_teacher(model, options, config)
    compile_model(trainee, options, steps=steps)
    watched = _watched_part(sources)
    started = time.monotonic()
    history = trainee.fit(
        training_pipeline(sources, options),
        steps_per_epoch=steps,
        validation_data=_batches(*_stack(sources, watched)),
        epochs=options.epochs,
        class_weight=_class_weights(sources, options),
        callbacks=_callbacks(options),
        shuffle=False,  # the pipeline shuffles, with the run's seed
        verbose=0,
    )
    seconds = time.monotonic() - started
    images, labels = _stack(sources, "validation")
    probabilities = model.predict(images, batch_size=128, verbose=0)
    metrics = compute_metrics(labels, probabilities)
    print(format_report(metrics), flush=True)
    folder = save_artefact(model, out_dir, options, sources, metrics, history.history, seconds)
    if watched == "calibration":
        from ml.finalize import calibrate

        calibrate(folder, folders, with_guard=options.guard)
    return folder


def start_from(model: keras.Model, artefact_dir: Path, member: int = 0) -> None:
    """Copy the weights of a trained artefact of the same architecture into `model`.

    Of an ensemble, its member number `member`. Fine-tuning a trained network with new
    augmentation is far cheaper than training from nothing on a 2-core CPU.
    """
    import ml.model  # noqa: F401  registers the custom layers

    trained = keras.saving.load_model(Path(artefact_dir) / MODEL_FILE, compile=False)
    if f"{MEMBER_PREFIX}{member}" in {layer.name for layer in trained.layers}:
        trained = trained.get_layer(f"{MEMBER_PREFIX}{member}")
    weights = trained.get_weights()
    if [w.shape for w in weights] != [w.shape for w in model.get_weights()]:
        raise ValueError(f"{artefact_dir} is not a {model.name} of the same input size")
    model.set_weights(weights)
    print(f"starting from the weights of {artefact_dir} (member {member})", flush=True)


def _with_teacher(model: keras.Model, options: TrainingOptions, config: Any) -> keras.Model:
    """Return `model`, or with `options.distill_from` a Distiller that trains it."""
    if options.distill_from is None:
        return model
    from ml.distill import Distiller, load_teacher

    teacher, metadata = load_teacher(options.distill_from)
    if metadata.get("preprocessing") != config.to_metadata():
        raise ValueError(
            f"{options.distill_from} was trained on other preprocessing "
            f"({metadata.get('preprocessing')}) than the student's ({config.to_metadata()})"
        )
    print(f"distilling {metadata.get('version')} at T={options.distill_temperature}, "
          f"weight {options.distill_weight}", flush=True)  # fmt: skip
    return Distiller(
        model, teacher, options.distill_temperature, options.distill_weight,
        options.label_smoothing,
    )  # fmt: skip


def _watched_part(sources: Sequence[Source]) -> str:
    return "calibration" if all(len(s.calibration) for s in sources) else "validation"


def _stack(sources: Sequence[Source], part: str) -> tuple[np.ndarray, np.ndarray]:
    indices = [getattr(source, part) for source in sources]
    images = np.concatenate([s.dataset.images[i] for s, i in zip(sources, indices, strict=True)])
    labels = np.concatenate([s.dataset.labels[i] for s, i in zip(sources, indices, strict=True)])
    return images, labels


def compile_model(model: keras.Model, options: TrainingOptions, steps: int) -> None:
    if options.architecture == "seed_cnn":
        optimizer: keras.optimizers.Optimizer = keras.optimizers.Adam(options.learning_rate)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            options.learning_rate, decay_steps=steps * options.epochs, alpha=0.02
        )
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing),
        metrics=["accuracy"],
    )


def training_pipeline(sources: Sequence[Source], options: TrainingOptions) -> Any:
    """Endless shuffled, augmented batches drawing on every source equally often.

    Augmentation runs in tf.data, overlapped with training.
    """
    augmenter = augment.for_architecture(
        options.architecture, options.seed, options.sequence_randomisation
    )
    streams = []
    for source in sources:
        images, labels = source.dataset.images[source.train], source.dataset.labels[source.train]
        stream = tf.data.Dataset.from_tensor_slices((images, _one_hot(labels)))
        stream = stream.shuffle(len(labels), seed=options.seed, reshuffle_each_iteration=True)
        streams.append(stream.repeat())
    pipeline = (
        streams[0]
        if len(streams) == 1
        else tf.data.Dataset.sample_from_datasets(
            streams, weights=[1 / len(streams)] * len(streams), seed=options.seed
        )
    )
    pipeline = pipeline.batch(options.batch_size)
    pipeline = pipeline.map(lambda x, y: (augmenter(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return pipeline.prefetch(tf.data.AUTOTUNE)


def _batches(images: np.ndarray, labels: np.ndarray) -> Any:
    pipeline = tf.data.Dataset.from_tensor_slices((images, _one_hot(labels)))
    return pipeline.batch(128).prefetch(tf.data.AUTOTUNE)


def _one_hot(labels: np.ndarray) -> np.ndarray:
    encoded: np.ndarray = np.eye(len(CLASS_NAMES), dtype=np.float32)[labels]
    return encoded


def _steps(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))


def _class_weights(sources: Sequence[Source], options: TrainingOptions) -> dict[int, float] | None:
    """Weight classes inversely to how often training sees them (sources drawn equally)."""
    if options.architecture == "seed_cnn":
        return None
    shares = [
        np.bincount(s.dataset.labels[s.train], minlength=len(CLASS_NAMES)) / max(1, len(s.train))
        for s in sources
    ]
    seen = np.mean(shares, axis=0).clip(min=1e-3)
    return {i: float(1 / (len(CLASS_NAMES) * share)) for i, share in enumerate(seen)}


class EpochLine(keras.callbacks.Callback):  # type: ignore[misc]  # Keras ships no types
    """One line per epoch: progress for a 2-core CPU run that takes minutes."""

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = logs or {}
        print(f"epoch {epoch + 1:3d}  loss {logs.get('loss', 0):.4f}  "
              f"acc {logs.get('accuracy', 0):.4f}  val_loss {logs.get('val_loss', 0):.4f}  "
              f"val_acc {logs.get('val_accuracy', 0):.4f}  "
              f"{time.monotonic() - self.started:.1f}s", flush=True)  # fmt: skip


def _callbacks(options: TrainingOptions) -> list[keras.callbacks.Callback]:
    return [
        EpochLine(),
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=options.patience, restore_best_weights=True
        ),
    ]


def save_artefact(
    model: keras.Model,
    out_dir: Path,
    options: TrainingOptions,
    sources: Sequence[Source],
    metrics: dict[str, Any],
    history: dict[str, list[float]],
    seconds: float,
) -> Path:
    created = datetime.now(UTC)
    version = f"{options.architecture}-{created:%Y%m%d-%H%M%S}"
    folder = Path(out_dir) / version
    folder.mkdir(parents=True)
    # Serving needs no optimizer state (two thirds of the file with AdamW): save the network.
    keras.Model(model.inputs, model.output, name=model.name).save(folder / MODEL_FILE)
    epochs_run = len(history.get("loss", []))
    metadata = build_metadata(
        model, version, options, sources, metrics, seconds, created, epochs_run
    )
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    clean_history = {key: [float(v) for v in values] for key, values in history.items()}
    (folder / TRAINING_HISTORY_FILE).write_text(json.dumps(clean_history, indent=2))
    write_reports(metrics, folder, prefix="validation_")
    print(f"wrote {folder}", flush=True)
    return folder


def build_metadata(
    model: keras.Model,
    version: str,
    options: TrainingOptions,
    sources: Sequence[Source],
    metrics: dict[str, Any] | None,
    seconds: float,
    created: datetime,
    epochs_run: int = 0,
) -> dict[str, Any]:
    config = preprocess_config(options.architecture, options.input_size)
    return {
        "version": version,
        "architecture": options.architecture,
        "class_names": list(CLASS_NAMES),
        "input_size": list(config.input_size),
        "channels": config.channels,
        "preprocessing": config.to_metadata(),
        "training_data": {
            "images": sum(len(source.dataset.examples) for source in sources),
            "sources": [source.to_metadata(options.split()) for source in sources],
            "sampling": "sources drawn equally often" if len(sources) > 1 else "one source",
        },
        "training": {
            "epochs_run": epochs_run,
            "max_epochs": options.epochs,
            "batch_size": options.batch_size,
            "learning_rate": options.learning_rate,
            "label_smoothing": options.label_smoothing,
            "sequence_randomisation": options.sequence_randomisation,
            "early_stopping_on": _watched_part(sources),
            "seed": options.seed,
            "initialised_from": (
                f"{Path(options.init_from).name} member {options.init_member}"
                if options.init_from
                else None
            ),
            "distilled_from": _distillation(options),
            "seconds": round(seconds, 1),
        },
        "validation": _headline(metrics) if metrics else None,
        "parameters": int(model.count_params()),
        "flops_per_image": estimate_flops(model),
        "libraries": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "created_at": created.isoformat(),
    }


def _distillation(options: TrainingOptions) -> dict[str, Any] | None:
    if options.distill_from is None:
        return None
    return {
        "teacher": Path(options.distill_from).name,
        "temperature": options.distill_temperature,
        "weight": options.distill_weight,
        "teacher_input": "the student's augmented batch (sequence randomisation included)",
    }


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "ece": metrics["ece"],
        "recall": {name: row["recall"] for name, row in metrics["per_class"].items()},
        "n": metrics["n"],
    }
