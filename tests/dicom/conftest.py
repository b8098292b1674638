from __future__ import annotations

from typing import Any

import pytest
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from dicom.models import Study
from dicom.studies import slice_outcomes
from predictions.models import Job, Prediction
from tests.api import submit
from tests.dicom_files import mr_dataset, picture, to_bytes
from tests.images import encode, mri_like

GLIOMA = {"glioma": 0.7, "meningioma": 0.05, "no_tumor": 0.2, "pituitary": 0.05}
CALM = {"glioma": 0.05, "meningioma": 0.05, "no_tumor": 0.85, "pituitary": 0.05}
UNSURE = {"glioma": 0.3, "meningioma": 0.05, "no_tumor": 0.6, "pituitary": 0.05}


def classify(
    job: Job, label: str, probabilities: dict[str, float], needs_review: bool = False
) -> None:
    """Finish `job` as a worker would have: succeeded, with a prediction and a heat map."""
    job.status = Job.Status.SUCCEEDED
    job.save()
    prediction = Prediction(job=job, label=label, probabilities=probabilities,
                            needs_review=needs_review, model_version="model-7",
                            inference_ms=3.0)  # fmt: skip
    overlay = encode(mri_like(64, seed=9).convert("RGB"))
    prediction.heatmap.save("heatmap.png", ContentFile(overlay), save=False)
    prediction.save()


@pytest.fixture
def finished_study(api: APIClient, patient: Any) -> Study:
    """A two-slice MR study whose second slice the model called a glioma."""
    dataset = mr_dataset([picture(0), picture(1)], patient_id=patient.external_id)
    response = submit(api, patient, to_bytes(dataset), name="study.dcm")
    assert response.status_code == 202
    study = Study.objects.get()
    first, second = slice_outcomes(study)
    classify(first.job, "no_tumor", CALM)
    classify(second.job, "glioma", GLIOMA)
    return study
