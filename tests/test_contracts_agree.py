"""Facts defined once, checked where an import boundary forbids importing the definition.

The site and the workers import the labels and failure codes from `workers.contracts`;
`ml` may not import our other packages, so its class list is tied to the contract here.
"""

from __future__ import annotations

from ml.inference import Classification
from ml.labels import CLASS_NAMES
from predictions.models import Job, Prediction, Review
from workers.contracts import LABELS, FailureCode, PredictionResult


def test_the_models_classes_are_the_contracts_labels_in_order() -> None:
    assert CLASS_NAMES == LABELS


def test_the_sites_label_choices_are_the_contracts_labels() -> None:
    for model in (Prediction, Review):
        choices = model._meta.get_field("label").choices
        assert [value for value, _ in choices] == list(LABELS)


def test_the_sites_failure_codes_are_the_contracts() -> None:
    choices = Job._meta.get_field("failure_code").choices
    assert [value for value, _ in choices] == [code.value for code in FailureCode]


def test_the_result_carries_every_field_of_the_models_answer() -> None:
    answer = set(Classification.__dataclass_fields__)
    # A refusal is no result: it travels as a failure report with its own code.
    assert "refusal" in answer and FailureCode.NOT_BRAIN_MRI in set(FailureCode)
    assert answer - {"refusal"} <= set(PredictionResult.__dataclass_fields__)
