"""The decision rule: temperature scaling and the thresholds chosen from target rates."""

from __future__ import annotations

import numpy as np
import pytest

from ml.calibration import (
    DecisionRule,
    apply_temperature,
    fit_no_tumor_threshold,
    fit_review_threshold,
    fit_temperature,
)
from ml.evaluate import expected_calibration_error
from ml.labels import CLASS_NAMES

NO_TUMOR = CLASS_NAMES.index("no_tumor")


def overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities sharper than the truth (temperature 0.5), labels drawn from the truth."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, 4))
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=row) for row in truth])
    return apply_temperature(truth, 0.5), labels


def test_temperature_scaling_recovers_the_temperature_and_lowers_the_ece() -> None:
    probabilities, labels = overconfident()
    temperature = fit_temperature(probabilities, labels)
    assert temperature == pytest.approx(2.0, rel=0.15)
    before, _ = expected_calibration_error(labels, probabilities)
    after, _ = expected_calibration_error(labels, apply_temperature(probabilities, temperature))
    assert after < before / 2
    np.testing.assert_array_equal(
        apply_temperature(probabilities, temperature).argmax(axis=1), probabilities.argmax(axis=1)
    )


def test_no_tumor_threshold_leaves_at_most_the_target_share_of_tumours_unflagged() -> None:
    rng = np.random.default_rng(1)
    labels = np.array([0] * 200 + [NO_TUMOR] * 100)
    p_no_tumor = np.where(labels == NO_TUMOR, rng.uniform(0.5, 1.0, 300), rng.uniform(0, 0.9, 300))
    probabilities = np.stack(
        [1 - p_no_tumor, np.zeros(300), p_no_tumor, np.zeros(300)], axis=1
    ).astype(np.float32)
    threshold = fit_no_tumor_threshold(probabilities, labels, target_miss_rate=0.01)
    rule = DecisionRule(temperature=1.0, no_tumor_threshold=threshold, review_threshold=0.0)
    flagged = rule.needs_review(probabilities)
    unflagged_misses = (labels != NO_TUMOR) & (probabilities.argmax(axis=1) == NO_TUMOR) & ~flagged
    assert unflagged_misses.sum() <= 2  # 1% of 200 tumours
    assert (~flagged[labels == NO_TUMOR]).any()  # confident "no tumour" answers still stand


def test_no_misses_need_no_threshold_and_the_review_threshold_meets_its_error_target() -> None:
    probabilities = np.array([[0.9, 0.05, 0.03, 0.02], [0.02, 0.03, 0.9, 0.05]], np.float32)
    assert fit_no_tumor_threshold(probabilities, np.array([0, NO_TUMOR])) == 0.0
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0.3, 1.0, 1000)
    labels = np.zeros(1000, int)
    right = rng.uniform(0, 1, 1000) < confidence  # right as often as it is sure
    rows = np.where(right[:, None], [[1.0, 0, 0, 0]], [[0, 1.0, 0, 0]]) * confidence[:, None]
    threshold = fit_review_threshold(rows + 1e-6, labels, target_error=0.05)
    kept = confidence >= threshold
    assert (~right[kept]).mean() <= 0.05
    assert 0.8 < threshold < 1.0


def test_a_model_without_a_fitted_rule_keeps_the_old_fixed_threshold() -> None:
    rule = DecisionRule.from_metadata({})
    probabilities = np.array([[0.6, 0.2, 0.1, 0.1], [0.8, 0.1, 0.05, 0.05]], np.float32)
    np.testing.assert_array_equal(rule.needs_review(probabilities), [True, False])
    np.testing.assert_allclose(rule.calibrate(probabilities), probabilities, rtol=1e-5)
    stored = {"temperature": 2.0, "no_tumor_threshold": 0.9, "review_threshold": 0.5}
    fitted = DecisionRule.from_metadata({"decision": stored})
    assert fitted == DecisionRule(2.0, 0.9, 0.5)
