"""The SR and the SC sent back to the PACS: valid DICOM, right content, right study."""

from __future__ import annotations

import io

import highdicom as hd
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ComprehensiveSRStorage, SecondaryCaptureImageStorage

from dicom.models import Study
from dicom.reports import DISCLAIMER, build_reports
from dicom.studies import slice_outcomes, study_result
from tests.dicom.conftest import GLIOMA

pytestmark = pytest.mark.django_db


def reread(dataset: Dataset) -> Dataset:
    """Write and read back, as the PACS will: what is not valid DICOM fails here."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return dcmread(io.BytesIO(buffer.getvalue()))


def texts(report: Dataset) -> dict[str, object]:
    found: dict[str, object] = {}
    for item in report.ContentSequence:
        name = item.ConceptNameCodeSequence[0].CodeMeaning
        if item.ValueType == "TEXT":
            found[name] = item.TextValue
        elif item.ValueType == "NUM":
            found[name] = float(item.MeasuredValueSequence[0].NumericValue)
        elif item.ValueType == "CODE":
            found[name] = item.ConceptCodeSequence[0].CodeMeaning
        elif item.ValueType == "IMAGE":
            found[name] = item.ReferencedSOPSequence[0]
    return found


def reports_for(study: Study) -> tuple[Dataset, Dataset]:
    result = study_result(slice_outcomes(study))
    assert result is not None
    with result.deciding.job.prediction.heatmap.open("rb") as handle:
        reports = build_reports(study, result, handle.read())
    assert reports.secondary_capture is not None
    return reread(reports.structured_report), reread(reports.secondary_capture)


def test_the_structured_report_says_what_the_model_said(finished_study: Study) -> None:
    report, _ = reports_for(finished_study)
    assert report.SOPClassUID == ComprehensiveSRStorage and report.Modality == "SR"
    content = texts(report)
    assert content["Finding"] == "glioma"
    assert content["Probability of glioma"] == pytest.approx(GLIOMA["glioma"])
    assert content["Probability of no tumor"] == pytest.approx(GLIOMA["no_tumor"])
    assert content["Needs review by a clinician"] == "No"
    assert content["Algorithm Version"] == "model-7"
    assert content["Comment"] == DISCLAIMER
    assert report.CompletionFlag == "COMPLETE"
    hd.sr.ComprehensiveSR.from_dataset(report)  # highdicom accepts it as an SR document


def test_the_report_references_the_source_study_and_the_deciding_slice(
    finished_study: Study,
) -> None:
    report, _ = reports_for(finished_study)
    instance = finished_study.series.get().instances.get()
    assert report.StudyInstanceUID == finished_study.study_instance_uid
    assert report.PatientID == finished_study.patient.external_id
    evidence = report.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == finished_study.study_instance_uid
    referenced = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert referenced.ReferencedSOPInstanceUID == instance.sop_instance_uid
    source = texts(report)["Source"]
    assert source.ReferencedSOPInstanceUID == instance.sop_instance_uid
    assert int(source.ReferencedFrameNumber) == 2  # the glioma slice, frame 2


def test_the_secondary_capture_is_the_heat_map_in_the_source_study(
    finished_study: Study,
) -> None:
    _, capture = reports_for(finished_study)
    assert capture.SOPClassUID == SecondaryCaptureImageStorage
    assert capture.StudyInstanceUID == finished_study.study_instance_uid
    assert capture.PatientID == finished_study.patient.external_id
    assert capture.pixel_array.shape == (64, 64, 3)
    assert capture.SeriesInstanceUID != finished_study.series.get().series_instance_uid


def test_sending_the_same_answer_again_reuses_the_uids(finished_study: Study) -> None:
    first, _ = reports_for(finished_study)
    again, _ = reports_for(finished_study)
    assert first.SOPInstanceUID == again.SOPInstanceUID
