"""The round trip with a real PACS: a synthetic MR study sent to Orthanc by C-STORE, forwarded
by Orthanc to the site's STOW-RS, classified by a real worker, and the SR and the heat-map
Secondary Capture found back in Orthanc under the same study. Nothing is mocked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ComprehensiveSRStorage, SecondaryCaptureImageStorage, generate_uid

from dicom import delivery
from dicom.models import PacsConnection, StowCredential, Study
from dicom.studies import StudyStatus, slice_outcomes, study_result, study_status
from tests.dicom_files import mr_dataset, picture
from tests.factories import OrganisationFactory, PatientFactory
from tests.integration.conftest import wait_for
from tests.orthanc import Orthanc, missing_reason, start_orthanc, store_scu

pytestmark = pytest.mark.integration


@pytest.fixture
def pacs(site: str, tmp_path: Path) -> Iterator[tuple[Orthanc, Any]]:
    """Orthanc, and the organisation whose STOW-RS credential it forwards with."""
    if reason := missing_reason():
        pytest.skip(reason)
    organisation = OrganisationFactory()
    _, secret = StowCredential.issue(organisation, "orthanc-e2e")
    orthanc = start_orthanc(tmp_path / "orthanc", f"{site}/dicomweb/", "orthanc-e2e", secret)
    yield orthanc, organisation
    orthanc.stop()


def write_study(folder: Path, patient_id: str, study_uid: str) -> tuple[list[Path], list[str]]:
    """Three MR slices of one series and one CT image; return the files and the MR SOP UIDs."""
    folder.mkdir()
    series_uid = generate_uid()
    datasets = [
        mr_dataset(picture(seed, 128)[None], patient_id=patient_id, study_uid=study_uid,
                   series_uid=series_uid, instance_number=seed + 1)
        for seed in range(3)
    ]  # fmt: skip
    ct = mr_dataset(patient_id=patient_id, study_uid=study_uid, modality="CT", series_number=2)
    paths = []
    for index, dataset in enumerate([*datasets, ct]):
        paths.append(folder / f"{index}.dcm")
        dataset.save_as(paths[-1], enforce_file_format=True)
    return paths, [str(dataset.SOPInstanceUID) for dataset in datasets]


def connect(organisation: Any, orthanc: Orthanc, protocol: str) -> None:
    if protocol == "dicomweb":
        PacsConnection.objects.create(organisation=organisation, protocol=protocol,
                                      url=orthanc.dicomweb_url)  # fmt: skip
    else:
        PacsConnection.objects.create(organisation=organisation, protocol=protocol,
                                      host="127.0.0.1", port=orthanc.dicom_port,
                                      called_ae_title="ORTHANC")  # fmt: skip


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_a_study_goes_round_trip_through_orthanc(
    pacs: tuple[Orthanc, Any],
    start_worker: Callable[..., Any],
    settings: Any,
    tmp_path: Path,
    protocol: str,
) -> None:
    orthanc, organisation = pacs
    settings.DICOM_STUDY_SETTLE_S = 0
    patient = PatientFactory(organisation=organisation, external_id="E2E-0001")
    connect(organisation, orthanc, protocol)
    start_worker()
    study_uid = generate_uid()
    files, mr_uids = write_study(tmp_path / "scanner", patient.external_id, study_uid)

    store_scu(orthanc, files)  # the scanner sends the study to the PACS

    def classified() -> Study | None:
        study = Study.objects.filter(study_instance_uid=study_uid).first()
        if study is None or len(slice_outcomes(study)) < 3:
            return None
        return study if study_status(study) == StudyStatus.DONE else None

    try:
        study = wait_for(
            classified, 180, "Orthanc to forward the study and a worker to classify it"
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nOrthanc's log:\n{orthanc.log()[-3000:]}") from None
    result = study_result(slice_outcomes(study))
    assert result is not None and result.slices_classified == 3
    assert study.series.count() == 1  # Orthanc forwarded the MR series only

    wait_for(lambda: delivery.deliver_due()[0], 60, "the results to be sent")
    study.refresh_from_db()
    assert study.delivery_status == "sent", study.delivery_error

    def results_in_orthanc() -> list[dict[str, Any]] | None:
        ours = [
            i
            for i in orthanc.find_instances(study_uid)
            if i["MainDicomTags"].get("SOPInstanceUID") not in mr_uids
        ]
        return ours if len(ours) >= 2 else None

    ours = wait_for(results_in_orthanc, 30, "the SR and the SC to arrive in Orthanc")
    assert len(orthanc.find_instances(study_uid)) == 4 + 2  # 3 MR, 1 CT, our SR and SC
    files_back = {dataset.SOPClassUID: dataset for dataset in map(orthanc.dataset, ours)}
    report, capture = files_back[ComprehensiveSRStorage], files_back[SecondaryCaptureImageStorage]
    assert report.StudyInstanceUID == capture.StudyInstanceUID == study_uid
    assert report.PatientID == capture.PatientID == "E2E-0001"
    finding = next(item for item in report.ContentSequence
                   if item.ConceptNameCodeSequence[0].CodeMeaning == "Finding")  # fmt: skip
    assert finding.TextValue == result.label.replace("_", " ")
    evidence = report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert sorted(
        item.ReferencedSOPInstanceUID for item in evidence.ReferencedSOPSequence
    ) == sorted(mr_uids)
    assert capture.pixel_array.ndim == 3 and capture.pixel_array.shape[2] == 3
