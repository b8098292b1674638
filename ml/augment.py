"""Training-time augmentation, applied to batches of 0..255 float images inside tf.data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf
from keras import layers


def for_architecture(architecture: str, seed: int) -> Callable[[Any], Any]:
    if architecture == "seed_cnn":
        return _tutorial_augmentation(seed)
    return _mri_augmentation(seed)


def _tutorial_augmentation(seed: int) -> Callable[[Any], Any]:
    """The tutorial's ImageDataGenerator(shear_range=0.2, zoom_range=0.2, horizontal_flip=True)."""
    geometry = keras.Sequential([
        layers.RandomShear(x_factor=0.2, y_factor=0.0, seed=seed),
        layers.RandomZoom(0.2, seed=seed),
        layers.RandomFlip("horizontal", seed=seed),
    ])  # fmt: skip
    return lambda images: geometry(images, training=True)


def _mri_augmentation(seed: int) -> Callable[[Any], Any]:
    """Geometry a scanner's framing varies by, and the intensity changes between scanners.

    Sources differ in contrast, gamma, sharpness and noise far more than in anatomy,
    so intensity augmentation is what lets the model transfer to other scanners.
    """
    geometry = keras.Sequential([
        layers.RandomRotation(12 / 360, fill_mode="constant", seed=seed),
        layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=seed),
        layers.RandomZoom((-0.15, 0.15), fill_mode="constant", seed=seed),
        layers.RandomFlip("horizontal", seed=seed),
    ])  # fmt: skip

    def augment(images: Any) -> Any:
        images = geometry(images, training=True)
        return _intensity(images)

    return augment


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
