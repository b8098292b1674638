"""Training-time augmentation, applied to batches of 0..255 float images inside tf.data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf
from keras import layers

# Share of training images whose tissue contrast is redrawn (see `randomise_sequence`).
SEQUENCE_RANDOMISATION = 0.5


def for_architecture(
    architecture: str, seed: int, sequence_randomisation: float = SEQUENCE_RANDOMISATION
) -> Callable[[Any], Any]:
    if architecture == "seed_cnn":
        return _tutorial_augmentation(seed)
    return _mri_augmentation(seed, sequence_randomisation)


def _tutorial_augmentation(seed: int) -> Callable[[Any], Any]:
    """The tutorial's ImageDataGenerator(shear_range=0.2, zoom_range=0.2, horizontal_flip=True)."""
    geometry = keras.Sequential([
        layers.RandomShear(x_factor=0.2, y_factor=0.0, seed=seed),
        layers.RandomZoom(0.2, seed=seed),
        layers.RandomFlip("horizontal", seed=seed),
    ])  # fmt: skip
    return lambda images: geometry(images, training=True)


def _mri_augmentation(seed: int, sequence_randomisation: float) -> Callable[[Any], Any]:
    """Geometry a scanner's framing varies by, and the intensity changes between scanners.

    Sources differ in contrast, gamma, sharpness and noise far more than in anatomy,
    so intensity augmentation is what lets the model transfer to other scanners.
    Redrawing the tissue contrast of a share of the images takes away the sequence
    shortcut (tumour slices of the training data are T1 contrast-enhanced, most
    no-tumour slices T2): what is left to learn is anatomy, the mass and its effect.
    """
    geometry = keras.Sequential([
        layers.RandomRotation(12 / 360, fill_mode="constant", seed=seed),
        layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=seed),
        layers.RandomZoom((-0.15, 0.15), fill_mode="constant", seed=seed),
        layers.RandomFlip("horizontal", seed=seed),
    ])  # fmt: skip

    def augment(images: Any) -> Any:
        images = geometry(images, training=True)
        if sequence_randomisation > 0:
            images = randomise_sequence(images, sequence_randomisation)
        return _intensity(images)

    return augment


def randomise_sequence(images: Any, probability: float) -> Any:
    """Redraw the tissue contrast inside the head of about `probability` of the images.

    Half of those get a random monotonic intensity curve, a quarter a random
    non-monotonic one, a quarter are inverted (dark fluid turns bright, as from
    T1 to T2); each also gets a smooth bias field, as from a receive coil. The
    background outside the head stays black, so the head's outline is unchanged.
    """
    batch = tf.shape(images)[0]
    x = tf.clip_by_value(images, 0.0, 255.0) / 255.0
    head = head_mask(x)
    choice = tf.random.uniform([batch, 1, 1, 1])
    curve = _random_curve(x, monotonic=choice < 0.5 * probability)
    remapped = tf.where(choice < 0.75 * probability, curve, 1.0 - x)
    remapped = remapped * _bias_field(tf.shape(x))
    redraw = tf.cast(choice < probability, tf.float32) * head
    return tf.clip_by_value(x * (1 - redraw) + remapped * redraw, 0.0, 1.0) * 255.0


def head_mask(x: Any, level: float = 0.1) -> Any:
    """1 inside the head, 0 outside: pixels between bright ones along both their row and column.

    Filling between the outermost bright pixels keeps dark fluid inside the head
    (CSF on T1) in the mask without any hole-filling library.
    """
    bright = tf.cast(x > level * tf.reduce_max(x, axis=[1, 2, 3], keepdims=True), tf.float32)

    def between(axis: int) -> Any:
        forward = tf.cumsum(bright, axis=axis)
        backward = tf.cumsum(bright, axis=axis, reverse=True)
        return tf.cast((forward > 0) & (backward > 0), tf.float32)

    return between(1) * between(2)


CURVE_POINTS = 6


def _random_curve(x: Any, monotonic: Any) -> Any:
    """Map intensities through a piecewise-linear curve with random control points."""
    batch = tf.shape(x)[0]
    points = tf.random.uniform([batch, CURVE_POINTS])
    points = tf.where(monotonic[:, 0, 0, :], tf.sort(points, axis=1), points)
    position = x * (CURVE_POINTS - 1)
    low = tf.clip_by_value(tf.floor(position), 0, CURVE_POINTS - 2)
    fraction = position - low
    flat = tf.reshape(tf.cast(low, tf.int32), [batch, -1])
    left = tf.reshape(tf.gather(points, flat, batch_dims=1), tf.shape(x))
    right = tf.reshape(tf.gather(points, flat + 1, batch_dims=1), tf.shape(x))
    return left + (right - left) * fraction


def _bias_field(shape: Any) -> Any:
    coarse = tf.random.uniform([shape[0], 4, 4, 1], 0.75, 1.25)
    return tf.image.resize(coarse, shape[1:3], method="bicubic")


def _intensity(images: Any) -> Any:
    batch = tf.shape(images)[0]

    def per_image(low: float, high: float) -> Any:
        return tf.random.uniform([batch, 1, 1, 1], low, high)

    x = tf.clip_by_value(images, 0.0, 255.0) / 255.0
    x = tf.pow(x + 1e-6, per_image(0.7, 1.5))  # gamma
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * per_image(0.75, 1.3) + mean + per_image(-0.08, 0.08)  # contrast, brightness
    blurred = tf.nn.avg_pool2d(x, ksize=3, strides=1, padding="SAME")
    blur_amount = per_image(0.0, 1.0) * tf.cast(per_image(0.0, 1.0) < 0.3, tf.float32)
    x = x * (1 - blur_amount) + blurred * blur_amount
    x = x + tf.random.normal(tf.shape(x)) * per_image(0.0, 0.03)  # scanner noise
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0
