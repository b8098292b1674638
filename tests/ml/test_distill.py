"""Knowledge distillation: the loss, the Distiller and `train --distill-from` on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from ml.distill import Distiller, distillation_loss, soften
from ml.registry import METADATA_FILE, ModelRegistry
from tests.ml.test_train_and_cli import run_cli, trained  # noqa: F401  (module-scoped fixture)

LABELS = np.eye(4, dtype=np.float32)[[0, 2, 3]]
STUDENT = np.array(
    [[0.7, 0.1, 0.1, 0.1], [0.2, 0.2, 0.5, 0.1], [0.05, 0.05, 0.1, 0.8]], dtype=np.float32
)
TEACHER = np.array(
    [[0.9, 0.05, 0.03, 0.02], [0.1, 0.3, 0.5, 0.1], [0.2, 0.1, 0.1, 0.6]], dtype=np.float32
)


def _value(tensor: object) -> float:
    return float(keras.ops.convert_to_numpy(tensor))


def _kl(target: np.ndarray, learned: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.sum(target * (np.log(target) - np.log(learned)), axis=-1)
    return result


def _soften(p: np.ndarray, temperature: float) -> np.ndarray:
    z = np.log(p) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    result: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return result


def test_softening_at_temperature_one_changes_nothing_and_higher_flattens() -> None:
    np.testing.assert_allclose(keras.ops.convert_to_numpy(soften(STUDENT, 1.0)), STUDENT, atol=1e-6)
    hotter = keras.ops.convert_to_numpy(soften(STUDENT, 3.0))
    assert np.all(hotter.max(axis=1) < STUDENT.max(axis=1))
    np.testing.assert_allclose(hotter.sum(axis=1), 1.0, atol=1e-6)


def test_with_no_weight_on_the_teacher_the_loss_is_label_smoothed_cross_entropy() -> None:
    expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(LABELS, STUDENT)
    loss = distillation_loss(LABELS, STUDENT, TEACHER, 2.0, weight=0.0, label_smoothing=0.1)
    assert _value(loss) == pytest.approx(_value(expected), rel=1e-5)


def test_the_soft_term_is_kl_of_the_softened_teacher_from_the_student_times_t_squared() -> None:
    temperature = 2.5
    loss = distillation_loss(LABELS, STUDENT, TEACHER, temperature, weight=1.0)
    expected = temperature**2 * _kl(_soften(TEACHER, temperature), _soften(STUDENT, temperature))
    assert _value(loss) == pytest.approx(float(expected.mean()), rel=1e-4)
    assert _value(loss) > 0.01


def test_a_student_that_matches_its_teacher_pays_only_the_label_term() -> None:
    assert _value(distillation_loss(LABELS, TEACHER, TEACHER, 2.0, weight=1.0)) == pytest.approx(
        0.0, abs=1e-6
    )
    mixed = distillation_loss(LABELS, TEACHER, TEACHER, 2.0, weight=0.7)
    hard = keras.losses.CategoricalCrossentropy()(LABELS, TEACHER)
    assert _value(mixed) == pytest.approx(0.3 * _value(hard), rel=1e-5)


def test_class_weights_weigh_each_images_share_of_both_terms() -> None:
    weights = np.array([2.0, 0.0, 1.0], dtype=np.float32)
    weighted = distillation_loss(LABELS, STUDENT, TEACHER, 2.0, 0.5, sample_weight=weights)
    per_image = [
        _value(distillation_loss(LABELS[[i]], STUDENT[[i]], TEACHER[[i]], 2.0, 0.5))
        for i in range(3)
    ]
    assert _value(weighted) == pytest.approx(float(np.dot(weights, per_image)) / 3, rel=1e-5)


@pytest.mark.parametrize(("temperature", "weight"), [(0.0, 0.5), (-1.0, 0.5), (2.0, 1.5)])
def test_rejects_a_temperature_or_weight_out_of_range(temperature: float, weight: float) -> None:
    with pytest.raises(ValueError, match="distillation"):
        distillation_loss(LABELS, STUDENT, TEACHER, temperature, weight)


def _network(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))


def test_the_teacher_sees_the_students_own_batch_and_does_not_learn() -> None:
    student, teacher = _network(0), _network(1)
    distiller = Distiller(student, teacher, temperature=2.0, weight=0.7, label_smoothing=0.1)
    images = np.random.default_rng(0).uniform(0, 255, (8, 6, 6, 1)).astype(np.float32)
    labels = np.eye(4, dtype=np.float32)[np.arange(8) % 4]
    loss = distiller.compute_loss(images, labels, student(images), None)
    expected = distillation_loss(labels, student(images), teacher(images), 2.0, 0.7, 0.1)
    assert _value(loss) == pytest.approx(_value(expected), rel=1e-5)

    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    distiller.fit(images, labels, epochs=2, batch_size=4, verbose=0)
    for before, after in zip(teacher_before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert any(not np.allclose(b, a) for b, a in zip(student_before, student.get_weights(),
                                                         strict=True))  # fmt: skip
    assert _value(distiller.compute_loss(images, labels, student(images), None)) < _value(loss)


def test_rejects_a_teacher_with_another_input_shape() -> None:
    inputs = keras.Input((8, 8, 1))
    other = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="preprocessing"):
        Distiller(_network(0), other)


def test_train_distils_from_a_teacher_artefact(trained: Path, tmp_path: Path) -> None:  # noqa: F811
    teacher = ModelRegistry(trained / "models").active_path()
    assert run_cli("train", "--data", str(trained / "data"), "--arch", "tiny", "--epochs", "1",
                   "--distill-from", str(teacher), "--distill-temperature", "3",
                   "--no-guard", "--out", str(tmp_path)) == 0  # fmt: skip
    (folder,) = tmp_path.iterdir()
    metadata = json.loads((folder / METADATA_FILE).read_text())
    distilled = metadata["training"]["distilled_from"]
    assert distilled["teacher"] == teacher.name
    assert (distilled["temperature"], distilled["weight"]) == (3.0, 0.7)
    assert metadata["architecture"] == "tiny" and metadata["validation"]["n"] > 0


def test_train_refuses_a_teacher_of_other_preprocessing(
    trained: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    teacher = ModelRegistry(trained / "models").active_path()
    assert run_cli("train", "--data", str(trained / "data"), "--arch", "tiny", "--epochs", "1",
                   "--input-size", "40", "--distill-from", str(teacher), "--no-guard",
                   "--out", str(tmp_path)) == 2  # fmt: skip
    assert "other preprocessing" in capsys.readouterr().err
    assert run_cli("train", "--data", str(trained / "data"), "--arch", "tiny",
                   "--distill-from", str(teacher), "--distill-weight", "2") == 2  # fmt: skip
    assert "between 0 and 1" in capsys.readouterr().err
