"""The architectures: `seed_cnn` (the tutorial's baseline), `mri_cnn` (default), `tiny` (tests)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
from keras import layers

from ml.labels import CLASS_NAMES
from ml.preprocessing import PreprocessConfig

# Grad-CAM reads the activations of the layer with this name.
LAST_CONV_LAYER = "last_conv"


@keras.saving.register_keras_serializable(package="mri")
class PerImageStandardization(layers.Layer):  # type: ignore[misc]  # Keras ships no types
    """Scale each image to zero mean and unit variance.

    MRI intensity has no absolute unit: scanners and protocols differ in gain, so
    the model sees each slice relative to itself.
    """

    def call(self, inputs: Any) -> Any:
        mean = keras.ops.mean(inputs, axis=(1, 2, 3), keepdims=True)
        std = keras.ops.std(inputs, axis=(1, 2, 3), keepdims=True)
        return (inputs - mean) / keras.ops.maximum(std, 1e-3)


@keras.saving.register_keras_serializable(package="mri")
class Rescale(layers.Layer):  # type: ignore[misc]  # Keras ships no types
    """`x / 255`, as the tutorial's ImageDataGenerator did (a plain layer, safe to reload)."""

    def call(self, inputs: Any) -> Any:
        return inputs / 255.0


@keras.saving.register_keras_serializable(package="mri")
class HorizontalFlip(layers.Layer):  # type: ignore[misc]  # Keras ships no types
    """Mirror left and right: the test-time twin of the training flip (brains are symmetric)."""

    def call(self, inputs: Any) -> Any:
        return keras.ops.flip(inputs, axis=2)


@keras.saving.register_keras_serializable(package="mri")
class CascadeSelect(layers.Layer):  # type: ignore[misc]  # Keras ships no types
    """[first member's probabilities, the ensemble's] -> the first's where its margin is
    above `margin`, else the ensemble's; row by row. `first` records which member that is.
    The last layer of a cascade (`ml.cascade`)."""

    def __init__(self, margin: float, first: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.margin = float(margin)
        self.first = int(first)

    def call(self, inputs: Any) -> Any:
        first, ensemble = inputs
        top_two = keras.ops.top_k(first, k=2)[0]
        sure = (top_two[:, 0] - top_two[:, 1]) > self.margin
        return keras.ops.where(keras.ops.expand_dims(sure, -1), first, ensemble)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "margin": self.margin, "first": self.first}


ARCHITECTURES: dict[str, PreprocessConfig] = {
    "seed_cnn": PreprocessConfig(input_size=(64, 64), channels=3, head_crop=False, name="rgb-64"),
    # 160 rather than 128 pixels: validation accuracy 0.941 against 0.932-0.936 at 128
    # (three seeds), fewer gliomas called meningiomas; 1.6x the compute.
    "mri_cnn": PreprocessConfig(input_size=(160, 160), channels=1, head_crop=True),
    "tiny": PreprocessConfig(input_size=(32, 32), channels=1, head_crop=True),
}


def preprocess_config(
    architecture: str, input_size: tuple[int, int] | None = None
) -> PreprocessConfig:
    """Return the architecture's preprocessing, at another `input_size` (height, width) if given."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; choose from {sorted(ARCHITECTURES)}"
        )
    config = ARCHITECTURES[architecture]
    if input_size is None:
        return config
    if min(input_size) < 32:
        raise ValueError(f"input size {input_size} is too small: at least 32 x 32")
    return dataclasses.replace(config, input_size=(int(input_size[0]), int(input_size[1])))


def build_model(
    architecture: str, dropout_rate: float = 0.3, input_size: tuple[int, int] | None = None
) -> keras.Model:
    """Return an uncompiled Functional model mapping 0..255 images to class probabilities."""
    config = preprocess_config(architecture, input_size)
    inputs = keras.Input((*config.input_size, config.channels), name="image")
    builders: dict[str, Callable[[Any, float], Any]] = {
        "seed_cnn": _seed_cnn,
        "mri_cnn": _mri_cnn,
        "tiny": _tiny,
    }
    outputs = builders[architecture](inputs, dropout_rate)
    return keras.Model(inputs, outputs, name=architecture)


def _seed_cnn(inputs: Any, dropout_rate: float) -> Any:
    """The tutorial's network: four Conv2D + MaxPool blocks, Flatten, Dense, softmax."""
    x = Rescale(name="rescale")(inputs)
    for index, filters in enumerate((32, 32, 64, 64)):
        name = LAST_CONV_LAYER if index == 3 else None
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    return layers.Dense(len(CLASS_NAMES), activation="softmax", name="probabilities")(x)


# Filters of the stem and of each separable unit, 80 -> 40 -> 20 -> 10 pixels at 160 input.
MRI_CNN_FILTERS = (32, 48, 96, 96, 160, 160, 256)


