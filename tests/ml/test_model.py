from __future__ import annotations

import keras
import numpy as np
import pytest

from ml.ensemble import build_ensemble
from ml.model import ServingGroupNormalization, build_model, for_serving


def _group_norm_types(model: keras.Model) -> set[type]:
    found = set()
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found |= _group_norm_types(layer)
        elif isinstance(layer, keras.layers.GroupNormalization):
            found.add(type(layer))
    return found


def test_the_serving_copy_computes_the_same_probabilities_with_faster_layers() -> None:
    keras.utils.set_random_seed(0)
    members = [build_model("mri_cnn", input_size=(48, 48)) for _ in range(2)]
    for member in members:  # trained-looking, not identity, normalisation weights
        for layer in member.layers:
            if isinstance(layer, keras.layers.GroupNormalization):
                layer.gamma.assign(np.random.uniform(0.5, 2, layer.gamma.shape))
                layer.beta.assign(np.random.uniform(-1, 1, layer.beta.shape))
    ensemble = build_ensemble(members)
    images = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 1)).astype(np.float32)

    served = for_serving(ensemble)

    assert _group_norm_types(ensemble) == {keras.layers.GroupNormalization}
    assert _group_norm_types(served) == {ServingGroupNormalization}
    expected = ensemble(images, training=False).numpy()
    assert served(images, training=False).numpy() == pytest.approx(expected, abs=1e-5)
