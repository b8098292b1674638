"""A study's own status and result, derived from its slices' jobs.

The aggregation rule (docs/pacs.md): the study's answer is its most suspicious
slice. Among slices the model labelled as a tumour, the one with the highest
tumour probability (1 - P(no tumour)) wins; if no slice was labelled a tumour,
the study is "no tumour", reported with its highest-tumour-probability slice.
The study needs review when that slice does, or when any slice needs review,
failed, or was refused by the model: a partial answer is never a confident one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dicom.models import Slice, Study
from predictions.models import Job, Prediction

NO_TUMOR = "no_tumor"


class StudyStatus(StrEnum):
    RECEIVED = "received"  # recorded, nothing to classify yet
    PROCESSING = "processing"  # some slices' jobs are still queued or running
    DONE = "done"  # every slice's job has finished (succeeded or failed)
    REFUSED = "refused"  # every series was refused at the door; nothing was classified


@dataclass(frozen=True)
class SliceOutcome:
    slice: Slice
    job: Job

    @property
    def prediction(self) -> Prediction | None:
        if self.job.status != Job.Status.SUCCEEDED:
            return None
        return getattr(self.job, "prediction", None)


@dataclass(frozen=True)
class StudyResult:
    label: str
    probabilities: dict[str, float]
    needs_review: bool
    model_version: str
    deciding: SliceOutcome
    slices_classified: int
    slices_failed: int


def slice_outcomes(study: Study) -> list[SliceOutcome]:
    """Return each slice of the study with its latest job, in series and slice order."""
    slices = (
        Slice.objects.filter(series__study=study)
        .select_related("scan", "series", "instance")
        .order_by(
            "series__series_number",
            "series__created",
            "instance__instance_number",
            "position",
            "frame",
        )
    )
    outcomes = []
    for item in slices:
        job = (
            Job.objects.filter(scan=item.scan).select_related("prediction").order_by("-created")
        ).first()
        if job is not None:
            outcomes.append(SliceOutcome(item, job))
    return outcomes


def study_status(study: Study, outcomes: list[SliceOutcome] | None = None) -> StudyStatus:
    outcomes = slice_outcomes(study) if outcomes is None else outcomes
    if not outcomes:
        refused = study.series.exclude(refusal="").exists()
        return StudyStatus.REFUSED if refused else StudyStatus.RECEIVED
    if any(not outcome.job.is_finished for outcome in outcomes):
        return StudyStatus.PROCESSING
    return StudyStatus.DONE


def tumour_probability(prediction: Prediction) -> float:
    return 1.0 - float(prediction.probabilities.get(NO_TUMOR, 0.0))


def study_result(outcomes: list[SliceOutcome]) -> StudyResult | None:
    """Return the study's answer by the most-suspicious-slice rule; None if no slice has one."""
    answered = [outcome for outcome in outcomes if outcome.prediction is not None]
    if not answered:
        return None
    tumours = [o for o in answered if o.prediction and o.prediction.label != NO_TUMOR]
    deciding = max(tumours or answered, key=lambda o: tumour_probability(_prediction(o)))
    prediction = _prediction(deciding)
    failed = len(outcomes) - len(answered)
    any_review = any(_prediction(o).needs_review for o in answered)
    return StudyResult(
        label=prediction.label,
        probabilities=dict(prediction.probabilities),
        needs_review=prediction.needs_review or any_review or failed > 0,
        model_version=prediction.model_version,
        deciding=deciding,
        slices_classified=len(answered),
        slices_failed=failed,
    )


def _prediction(outcome: SliceOutcome) -> Prediction:
    prediction = outcome.prediction
    if prediction is None:
        raise ValueError("this slice has no prediction")
    return prediction
