"""Knowledge distillation: train one network to match a trained (ensemble) teacher.

The teacher runs on the same augmented batch the student sees, sequence
randomisation included, so the student learns the teacher's answers on redrawn
tissue contrast too, not only on the training folder's look. The loss mixes the
teacher's softened probabilities (at `temperature`) with the hard labels
(label-smoothed cross-entropy, as plain training uses), after Hinton et al. 2015
and the keras-io "Knowledge Distillation" example.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
from keras import ops

from ml.registry import METADATA_FILE, MODEL_FILE

DISTILL_TEMPERATURE = 2.0
# Share of the loss that comes from the teacher's soft targets; the rest from the labels.
DISTILL_WEIGHT = 0.7
_EPSILON = 1e-7


def soften(probabilities: Any, temperature: float) -> Any:
    """Return softmax(log(p) / T) of (n, classes) probabilities: logits up to a constant, cooled."""
    return ops.softmax(_log(probabilities) / temperature, axis=-1)


def _log(probabilities: Any) -> Any:
    return ops.log(ops.clip(probabilities, _EPSILON, 1.0))


def distillation_loss(
    labels: Any,
    student: Any,
    teacher: Any,
    temperature: float = DISTILL_TEMPERATURE,
    weight: float = DISTILL_WEIGHT,
    label_smoothing: float = 0.0,
    sample_weight: Any = None,
) -> Any:
    """Return the batch's mean loss: weight * T^2 * KL(teacher_T || student_T) + (1-weight) * CE.

    `labels` are one-hot, `student` and `teacher` probabilities, all (n, classes)
    float32. T^2 keeps the soft term's gradients the size of the hard term's
    whatever the temperature. `sample_weight` (n,) weights both terms (class weights).
    """
    if temperature <= 0:
        raise ValueError(f"distillation temperature must be positive, not {temperature}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"distillation weight must be between 0 and 1, not {weight}")
    target = soften(teacher, temperature)
    learned = soften(student, temperature)
    kl = ops.sum(target * (_log(target) - _log(learned)), axis=-1)
    hard = keras.losses.categorical_crossentropy(labels, student, label_smoothing=label_smoothing)
    per_image = weight * temperature**2 * kl + (1.0 - weight) * hard
    if sample_weight is not None:
        per_image = per_image * ops.cast(ops.reshape(sample_weight, (-1,)), per_image.dtype)
    return ops.mean(per_image)


class Distiller(keras.Model):  # type: ignore[misc]  # Keras ships no types
    """Train `student` (its layers, shared: the student itself learns) against a frozen `teacher`.

    Predicts what the student predicts, so accuracy metrics and early stopping see
    the student. Save `student`, never this wrapper.
    """

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model,
        temperature: float = DISTILL_TEMPERATURE,
        weight: float = DISTILL_WEIGHT,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(name="distiller")
        if tuple(student.input_shape[1:]) != tuple(teacher.input_shape[1:]):
            raise ValueError(
                f"the teacher takes {teacher.input_shape[1:]} images, "
                f"the student {student.input_shape[1:]}: they must share the preprocessing"
            )
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.weight = float(weight)
        self.label_smoothing = float(label_smoothing)

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.student(inputs, training=training)

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        teacher = self.teacher(x, training=False)  # the batch as augmented for the student
        loss = distillation_loss(
            y, y_pred, ops.stop_gradient(teacher), self.temperature, self.weight,
            self.label_smoothing, sample_weight,
        )  # fmt: skip
        for extra in self.losses:
            loss = loss + extra
        return loss


def load_teacher(artefact_dir: Path) -> tuple[keras.Model, dict[str, Any]]:
    """Load a trained artefact's network (for serving: faster, same outputs) and its metadata."""
    from ml.model import for_serving

    folder = Path(artefact_dir)
    if not (folder / MODEL_FILE).is_file() or not (folder / METADATA_FILE).is_file():
        raise ValueError(f"{folder} is not a model artefact (no {MODEL_FILE} and {METADATA_FILE})")
    metadata = json.loads((folder / METADATA_FILE).read_text())
    teacher = for_serving(keras.saving.load_model(folder / MODEL_FILE, compile=False))
    teacher.trainable = False
    return teacher, metadata
