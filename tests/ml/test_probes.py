"""Sequence probes and the tumour-miss rate, on tiny synthetic slices."""

from __future__ import annotations

import numpy as np
import pytest

from ml.evaluate import compute_metrics, tumour_miss_rates
from ml.labels import CLASS_NAMES
from ml.probes import PROBES, apply_probe, head_mask, invert, t2_like

GLIOMA, MENINGIOMA, NO_TUMOR, PITUITARY = (CLASS_NAMES.index(n) for n in CLASS_NAMES)


def t1_like_slice(side: int = 32) -> np.ndarray:
    """Black background, a bright rim (scalp fat), dark fluid in the middle, grey brain."""
    y, x = np.mgrid[0:side, 0:side] / side - 0.5
    radius = np.hypot(x, y)
    image = np.zeros((side, side), np.float32)
    image[radius < 0.45] = 230  # rim
    image[radius < 0.38] = 120  # brain
    image[radius < 0.1] = 20  # fluid: dark on T1
    return image[..., np.newaxis]


def test_head_mask_keeps_dark_fluid_inside_the_head_and_leaves_the_background_out() -> None:
    image = t1_like_slice()
    mask = head_mask(image)
    assert mask[16, 16]  # the dark centre is inside the head
    assert not mask[0, 0] and not mask[16, 0]


def test_inversion_makes_fluid_bright_and_keeps_the_background_black() -> None:
    image = t1_like_slice()
    inverted = invert(image)
    fluid, brain, rim = inverted[16, 16, 0], inverted[16, 10, 0], inverted[16, 3, 0]
    assert fluid > 200 and fluid > brain > rim  # the order of grey levels turned around
    assert inverted[0, 0, 0] == 0  # background unchanged
    assert inverted.shape == image.shape and inverted.dtype == np.float32


def test_t2_like_curve_brightens_fluid_and_darkens_white_matter() -> None:
    image = t1_like_slice()
    probed = t2_like(image)
    assert probed[16, 16, 0] > probed[16, 10, 0]  # fluid now brighter than brain
    assert probed[0, 0, 0] == 0


def test_sequence_swap_renders_tumours_t2_like_and_no_tumour_slices_inverted() -> None:
    images = np.stack([t1_like_slice(), t1_like_slice()])
    labels = np.array([GLIOMA, NO_TUMOR])
    probed = apply_probe("sequence_swap", images, labels)
    np.testing.assert_allclose(probed[0], t2_like(images[0]))
    np.testing.assert_allclose(probed[1], invert(images[1]))


def test_random_curve_probe_is_seeded_and_changes_every_image() -> None:
    images = np.stack([t1_like_slice()] * 3)
    labels = np.array([GLIOMA, MENINGIOMA, PITUITARY])
    first = apply_probe("random_curve", images, labels, seed=5)
    again = apply_probe("random_curve", images, labels, seed=5)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first[0], images[0])
    assert not np.allclose(first[0], first[1])  # one curve per image


def test_every_probe_keeps_shape_and_an_unknown_one_is_refused() -> None:
    images = np.stack([t1_like_slice()] * 2)
    for probe in PROBES:
        assert apply_probe(probe, images, np.array([GLIOMA, NO_TUMOR])).shape == images.shape
    with pytest.raises(ValueError, match="unknown probe"):
        apply_probe("solarise", images, np.array([0, 0]))


def test_tumour_miss_rate_counts_tumours_called_no_tumour_overall_and_per_class() -> None:
    y_true = np.array([GLIOMA, GLIOMA, GLIOMA, GLIOMA, MENINGIOMA, PITUITARY, NO_TUMOR, NO_TUMOR])
    y_pred = np.array([NO_TUMOR, GLIOMA, MENINGIOMA, NO_TUMOR, MENINGIOMA, PITUITARY, NO_TUMOR,
                       GLIOMA])  # fmt: skip
    flagged = np.array([True, False, False, False, False, False, False, False])
    rates = tumour_miss_rates(y_true, y_pred, flagged)
    assert rates["overall"] == pytest.approx(2 / 6)  # a no_tumor slice called glioma is no miss
    assert rates["per_class"] == pytest.approx({"glioma": 0.5, "meningioma": 0.0, "pituitary": 0.0})
    assert rates["missed"] == 2 and rates["tumours"] == 6
    assert rates["unflagged"] == pytest.approx(1 / 6)  # one of the two misses was flagged


def test_compute_metrics_reports_the_miss_rate_and_the_share_flagged() -> None:
    y_true = np.array([GLIOMA, NO_TUMOR])
    probabilities = np.array([[0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.7, 0.1]])
    metrics = compute_metrics(y_true, probabilities, flagged=np.array([True, False]))
    assert metrics["tumour_miss"]["overall"] == 1.0
    assert metrics["tumour_miss"]["unflagged"] == 0.0
    assert metrics["needs_review"] == 0.5
