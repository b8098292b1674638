"""Read what a client sends (one DICOM file, or a zip of a series or a study) into instances.

Everything is read, checked and rendered in memory before anything is stored, so
a bad file is refused whole and leaves nothing behind.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from pydicom import dcmread
from pydicom.dataset import FileDataset
from pydicom.errors import InvalidDicomError

from dicom.rendering import frame_count, render_frame, stored_frames

PREAMBLE_MARKER = b"DICM"  # at byte 128 of every DICOM Part 10 file
ZIP_MARKER = b"PK\x03\x04"
DICOM_EXTENSIONS = (".dcm", ".dicom", ".zip")


class DicomError(ValueError):
    """A file that is not DICOM, is damaged, or cannot be shown: the sender's fault (a 400)."""

    def __init__(self, message: str, code: str = "invalid_dicom") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ParsedInstance:
    """One DICOM file, checked, with its frames rendered as the model will see them."""

    dataset: FileDataset
    data: bytes = field(repr=False)
    slices: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)


def is_dicom_upload(head: bytes, name: str) -> bool:
    """Return whether an upload is for the DICOM path: a Part 10 file, a zip, or named so."""
    return (
        head[128:132] == PREAMBLE_MARKER
        or head.startswith(ZIP_MARKER)
        or name.lower().endswith(DICOM_EXTENSIONS)
    )


def read_upload(data: bytes) -> list[tuple[str, bytes]]:
    """Return the DICOM files an upload holds, each with how an error message names it."""
    if not data:
        raise DicomError("The file is empty.", code="empty")
    if data.startswith(ZIP_MARKER):
        return list(_zip_members(data))
    return [("The file", data)]


def _zip_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not _skipped(m)]
        _check_zip_size(members)
        if not members:
            raise DicomError("The zip holds no DICOM files.", code="empty_zip")
        for member in members:
            yield f"{member.filename!r} in the zip", archive.read(member)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise DicomError(
            f"The zip is damaged and cannot be read ({exc}).", code="bad_zip"
        ) from None


def _skipped(member: zipfile.ZipInfo) -> bool:
    base = member.filename.rsplit("/", 1)[-1]
    return (
        member.is_dir()
        or base == "DICOMDIR"
        or base.startswith(".")
        or member.filename.startswith("__MACOSX/")
    )


def _check_zip_size(members: list[zipfile.ZipInfo]) -> None:
    """Refuse a zip bomb from its directory, before inflating anything."""
    if len(members) > settings.DICOM_MAX_FILES:
        raise DicomError(
            f"The zip holds {len(members):,} files; the limit is {settings.DICOM_MAX_FILES:,}.",
            code="too_many_files",
        )
    total = sum(member.file_size for member in members)
    if total > settings.DICOM_MAX_STUDY_BYTES:
        raise DicomError(
            f"The zip inflates to {total:,} bytes; the limit is "
            f"{settings.DICOM_MAX_STUDY_BYTES:,} bytes.",
            code="too_large",
        )


def parse_instance(data: bytes, where: str = "The file") -> ParsedInstance:
    """Return the checked, rendered instance, or raise `DicomError` saying what is wrong."""
    if data[128:132] != PREAMBLE_MARKER:
        raise DicomError(f"{where} is not a DICOM file (no 'DICM' marker at byte 128).")
    try:
        dataset = dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise DicomError(f"{where} is a damaged DICOM file and cannot be read ({exc}).") from None
    _check_identity(dataset, where)
    _check_image(dataset, where)
    return ParsedInstance(dataset=dataset, data=data, slices=_render(dataset, where))


def _check_identity(dataset: FileDataset, where: str) -> None:
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
        if not dataset.get(keyword):
            raise DicomError(f"{where} has no {keyword}.", code="missing_uid")


def _check_image(dataset: FileDataset, where: str) -> None:
    if "PixelData" not in dataset and "FloatPixelData" not in dataset:
        raise DicomError(f"{where} has no pixel data: it is not an image.", code="no_pixels")
    if int(dataset.get("SamplesPerPixel", 1)) != 1:
        raise DicomError(
            f"{where} is a colour image ({dataset.get('PhotometricInterpretation')}); "
            "only grey MR slices are classified.",
            code="colour",
        )
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    if rows * columns > settings.MAX_IMAGE_PIXELS:
        raise DicomError(
            f"{where} is {columns}x{rows} pixels; the limit is "
            f"{settings.MAX_IMAGE_PIXELS:,} pixels.",
            code="too_many_pixels",
        )
    if frame_count(dataset) > settings.DICOM_MAX_FRAMES:
        raise DicomError(
            f"{where} has {frame_count(dataset):,} frames; the limit is "
            f"{settings.DICOM_MAX_FRAMES:,}.",
            code="too_many_frames",
        )


def _render(dataset: FileDataset, where: str) -> list[np.ndarray]:
    syntax = dataset.file_meta.get("TransferSyntaxUID", "unknown")
    try:
        frames = stored_frames(dataset)
        return [render_frame(dataset, frame, index) for index, frame in enumerate(frames)]
    except Exception as exc:  # pydicom and its plug-ins raise many kinds for bad pixel data
        name = getattr(syntax, "name", str(syntax))
        raise DicomError(
            f"{where}: its pixel data cannot be decoded ({name}): {exc}", code="undecodable"
        ) from None