def _mri_cnn(inputs: Any, dropout_rate: float) -> Any:
    """A small separable-convolution network: 106k parameters, 119 MFLOP per 160x160 slice.

    GroupNormalization rather than BatchNorm: it behaves the same in training and
    inference, so no moving statistics can drift away from clean inputs.
    """
    stem, *units = MRI_CNN_FILTERS
    x = PerImageStandardization(name="standardize")(inputs)
    x = _conv_unit(layers.Conv2D(stem, 3, strides=2, padding="same", use_bias=False), x)
    for index, filters in enumerate(units):
        if index in (1, 3, 5):  # halve the resolution before each new stage
            x = layers.MaxPooling2D()(x)
        name = LAST_CONV_LAYER if index == len(units) - 1 else None
        x = _conv_unit(layers.SeparableConv2D(filters, 3, padding="same", use_bias=False), x, name)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout_rate)(x)
    return layers.Dense(len(CLASS_NAMES), activation="softmax", name="probabilities")(x)


def _conv_unit(convolution: layers.Layer, x: Any, name: str | None = None) -> Any:
    x = convolution(x)
    x = layers.GroupNormalization(groups=8)(x)
    return layers.Activation("relu", name=name)(x)


def _tiny(inputs: Any, dropout_rate: float) -> Any:
    x = PerImageStandardization()(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name=LAST_CONV_LAYER)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dense(len(CLASS_NAMES), activation="softmax", name="probabilities")(x)


def estimate_flops(model: keras.Model) -> int:
    """Return multiply-adds x 2 of the convolution and dense layers for one image."""
    total = 0
    for layer in model.layers:
        if not hasattr(layer, "kernel") and not isinstance(layer, layers.SeparableConv2D):
            continue
        output_shape = layer.output.shape
        spatial = 1
        for dim in output_shape[1:-1]:
            spatial *= int(dim)
        if isinstance(layer, layers.SeparableConv2D):
            depthwise = layer.depthwise_kernel.shape
            total += spatial * int(depthwise[0] * depthwise[1] * depthwise[2])
            total += spatial * int(
                layer.pointwise_kernel.shape[2] * layer.pointwise_kernel.shape[3]
            )
        else:
            total += spatial * int(keras.ops.size(layer.kernel))
    return 2 * total


class ServingGroupNormalization(layers.GroupNormalization):  # type: ignore[misc]  # Keras ships no types
    """Channels-last GroupNormalization, same weights and outputs; `mri_cnn` runs 1.7x faster.

    Keras reduces a 5-D (n, h, w, groups, channels/groups) view of the tensor, which
    TensorFlow does slowly on the CPU: 70% of `mri_cnn`'s inference time. Moments per
    channel first (a plain reduction over the image), then per group, and one fused
    scale-and-shift give the same figures. For serving only: it is never saved.
    """

    def call(self, inputs: Any) -> Any:
        # In float32 whatever precision the convolution before it computed in (Keras' own
        # layer does the same under mixed precision).
        inputs = keras.ops.cast(inputs, self.compute_dtype)
        channels = int(inputs.shape[-1])
        per_group = channels // self.groups
        batch = keras.ops.shape(inputs)[0]

        def per_group_mean(per_channel: Any) -> Any:
            grouped = keras.ops.reshape(per_channel, (batch, self.groups, per_group))
            return keras.ops.mean(grouped, axis=-1, keepdims=True)

        def per_channel(per_group_values: Any) -> Any:
            spread = keras.ops.broadcast_to(per_group_values, (batch, self.groups, per_group))
            return keras.ops.reshape(spread, (batch, 1, 1, channels))

        mean = per_group_mean(keras.ops.mean(inputs, axis=(1, 2)))
        mean_square = per_group_mean(keras.ops.mean(keras.ops.square(inputs), axis=(1, 2)))
        variance = keras.ops.maximum(mean_square - keras.ops.square(mean), 0.0)
        scale = per_channel(keras.ops.rsqrt(variance + self.epsilon)) * self.gamma
        shift = self.beta - per_channel(mean) * scale
        return inputs * scale + shift


# The layers mixed precision computes in float16: the convolutions, nearly all the work.
# Standardisation, normalisation and the softmax stay float32 (a squared 0..255 intensity
# already overflows float16), as Keras' mixed-precision guide advises for the output.
_HALF_PRECISION_LAYERS = (layers.Conv2D, layers.SeparableConv2D)
MIXED_PRECISION = "mixed_float16"


def for_serving(model: keras.Model, mixed_precision: bool = False) -> keras.Model:
    """Return a copy of `model`, nested members included, with faster equivalent layers;
    with `mixed_precision`, its convolutions compute in float16 (float32 weights)."""

    def clone(layer: layers.Layer) -> layers.Layer:
        config = layer.get_config()
        if mixed_precision and isinstance(layer, _HALF_PRECISION_LAYERS):
            config["dtype"] = MIXED_PRECISION
        if type(layer) is layers.GroupNormalization and layer.axis == -1:
            return ServingGroupNormalization.from_config(config)
        return layer.__class__.from_config(config)

    served = keras.models.clone_model(model, clone_function=clone, recursive=True)
    served.set_weights(model.get_weights())
    return served
