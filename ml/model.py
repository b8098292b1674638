"""The architectures, as Functional Keras models: `mri_cnn` (default), `seed_cnn`, `tiny`.

Every model maps preprocessed images (see `ml.preprocessing.CONFIGS`) to class
probabilities in `CLASS_NAMES` order. Imports TensorFlow: never import this
module from the web side or a Celery parent process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
from keras import layers

from ml.artefact import library_versions, utc_now, write_json
from ml.labels import CLASS_NAMES
from ml.preprocessing import config_for
from ml.registry import METADATA_FILE, MODEL_FILE

# Grad-CAM reads the activations of the layer with this name.
LAST_CONV_LAYER = "last_conv"
ARCHITECTURES = ("mri_cnn", "seed_cnn", "tiny")


def build_model(architecture: str, dropout_rate: float = 0.3) -> keras.Model:
    """Return an uncompiled Functional model for `architecture`."""
    config = config_for(architecture)
    builders: dict[str, Callable[[Any, float], Any]] = {
        "mri_cnn": _mri_cnn,
        "seed_cnn": _seed_cnn,
        "tiny": _tiny,
    }
    inputs = keras.Input((*config.input_size, config.channels), name="image")
    outputs = builders[architecture](inputs, dropout_rate)
    return keras.Model(inputs, outputs, name=architecture)


def _mri_cnn(inputs: Any, dropout_rate: float) -> Any:
    """Small convolutional network for 128x128 grayscale slices (~57 MFLOP, ~145k params).

    Two strided convolutions bring 128x128 down to 32x32 at once, and separable
    convolutions do the rest: the CPU cost per image stays below JPEG decoding.
    No normalisation layers: GroupNorm quadrupled CPU inference time here, and
    BatchNorm's moving statistics drift from clean inference images (field notes);
    inputs are already standardised per image in preprocessing.
    """
    x = _conv(inputs, layers.Conv2D, 24, strides=2)  # 64x64
    x = _conv(x, layers.Conv2D, 32, strides=2)  # 32x32
    x = _conv(x, layers.SeparableConv2D, 64)
    x = _conv(x, layers.SeparableConv2D, 64)
    x = layers.MaxPooling2D()(x)  # 16x16
    x = _conv(x, layers.SeparableConv2D, 128)
    x = _conv(x, layers.SeparableConv2D, 128)
    x = layers.MaxPooling2D()(x)  # 8x8
    x = _conv(x, layers.SeparableConv2D, 256)
    x = _conv(x, layers.SeparableConv2D, 256, name=LAST_CONV_LAYER)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout_rate)(x)
    return layers.Dense(len(CLASS_NAMES), activation="softmax", name="probabilities")(x)


def _conv(
    x: Any, layer_class: type[layers.Layer], filters: int, strides: int = 1, name: str | None = None
) -> Any:
    if layer_class is layers.SeparableConv2D:
        # Keras counts a depthwise kernel's fan-in as 3*3*channels, not 3*3; without
        # normalisation layers that shrinks activations ~channels-fold per layer and
        # the network never learns. Scale the initialiser back to a fan-in of 9.
        depthwise = keras.initializers.VarianceScaling(float(x.shape[-1]), "fan_in")
        initializers = {"depthwise_initializer": depthwise, "pointwise_initializer": "he_normal"}
    else:
        initializers = {"kernel_initializer": "he_normal"}
    convolution = layer_class(
        filters, 3, strides=strides, padding="same", activation="relu", name=name, **initializers
    )
    return convolution(x)


def _seed_cnn(inputs: Any, dropout_rate: float) -> Any:
    """The tutorial's network: four Conv2D(32) + MaxPool blocks, Flatten, Dense, softmax.

    Inputs are already rescaled by 1/255 in preprocessing, as its
    ImageDataGenerator(rescale=1/255) did. `dropout_rate` is unused: it had none.
    """
    x = inputs
    for index in range(4):
        name = LAST_CONV_LAYER if index == 3 else None
        x = layers.Conv2D(32, 3, padding="same", activation="relu", name=name)(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    return layers.Dense(len(CLASS_NAMES), activation="softmax", name="probabilities")(x)


def _tiny(inputs: Any, dropout_rate: float) -> Any:
    """Two convolutions: builds and saves in well under a second, for tests."""
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name=LAST_CONV_LAYER)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dense(len(CLASS_NAMES), activation="softmax", name="probabilities")(x)


def estimate_flops(model: keras.Model) -> int:
    """Return 2 x multiply-adds of the convolution and dense layers for one image."""
    total = 0
    for layer in model.layers:
        spatial = _spatial_size(layer)
        if isinstance(layer, layers.SeparableConv2D):
            total += spatial * _size(layer.depthwise_kernel)
            total += spatial * _size(layer.pointwise_kernel)
        elif isinstance(layer, layers.Conv2D | layers.Dense):
            total += spatial * _size(layer.kernel)
    return 2 * total


def _spatial_size(layer: layers.Layer) -> int:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return 0
    spatial = 1
    for dim in shape[1:-1]:
        spatial *= int(dim)
    return spatial


def _size(variable: Any) -> int:
    count = 1
    for dim in variable.shape:
        count *= int(dim)
    return count


def save_artefact(
    model: keras.Model,
    folder: Path,
    version: str,
    architecture: str,
    extra_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write `folder/model.keras` and `folder/metadata.json`; return the metadata.

    The metadata carries everything serving needs (class order, preprocessing)
    and what an auditor asks (data fingerprint, split, metrics, library versions).
    """
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILE)
    metadata: dict[str, Any] = {
        "version": version,
        "architecture": architecture,
        "class_names": list(CLASS_NAMES),
        "input_size": list(config_for(architecture).input_size),
        "preprocessing": config_for(architecture).to_metadata(),
        "gradcam_layer": LAST_CONV_LAYER,
        "parameter_count": int(model.count_params()),
        "flops_per_image": estimate_flops(model),
        "library_versions": library_versions(),
        "created_at": utc_now(),
    }
    metadata.update(extra_metadata or {})
    write_json(folder / METADATA_FILE, metadata)
    return metadata
