"""The model's decision rule: calibrated probabilities, and when an answer needs a reader's review.

Fitted on the calibration part of the training folders (kept apart from the
validation part that the reported figures come from) and stored in the
artefact's metadata, so every place that serves the model applies the same rule.

- Temperature scaling divides the log-probabilities by one number T, which
  makes the confidences match how often the model is right (ECE) without
  changing any label.
- "No tumour" is the dangerous answer. It is given without a review flag only
  when its probability reaches `no_tumor_threshold`, chosen so that on the
  calibration images, sequence probes included, at most `target_miss_rate` of
  the tumours would be called "no tumour" unflagged.
- Any other answer below `review_threshold` confidence needs review too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ml.labels import CLASS_NAMES

NO_TUMOR = CLASS_NAMES.index("no_tumor")
# What models without a fitted rule used: a fixed confidence threshold.
LEGACY_REVIEW_THRESHOLD = 0.7
TARGET_MISS_RATE = 0.01
TARGET_REVIEW_ERROR = 0.05


@dataclass(frozen=True)
class DecisionRule:
    temperature: float = 1.0
    no_tumor_threshold: float = LEGACY_REVIEW_THRESHOLD
    review_threshold: float = LEGACY_REVIEW_THRESHOLD

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        """Temperature-scaled probabilities (rows sum to 1)."""
        return apply_temperature(probabilities, self.temperature)

    def needs_review(self, calibrated: np.ndarray) -> np.ndarray:
        """True for each row the reader must check: unsure, or "no tumour" without enough proof."""
        labels = calibrated.argmax(axis=1)
        unsure = calibrated.max(axis=1) < self.review_threshold
        weak_no_tumor = (labels == NO_TUMOR) & (calibrated[:, NO_TUMOR] < self.no_tumor_threshold)
        flags: np.ndarray = unsure | weak_no_tumor
        return flags

    def to_metadata(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> DecisionRule:
        rule = metadata.get("decision")
        if not rule:
            return cls()
        return cls(
            temperature=float(rule["temperature"]),
            no_tumor_threshold=float(rule["no_tumor_threshold"]),
            review_threshold=float(rule["review_threshold"]),
        )


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    calibrated: np.ndarray = (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)
    return calibrated


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of `labels` (a 1-D search)."""
    candidates = np.exp(np.linspace(np.log(0.2), np.log(5.0), 400))
    rows = np.arange(len(labels))

    def nll(temperature: float) -> float:
        scaled = apply_temperature(probabilities, temperature)
        return float(-np.log(np.clip(scaled[rows, labels], 1e-12, 1.0)).mean())

    return float(min(candidates, key=nll))


def fit_no_tumor_threshold(
    calibrated: np.ndarray, labels: np.ndarray, target_miss_rate: float = TARGET_MISS_RATE
) -> float:
    """The lowest p(no_tumor) threshold keeping unflagged tumour misses at or below the target.

    Only tumours the model calls "no tumour" matter; of those, the ones whose
    p(no_tumor) reaches the threshold go unflagged. Take the threshold just above
    the p(no_tumor) of the k-th most confident miss, k the misses the target allows.
    """
    tumours = labels != NO_TUMOR
    missed = tumours & (calibrated.argmax(axis=1) == NO_TUMOR)
    allowed = int(np.floor(target_miss_rate * tumours.sum()))
    confidences = np.sort(calibrated[missed, NO_TUMOR])[::-1]
    if len(confidences) <= allowed:
        return 0.0
    return float(min(1.0, confidences[allowed] + 1e-6))


def fit_review_threshold(
    calibrated: np.ndarray, labels: np.ndarray, target_error: float = TARGET_REVIEW_ERROR
) -> float:
    """The lowest confidence at which unflagged answers are wrong at most `target_error`."""
    confidence = calibrated.max(axis=1)
    wrong = calibrated.argmax(axis=1) != labels
    for threshold in np.linspace(0.25, 0.99, 75):
        kept = confidence >= threshold
        if not kept.any() or wrong[kept].mean() <= target_error:
            return float(threshold)
    return 0.99
