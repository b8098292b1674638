"""The guard: refuse what is not a brain MRI slice before the classifier gives it a label.

A classifier answers every input with one of its four classes, confidently, even
for a photo, a document, noise or a CT slice. The guard stands in front of it:

1. Two plain checks on the picture itself: a colour picture (MRI slices are
   grey) and a blank one (no contrast at all) are refused with that reason.
2. A small network scores "brain MRI slice or not" on the classifier's own view
   of the image (the head crop), scaled down. It is trained on the training
   parts of the data folders against generated outliers (`ml.outliers`:
   noise, documents, screenshots, shapes, chest radiographs, body MRI and head
   CT slices rendered from the training slices' own outlines). Intensity is
   not normalised away for it: grey levels are what tell CT from MRI.

The score's cut-off is chosen on the calibration part of the folders, for a
target share of real slices refused. The guard is saved inside the model's
artefact (`guard.keras`, and `guard` in the metadata), so a promoted model
brings its own guard, and a model without one refuses nothing.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ml import outliers
from ml.registry import METADATA_FILE

GUARD_FILE = "guard.keras"
GUARD_SIDE = 64
TARGET_FALSE_REFUSALS = 0.006
# A grey JPEG decodes with a little chroma noise; photos and screenshots have far more.
MAX_COLOURFULNESS = 0.06
MIN_CONTRAST = 4.0  # standard deviation of the grey levels, 0..255
NOT_BRAIN_MRI = "not a brain MRI slice"


@dataclass(frozen=True)
class GuardSettings:
    threshold: float
    max_colourfulness: float = MAX_COLOURFULNESS
    min_contrast: float = MIN_CONTRAST
    side: int = GUARD_SIDE

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> GuardSettings:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in metadata.items() if k in fields})


def colourfulness(data: bytes) -> float:
    """Mean spread between the colour channels, 0 (grey) to 1, from a small, cheap decode."""
    image = Image.open(io.BytesIO(data))
    if image.mode not in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
        return 0.0
    if image.format == "JPEG":
        image.draft("RGB", (64, 64))
    rgb = np.asarray(image.convert("RGB").resize((64, 64)), np.float32)
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean() / 255)


def guard_inputs(model_inputs: np.ndarray, side: int = GUARD_SIDE) -> np.ndarray:
    """The classifier's (n, h, w, c) 0..255 inputs, grey, at the guard's size."""
    grey = model_inputs[..., :1].astype(np.float32)
    if grey.shape[1:3] == (side, side):
        return grey
    resized = np.zeros((len(grey), side, side, 1), np.float32)
    for index, image in enumerate(grey):
        plane = Image.fromarray(image[..., 0], mode="F")
        resized[index, ..., 0] = np.asarray(plane.resize((side, side), Image.Resampling.BILINEAR))
    return resized


class Guard:
    def __init__(self, model: Any, settings: GuardSettings) -> None:
        import tensorflow as tf

        self.network = model
        self.settings = settings
        spec = [tf.TensorSpec([None, settings.side, settings.side, 1], tf.float32)]
        self._score = tf.function(lambda x: model(x, training=False)[:, 0], input_signature=spec)

    @classmethod
    def load(cls, artefact_dir: Path, metadata: dict[str, Any]) -> Guard | None:
        """The artefact's guard, or None for a model saved without one."""
        path = Path(artefact_dir) / GUARD_FILE
        if not path.is_file() or "guard" not in metadata:
            return None
        import keras

        model = keras.saving.load_model(path, compile=False)
        return cls(model, GuardSettings.from_metadata(metadata["guard"]))

    def scores(self, model_inputs: np.ndarray) -> np.ndarray:
        """How much each image looks like a brain MRI slice, 0..1."""
        if not len(model_inputs):
            return np.zeros(0, np.float32)
        return np.asarray(self._score(guard_inputs(model_inputs, self.settings.side)))

    def refusals(self, images: Sequence[bytes], model_inputs: np.ndarray) -> list[str | None]:
        """For each image: why it is refused, or None when the classifier may answer."""
        scores = self.scores(model_inputs)
        return [
            self._refusal(data, array, float(score))
            for data, array, score in zip(images, model_inputs, scores, strict=True)
        ]

    def _refusal(self, data: bytes, model_input: np.ndarray, score: float) -> str | None:
        settings = self.settings
        if float(model_input.std()) < settings.min_contrast:
            return f"{NOT_BRAIN_MRI}: the image is blank (no contrast)"
        if colourfulness(data) > settings.max_colourfulness:
            return f"{NOT_BRAIN_MRI}: it is a colour picture, MRI slices are grey"
        if score < settings.threshold:
            return (
                f"{NOT_BRAIN_MRI}: it does not look like the brain MRI slices the model "
                f"knows (guard score {score:.2f}, needs {settings.threshold:.2f})"
            )
        return None


