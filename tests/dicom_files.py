"""Synthetic DICOM for the tests, built with pydicom from generated pixels: never a real scan."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    MRImageStorage,
    generate_uid,
)

from tests.images import encode, mri_like

# Stored values are the 8-bit picture times 16 (a 12-bit scan). With this window (PS3.3
# C.11.2.1.2.1, LINEAR) the displayed value is exactly stored / 16: the original picture.
SCALE = 16
WINDOW_CENTER, WINDOW_WIDTH = 2040.5, 4081.0


def picture(seed: int = 0, size: int = 128) -> np.ndarray:
    """The 8-bit slice a DICOM file is made from, and what rendering must give back."""
    return np.asarray(mri_like(size, seed), dtype=np.uint8)


def mr_dataset(
    pictures: Sequence[np.ndarray] | np.ndarray | None = None,
    *,
    patient_id: str = "MRN-000001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    modality: str = "MR",
    body_part: str = "BRAIN",
    instance_number: int = 1,
    series_number: int = 1,
    photometric: str = "MONOCHROME2",
    slope: float = 1.0,
    intercept: float = 0.0,
    signed: bool = False,
    window: bool = True,
) -> FileDataset:
    """Return an MR image whose rendering (Modality LUT, window, photometric) is `pictures`."""
    frames = (
        [picture()]
        if pictures is None
        else list(np.asarray(pictures).reshape(-1, *np.asarray(pictures).shape[-2:]))
    )
    values = np.stack(frames).astype(np.float64) * SCALE  # the physical values
    if photometric == "MONOCHROME1":
        values = SCALE * 255 - values
    stored = np.rint((values - intercept) / slope)
    dataset = _base(modality, sop_uid)
    dataset.PatientID, dataset.PatientName = patient_id, "Synthetic^Patient"
    dataset.StudyInstanceUID = study_uid or generate_uid()
    dataset.SeriesInstanceUID = series_uid or generate_uid()
    dataset.Modality, dataset.BodyPartExamined = modality, body_part
    dataset.StudyDate, dataset.AccessionNumber = "20260101", "ACC-1"
    dataset.SeriesNumber, dataset.InstanceNumber = series_number, instance_number
    dataset.SeriesDescription, dataset.SequenceName = "AX T1 POST", "*tfl3d1"
    dataset.Rows, dataset.Columns = stored.shape[1:]
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, photometric
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = (
        16,
        12 if not signed else 16,
        11 if not signed else 15,
    )
    dataset.PixelRepresentation = 1 if signed else 0
    if slope != 1.0 or intercept != 0.0:
        dataset.RescaleSlope, dataset.RescaleIntercept = slope, intercept
    if window:
        dataset.WindowCenter, dataset.WindowWidth = WINDOW_CENTER, WINDOW_WIDTH
    if len(frames) > 1:
        dataset.NumberOfFrames = len(frames)
    dtype = np.int16 if signed else np.uint16
    dataset.PixelData = (
        stored.astype(dtype).squeeze().tobytes()
        if len(frames) == 1
        else stored.astype(dtype).tobytes()
    )
    return dataset


def _base(modality: str, sop_uid: str | None) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset = FileDataset("synthetic.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = MRImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    return dataset


def to_bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def jpeg_baseline(dataset: FileDataset, frame: np.ndarray) -> FileDataset:
    """Re-encode as JPEG Baseline (8-bit, lossy): as some scanners and PACS export."""
    from PIL import Image

    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
    dataset.PixelRepresentation = 0
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        if keyword in dataset:
            delattr(dataset, keyword)
    dataset.WindowCenter, dataset.WindowWidth = 127.5, 256.0  # the identity on 8 bits
    dataset.PixelData = encapsulate([encode(Image.fromarray(frame, mode="L"), "JPEG")])
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    return dataset


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()
