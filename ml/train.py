"""Training: grouped split, cached preprocessing, augmentation, fit, versioned artefact.

`python -m ml train --data DIR --arch mri_cnn` writes `models/<arch>-<UTC time>/`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml.artefact import new_version, unique_folder, write_json
from ml.data import DEFAULT_CACHE_DIR, load_arrays, scan_folder, split_dataset
from ml.evaluate import compute_metrics, format_table, write_report
from ml.labels import CLASS_NAMES
from ml.preprocessing import config_for


@dataclass
class TrainingOptions:
    architecture: str = "mri_cnn"
    epochs: int = 60
    batch_size: int = 32
    seed: int = 0
    val_fraction: float = 0.2
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    patience: int = 12
    dropout_rate: float = 0.3
    # "hflip": serve the mean of the image and its mirror (recorded in metadata.json).
    test_time_augmentation: str = "none"
    cache_dir: Path | None = field(default=DEFAULT_CACHE_DIR)


def train(data_dir: Path, out_dir: Path, options: TrainingOptions) -> Path:
    """Train `options.architecture` on `data_dir`; return the new artefact folder."""
    import keras

    from ml.inference import configure_tensorflow

    configure_tensorflow()
    keras.utils.set_random_seed(options.seed)
    started = time.perf_counter()
    dataset = scan_folder(data_dir)
    split = split_dataset(dataset, options.val_fraction, options.seed, options.cache_dir)
    arrays = load_arrays(dataset, config_for(options.architecture), options.cache_dir)
    _log(f"data: {len(dataset)} images {dataset.counts()}, {len(split.train)} train / "
         f"{len(split.validation)} validation, prepared in {time.perf_counter() - started:.1f}s")
    model, history = _fit(arrays, dataset.labels, split, options)
    fit_seconds = time.perf_counter() - started
    probabilities = _predict(model, arrays[split.validation], options.test_time_augmentation)
    metrics = compute_metrics(dataset.labels[split.validation], probabilities, CLASS_NAMES)
    _log(format_table(metrics))
    return _save(model, history, metrics, dataset, split, options, out_dir, fit_seconds)


def _fit(arrays: np.ndarray, labels: np.ndarray, split: Any, options: TrainingOptions) -> Any:
    import keras

    from ml.augment import evaluation_pipeline, for_architecture, training_pipeline
    from ml.model import build_model

    onehot = np.eye(len(CLASS_NAMES), dtype=np.float32)[labels]
    train_data = training_pipeline(
        arrays[split.train], onehot[split.train], options.batch_size,
        for_architecture(options.architecture, options.seed), options.seed,
    )  # fmt: skip
    val_data = evaluation_pipeline(arrays[split.validation], onehot[split.validation])
    model = build_model(options.architecture, options.dropout_rate)
    steps = int(np.ceil(len(split.train) / options.batch_size)) * options.epochs
    _compile(model, options, steps)
    history = model.fit(
        train_data,
        validation_data=val_data,
        epochs=options.epochs,
        class_weight=_class_weights(labels[split.train], options.architecture),
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=options.patience, restore_best_weights=True
            ),
            epoch_line(),
        ],
        verbose=0,
    )
    return model, history.history


def _predict(model: Any, images: np.ndarray, test_time_augmentation: str) -> np.ndarray:
    """Return probabilities as the engine will serve them (same test-time augmentation)."""
    probabilities: np.ndarray = model.predict(images, batch_size=128, verbose=0)
    if test_time_augmentation == "hflip":
        mirrored = model.predict(images[:, :, ::-1], batch_size=128, verbose=0)
        probabilities = (probabilities + mirrored) / 2
    return probabilities


def _compile(model: Any, options: TrainingOptions, total_steps: int) -> None:
    import keras

    if options.architecture == "seed_cnn":
        # The tutorial's recipe: Adam with defaults, plain categorical cross-entropy.
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return
    schedule = keras.optimizers.schedules.CosineDecay(
        options.learning_rate / 10, total_steps, warmup_target=options.learning_rate,
        warmup_steps=max(total_steps // 30, 1), alpha=0.02,
    )  # fmt: skip
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=options.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing),
        metrics=["accuracy"],
    )


def _class_weights(labels: np.ndarray, architecture: str) -> dict[int, float] | None:
    # no_tumor has half the images of the other classes; weight so each class counts the same.
    if architecture == "seed_cnn":
        return None
    counts = np.bincount(labels, minlength=len(CLASS_NAMES))
    return {i: float(len(labels) / (len(counts) * max(c, 1))) for i, c in enumerate(counts)}


def _epoch_line_class() -> type:
    import keras

    class _EpochLine(keras.callbacks.Callback):
        """Print one line per epoch: losses, accuracies and seconds."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            _log(
                f"epoch {epoch + 1:3d}  loss {logs.get('loss', 0):.4f}  "
                f"acc {logs.get('accuracy', 0):.4f}  val_loss {logs.get('val_loss', 0):.4f}  "
                f"val_acc {logs.get('val_accuracy', 0):.4f}  "
                f"{time.perf_counter() - self._started:.1f}s"
            )

    return _EpochLine


def epoch_line() -> Any:
    """Return a callback printing one line per epoch (Keras is imported lazily)."""
    return _epoch_line_class()()


def _save(
    model: Any,
    history: dict[str, list[float]],
    metrics: dict[str, Any],
    dataset: Any,
    split: Any,
    options: TrainingOptions,
    out_dir: Path,
    fit_seconds: float,
) -> Path:
    from ml.model import save_artefact

    version, folder = unique_folder(Path(out_dir), new_version(options.architecture))
    training = {k: v for k, v in asdict(options).items() if k != "cache_dir"}
    training.update(epochs_run=len(history.get("loss", [])), wall_seconds=round(fit_seconds, 1))
    save_artefact(model, folder, version, options.architecture, {
        "training": training,
        "training_data": {"fingerprint": dataset.fingerprint(), "images": len(dataset),
                          "counts": dataset.counts(), "folder_name": Path(dataset.root).name},
        "split": split.describe(dataset, options.seed, options.val_fraction),
        "validation_metrics": _headline(metrics),
        "test_time_augmentation": options.test_time_augmentation,
    })  # fmt: skip
    write_json(folder / "history.json", {k: [float(v) for v in vs] for k, vs in history.items()})
    write_report(metrics, folder)
    _log(f"saved {folder} in {fit_seconds:.1f}s of training")
    return folder


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "ece": metrics["ece"],
        "recall": {name: row["recall"] for name, row in metrics["per_class"].items()},
        "images": metrics["images"],
    }


def _log(message: str) -> None:
    print(message, flush=True)