def build_guard_network(side: int = GUARD_SIDE) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input((side, side, 1), name="image")
    x = layers.Rescaling(1 / 255)(inputs)
    for filters in (16, 32, 64, 96):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="brain_mri")(x)
    return keras.Model(inputs, outputs, name="guard")


def outlier_inputs(
    count: int, seed: int, config: Any, anatomy: np.ndarray | None = None
) -> np.ndarray:
    """Generated outliers as guard inputs, half of them CT slices drawn on `anatomy`'s heads.

    CT is the outlier closest to a brain MRI slice (a head, in grey), so it gets the
    largest share.
    """
    from ml.preprocessing import preprocess_bytes

    rng = np.random.default_rng(seed)
    kinds = [k for k in outliers.GENERATORS if k != "ct_head"]
    arrays = []
    for index in range(count):
        side = int(rng.integers(128, 512))
        if index % 2 == 0:
            lent = None
            if anatomy is not None and len(anatomy) and rng.random() < 0.8:
                head = Image.fromarray(anatomy[int(rng.integers(len(anatomy)))][..., 0], mode="F")
                lent = np.asarray(head.resize((side, side)), np.float32)
            image = outliers.ct_head(rng, side, lent)
        else:
            image = outliers.generate(str(rng.choice(kinds)), rng, side)
        arrays.append(preprocess_bytes(outliers.encoded(image, rng), config))
    return guard_inputs(np.stack(arrays))


def train_guard(
    positives: np.ndarray,
    negatives: np.ndarray,
    seed: int = 1337,
    epochs: int = 20,
    progress: Any = print,
) -> Any:
    """Fit the guard network: brain MRI slices (1) against outliers (0)."""
    import keras
    import tensorflow as tf

    from ml.augment import _intensity

    keras.utils.set_random_seed(seed)
    model = build_guard_network(positives.shape[1])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    images = np.concatenate([positives, negatives]).astype(np.float32)
    labels = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))]).astype(np.float32)
    weights = np.where(labels == 1, len(labels) / (2 * len(positives)),
                       len(labels) / (2 * len(negatives))).astype(np.float32)  # fmt: skip
    geometry = keras.Sequential([
        keras.layers.RandomRotation(15 / 360, fill_mode="constant", seed=seed),
        keras.layers.RandomZoom((-0.15, 0.15), fill_mode="constant", seed=seed),
        keras.layers.RandomFlip("horizontal", seed=seed),
    ])  # fmt: skip
    pipeline = (
        tf.data.Dataset.from_tensor_slices((images, labels, weights))
        .shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
        .batch(64)
        .map(
            lambda x, y, w: (_intensity(geometry(x, training=True)), y, w),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
    for epoch in range(epochs):
        started = time.monotonic()
        history = model.fit(pipeline, epochs=1, shuffle=False, verbose=0)
        progress(f"guard epoch {epoch + 1}: loss {history.history['loss'][0]:.4f} "
                 f"acc {history.history['accuracy'][0]:.4f} "
                 f"{time.monotonic() - started:.1f}s")  # fmt: skip
    return model


def choose_threshold(scores: np.ndarray, target: float = TARGET_FALSE_REFUSALS) -> float:
    """The score below which only `target` of real slices fall."""
    return float(np.quantile(scores, target)) if len(scores) else 0.5


def save_guard(
    artefact_dir: Path, model: Any, settings: GuardSettings, report: dict[str, Any]
) -> None:
    """Write guard.keras and the guard's settings and figures into the artefact's metadata."""
    import keras

    folder = Path(artefact_dir)
    # Without the optimizer's state: serving never needs it, and it is two thirds of the file.
    keras.Model(model.inputs, model.outputs, name=model.name).save(folder / GUARD_FILE)
    path = folder / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["guard"] = {**asdict(settings), "figures": report}
    path.write_text(json.dumps(metadata, indent=2))
