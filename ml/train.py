"""Train an architecture on a class-folder data set and write a versioned artefact."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ml import augment
from ml.data import Dataset, load_dataset
from ml.evaluate import compute_metrics, format_report, write_reports
from ml.labels import CLASS_NAMES
from ml.model import build_model, estimate_flops, preprocess_config
from ml.registry import METADATA_FILE, MODEL_FILE, TRAINING_HISTORY_FILE


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


# The tutorial trained plainly: Adam, cross-entropy, batch 32, no class weights.
SEED_CNN_OPTIONS = {"learning_rate": 1e-3, "label_smoothing": 0.0}


def train(data_dir: Path, out_dir: Path, options: TrainingOptions) -> Path:
    """Train, evaluate on the held-out groups, and write `out_dir/<version>/`; return it."""
    keras.utils.set_random_seed(options.seed)
    config = preprocess_config(options.architecture, options.input_size)
    dataset = load_dataset(data_dir, config, options.cache_dir)
    train_index, val_index = dataset.split(options.val_fraction, options.split_seed)
    print(f"split: {len(train_index)} training, {len(val_index)} validation images "
          f"(near-duplicate groups kept on one side)", flush=True)  # fmt: skip
    model = build_model(options.architecture, input_size=options.input_size)
    compile_model(model, options, steps=_steps(len(train_index), options.batch_size))
    started = time.monotonic()
    history = model.fit(
        training_pipeline(dataset, train_index, options),
        validation_data=_batches(dataset.images[val_index], dataset.labels[val_index], options),
        epochs=options.epochs,
        class_weight=_class_weights(dataset.labels[train_index], options),
        callbacks=_callbacks(options),
        shuffle=False,  # the pipeline shuffles, with the run's seed
        verbose=0,
    )
    seconds = time.monotonic() - started
    probabilities = model.predict(dataset.images[val_index], batch_size=128, verbose=0)
    metrics = compute_metrics(dataset.labels[val_index], probabilities)
    print(format_report(metrics), flush=True)
    return save_artefact(model, out_dir, options, dataset, metrics, history.history, seconds)


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


def training_pipeline(dataset: Dataset, index: np.ndarray, options: TrainingOptions) -> Any:
    """Shuffled, augmented batches; augmentation runs in tf.data, overlapped with training."""
    augmenter = augment.for_architecture(options.architecture, options.seed)
    images, labels = dataset.images[index], dataset.labels[index]
    pipeline = tf.data.Dataset.from_tensor_slices((images, _one_hot(labels)))
    pipeline = pipeline.shuffle(len(index), seed=options.seed, reshuffle_each_iteration=True)
    pipeline = pipeline.batch(options.batch_size)
    pipeline = pipeline.map(lambda x, y: (augmenter(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return pipeline.prefetch(tf.data.AUTOTUNE)


def _batches(images: np.ndarray, labels: np.ndarray, options: TrainingOptions) -> Any:
    pipeline = tf.data.Dataset.from_tensor_slices((images, _one_hot(labels)))
    return pipeline.batch(128).prefetch(tf.data.AUTOTUNE)


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(len(CLASS_NAMES), dtype=np.float32)[labels]


def _steps(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))


def _class_weights(labels: np.ndarray, options: TrainingOptions) -> dict[int, float] | None:
    """Weight classes inversely to their frequency (no_tumor is half as common)."""
    if options.architecture == "seed_cnn":
        return None
    counts = np.bincount(labels, minlength=len(CLASS_NAMES)).clip(min=1)
    return {i: float(len(labels) / (len(CLASS_NAMES) * c)) for i, c in enumerate(counts)}


class EpochLine(keras.callbacks.Callback):
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
    dataset: Dataset,
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
        model, version, options, dataset, metrics, seconds, created, epochs_run
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
    dataset: Dataset | None,
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
            "fingerprint": dataset.fingerprint if dataset else None,
            "images": len(dataset.examples) if dataset else 0,
            "split": {
                "method": "grouped-by-near-duplicate-dHash, stratified",
                "val_fraction": options.val_fraction,
                "seed": options.split_seed,
            },
        },
        "training": {
            "epochs_run": epochs_run,
            "max_epochs": options.epochs,
            "batch_size": options.batch_size,
            "learning_rate": options.learning_rate,
            "label_smoothing": options.label_smoothing,
            "seed": options.seed,
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


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "ece": metrics["ece"],
        "recall": {name: row["recall"] for name, row in metrics["per_class"].items()},
        "n": metrics["n"],
    }
