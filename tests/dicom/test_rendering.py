"""Parsing and rendering across transfer syntaxes, photometric interpretations, bit depths and
multi-frame; and parity: the model sees a DICOM slice as it sees the same slice as a PNG."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from dicom.reading import DicomError, parse_instance
from dicom.rendering import png_bytes
from ml.preprocessing import PreprocessConfig, preprocess_bytes
from tests.dicom_files import (
    SCALE,
    jpeg_baseline,
    mr_dataset,
    picture,
    to_bytes,
)
from tests.images import encode, mri_like

pytestmark = pytest.mark.django_db


def rendered(dataset: Dataset) -> list[np.ndarray]:
    return parse_instance(to_bytes(dataset)).slices


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"photometric": "MONOCHROME1"},
        {"slope": 2.0, "intercept": -1000.0},
        {"signed": True, "intercept": 2048.0},
    ],
    ids=["12-bit window", "MONOCHROME1", "rescale slope and intercept", "signed 16-bit"],
)
def test_renders_the_picture_the_header_describes(options: dict[str, Any]) -> None:
    (gray,) = rendered(mr_dataset(**options))
    assert gray.dtype == np.uint8
    np.testing.assert_array_equal(gray, picture())


@pytest.mark.parametrize(
    "syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=lambda uid: uid.name
)
def test_decodes_lossless_compressed_transfer_syntaxes(syntax: str) -> None:
    dataset = mr_dataset()
    dataset.compress(syntax)
    assert dcmread(io.BytesIO(to_bytes(dataset))).file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(rendered(dataset)[0], picture())


def test_decodes_implicit_vr_little_endian() -> None:
    dataset = mr_dataset()
    dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    np.testing.assert_array_equal(rendered(dataset)[0], picture())


def test_decodes_jpeg_baseline_within_its_loss() -> None:
    (gray,) = rendered(jpeg_baseline(mr_dataset(), picture()))
    error = np.abs(gray.astype(int) - picture().astype(int))
    assert error.mean() < 3, error.mean()


@pytest.mark.skipif(shutil.which("dcmcjpeg") is None, reason="dcmtk's dcmcjpeg is not installed")
def test_decodes_jpeg_lossless_made_by_dcmtk(tmp_path: Path) -> None:
    source, target = tmp_path / "in.dcm", tmp_path / "out.dcm"
    source.write_bytes(to_bytes(mr_dataset()))
    subprocess.run(["dcmcjpeg", "+e1", str(source), str(target)], check=True)
    data = target.read_bytes()
    assert dcmread(target).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    np.testing.assert_array_equal(parse_instance(data).slices[0], picture())


def test_renders_each_frame_of_a_multi_frame_image_in_order() -> None:
    frames = rendered(mr_dataset([picture(0), picture(1), picture(2)]))
    assert len(frames) == 3
    for index, gray in enumerate(frames):
        np.testing.assert_array_equal(gray, picture(index))


def test_uses_per_frame_window_of_an_enhanced_image() -> None:
    dataset = mr_dataset([picture(0), picture(1)])
    del dataset.WindowCenter, dataset.WindowWidth
    shared = Dataset()
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = 2040.5, 4081.0
    shared.FrameVOILUTSequence = [voi]
    dataset.SharedFunctionalGroupsSequence = [shared]
    first, second = rendered(dataset)
    np.testing.assert_array_equal(first, picture(0))
    np.testing.assert_array_equal(second, picture(1))


def test_applies_a_voi_lut_sequence() -> None:
    dataset = mr_dataset(window=False)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]  # 4096 entries from stored value 0, 16-bit output
    table = (np.minimum(np.arange(4096) // SCALE, 255) * 257).astype(np.uint16)
    item.add_new(0x00283006, "OW", table.tobytes())  # LUTData
    dataset.VOILUTSequence = [item]
    np.testing.assert_array_equal(rendered(dataset)[0], picture())


def test_without_a_window_stretches_the_full_range() -> None:
    (gray,) = rendered(mr_dataset(window=False))
    assert gray.min() == 0 and gray.max() == 255
    assert np.corrcoef(gray.ravel(), picture().ravel())[0, 1] > 0.999


def test_the_model_sees_a_dicom_slice_as_it_sees_the_same_png() -> None:
    """Parity with training: the worker runs ml.preprocessing on our PNG, as on any upload."""
    config = PreprocessConfig()
    (gray,) = rendered(mr_dataset(picture(seed=3, size=256)[np.newaxis]))
    from_dicom = preprocess_bytes(png_bytes(gray), config)
    from_png = preprocess_bytes(encode(mri_like(256, seed=3)), config)
    assert from_dicom.shape == (*config.input_size, config.channels)
    np.testing.assert_array_equal(from_dicom, from_png)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"not a dicom file at all" * 10, "not a DICOM file"),
        (b"\0" * 128 + b"DICM" + b"\x02\x00garbage", "has no SOPInstanceUID"),
    ],
    ids=["not DICOM", "garbage after the marker"],
)
def test_refuses_what_is_not_dicom(data: bytes, words: str) -> None:
    with pytest.raises(DicomError, match=words):
        parse_instance(data)


def test_refuses_truncated_pixel_data() -> None:
    whole = to_bytes(mr_dataset())
    with pytest.raises(DicomError, match="pixel data cannot be decoded"):
        parse_instance(whole[: len(whole) - 5000])


def test_refuses_an_instance_without_pixel_data() -> None:
    dataset = mr_dataset()
    del dataset.PixelData
    with pytest.raises(DicomError, match="no pixel data"):
        parse_instance(to_bytes(dataset))
