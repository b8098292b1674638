"""Grad-CAM without a backward pass, for networks whose head is pooling and one softmax layer.

Grad-CAM (Selvaraju et al. 2017) weights each channel k of the last convolution's
activations A by the mean gradient of the class score over the map, then keeps the
positive part of the weighted sum. When all that follows A is global average pooling
(dropout is the identity when serving) and a softmax layer z = W^T mean(A) + b,
p = softmax(z), that gradient is the same at every position:

    d p_c / d A_k(i, j) = sum_m p_c (delta_cm - p_m) W_km / (h w)

so the weights need only A, p and W, all of which the forward pass already has. The
worker gets A and p from the same LiteRT call that classifies (`ml.runtimes`), and the
heat map costs a matrix product instead of TensorFlow's forward and backward pass of
every member (`ml.inference._gradcam`, which stays the reference and the path for other
heads). Tested against it: tests/ml/test_gradcam.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Added to each map's maximum before normalising, as the TensorFlow path does.
_EPSILON = 1e-8


def softmax_head_kernel(network: Any, layer_name: str) -> np.ndarray | None:
    """Return the softmax layer's kernel (channels, classes) if `network`'s head allows the
    closed form: after `layer_name` only global average pooling, dropout and one softmax
    Dense layer. None for any other head (Flatten and hidden Dense layers, say)."""
    from keras import layers

    names = [layer.name for layer in network.layers]
    if layer_name not in names:
        return None
    head = network.layers[names.index(layer_name) + 1 :]
    if not head or not isinstance(head[0], layers.GlobalAveragePooling2D):
        return None
    *middle, last = head[1:] or [None]
    if not isinstance(last, layers.Dense) or getattr(last.activation, "__name__", "") != "softmax":
        return None
    if not all(isinstance(layer, layers.Dropout) for layer in middle):
        return None
    return np.asarray(last.kernel, np.float32)


def closed_form_cams(
    activations: np.ndarray, probabilities: np.ndarray, kernel: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    """Return one network's Grad-CAM maps (n, h, w) in [0, 1] at the activations' size.

    `activations` (n, h, w, channels) of the last convolution, `probabilities` (n, classes)
    the same network's softmax output, `kernel` (channels, classes) its softmax layer's
    weights, `targets` (n,) the class explained for each image.
    """
    n, height, width, _ = activations.shape
    rows = np.arange(n)
    target_p = probabilities[rows, targets][:, np.newaxis]
    # d p_c / d z_m for each image: p_c (delta_cm - p_m).
    jacobian = -target_p * probabilities
    jacobian[rows, targets] += target_p[:, 0]
    weights = jacobian @ kernel.T / (height * width)  # (n, channels)
    cams = np.maximum(np.einsum("nhwk,nk->nhw", activations, weights), 0.0)
    peaks = cams.reshape(n, -1).max(axis=1)[:, np.newaxis, np.newaxis]
    normalised: np.ndarray = (cams / (peaks + _EPSILON)).astype(np.float32)
    return normalised


def resize_bilinear(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (n, h, w) maps to (n, *size) as `tf.image.resize(..., "bilinear")` does
    (half-pixel centres, edges clamped), so both Grad-CAM paths draw the same map."""
    top, bottom, down = _interpolation(maps.shape[1], size[0])
    left, right, across = _interpolation(maps.shape[2], size[1])

    def along_rows(rows: np.ndarray) -> np.ndarray:
        chosen = maps[:, rows]
        blended: np.ndarray = (
            chosen[:, :, left] + (chosen[:, :, right] - chosen[:, :, left]) * across
        )
        return blended

    upper, lower = along_rows(top), along_rows(bottom)
    resized: np.ndarray = (upper + (lower - upper) * down[:, np.newaxis]).astype(np.float32)
    return resized


def _interpolation(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, weight of the upper) of each target position."""
    centres = (np.arange(target, dtype=np.float64) + 0.5) * (source / target) - 0.5
    floor = np.floor(centres)
    lower = np.clip(floor, 0, source - 1).astype(np.intp)
    upper = np.clip(np.ceil(centres), 0, source - 1).astype(np.intp)
    return lower, upper, (centres - floor).astype(np.float32)
