"""Training-time augmentation and tf.data pipelines over the cached, preprocessed arrays.

Imports TensorFlow; used by `ml.train` only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

Augmenter = Callable[[Any], Any]


def for_architecture(architecture: str, seed: int) -> Augmenter:
    if architecture == "seed_cnn":
        return tutorial_augmentation(seed)
    return mri_augmentation(seed)


def tutorial_augmentation(seed: int) -> Augmenter:
    """The tutorial's ImageDataGenerator(shear_range=0.2, zoom_range=0.2, horizontal_flip=True).

    Its shear_range is in degrees, so 0.2 shears by tan(0.2 deg) ~ 0.0035: left out.
    """
    geometry = keras.Sequential([
        layers.RandomZoom(0.2, fill_mode="nearest", seed=seed),
        layers.RandomFlip("horizontal", seed=seed),
    ])  # fmt: skip
    return lambda images: geometry(images, training=True)


def mri_augmentation(seed: int) -> Augmenter:
    """Framing and scanner differences: geometry, then gamma, contrast, blur and noise.

    Works on per-image z-scored inputs: maps each image to 0..1 (background ~0),
    augments, then standardises again exactly as `ml.preprocessing.normalise` does,
    so with every factor at identity the output equals the input.
    """
    geometry = keras.Sequential([
        layers.RandomRotation(12 / 360, fill_mode="constant", seed=seed),
        layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=seed),
        layers.RandomZoom((-0.15, 0.15), fill_mode="constant", seed=seed),
        layers.RandomFlip("horizontal", seed=seed),
    ])  # fmt: skip

    def augment(images: Any) -> Any:
        low = tf.reduce_min(images, axis=(1, 2, 3), keepdims=True)
        high = tf.reduce_max(images, axis=(1, 2, 3), keepdims=True)
        unit = (images - low) / tf.maximum(high - low, 1e-6)
        unit = tf.clip_by_value(geometry(unit, training=True), 0.0, 1.0)
        unit = _intensity(unit)
        return _standardise(unit)

    return augment


def _intensity(images: Any) -> Any:
    # Sources differ in contrast, gamma, sharpness and noise far more than in anatomy.
    batch = tf.shape(images)[0]
    shape = tf.stack([batch, 1, 1, 1])
    gamma = tf.exp(tf.random.uniform(shape, math.log(0.7), math.log(1.4)))
    images = tf.pow(images + 1e-6, gamma)
    contrast = tf.random.uniform(shape, 0.8, 1.25)
    brightness = tf.random.uniform(shape, -0.08, 0.08)
    images = tf.clip_by_value(images * contrast + brightness, 0.0, 1.0)
    blur_weight = tf.random.uniform(shape) * tf.cast(tf.random.uniform(shape) < 0.3, tf.float32)
    images = images + blur_weight * (_gaussian_blur(images) - images)
    noise_sigma = tf.random.uniform(shape, 0.0, 0.04) * tf.cast(
        tf.random.uniform(shape) < 0.5, tf.float32
    )
    return images + noise_sigma * tf.random.normal(tf.shape(images))


def _gaussian_blur(images: Any, sigma: float = 1.2) -> Any:
    offsets = np.arange(-2, 3, dtype=np.float32)
    kernel_1d = np.exp(-(offsets**2) / (2 * sigma**2))
    kernel = np.outer(kernel_1d, kernel_1d)
    kernel = (kernel / kernel.sum())[:, :, np.newaxis, np.newaxis]
    channels = images.shape[-1]
    kernel = tf.constant(np.tile(kernel, (1, 1, channels, 1)))
    return tf.nn.depthwise_conv2d(images, kernel, strides=[1, 1, 1, 1], padding="SAME")


def _standardise(images: Any) -> Any:
    # Same formula as preprocessing.normalise: 0..255 std floor 1.0 is 1/255 in 0..1 units.
    mean = tf.reduce_mean(images, axis=(1, 2, 3), keepdims=True)
    std = tf.math.reduce_std(images, axis=(1, 2, 3), keepdims=True)
    return (images - mean) / tf.maximum(std, 1.0 / 255.0)


def training_pipeline(
    images: np.ndarray, onehot: np.ndarray, batch_size: int, augmenter: Augmenter, seed: int
) -> tf.data.Dataset:
    """Shuffled, augmented, prefetched batches; augmentation runs in parallel with training."""
    dataset = tf.data.Dataset.from_tensor_slices((images, onehot))
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(lambda x, y: (augmenter(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def evaluation_pipeline(images: np.ndarray, onehot: np.ndarray, batch_size: int = 128) -> Any:
    return tf.data.Dataset.from_tensor_slices((images, onehot)).batch(batch_size).prefetch(2)
