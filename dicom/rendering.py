"""Turn a DICOM image's stored values into the 8-bit grey slice a radiologist would see.

The order is the standard's display pipeline (PS3.3 C.11): Modality LUT (rescale
slope and intercept) to physical values, then the VOI LUT or the window centre and
width, then MONOCHROME1 inverted so that bright is always tissue. The result is
the kind of picture the model was trained on (exported 8-bit slices); the model's
own preprocessing (`ml.preprocessing`) then runs on it in the worker, as for any
upload, so training and serving stay one code path.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

# Attributes that can vary per frame of an enhanced (multi-frame) image, by the
# functional group that holds them.
_FRAME_GROUPS = {
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept", "RescaleType"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "VOILUTFunction"),
}
_DISPLAY = ("WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence")
_PIXEL_MODULE = ("BitsStored", "PixelRepresentation", "PhotometricInterpretation")


def frame_count(dataset: Dataset) -> int:
    return int(dataset.get("NumberOfFrames", 1) or 1)


def stored_frames(dataset: Dataset) -> np.ndarray:
    """Return the decoded stored values, shape (frames, rows, columns), whatever the syntax."""
    pixels = dataset.pixel_array
    if frame_count(dataset) == 1:
        pixels = pixels[np.newaxis]
    if pixels.ndim != 3:
        raise ValueError(f"expected grey pixels, got an array of shape {pixels.shape}")
    return pixels


def render_frame(dataset: Dataset, stored: np.ndarray, index: int = 0) -> np.ndarray:
    """Return frame `index` as the displayed slice: uint8 (rows, columns), bright is tissue."""
    attributes = frame_attributes(dataset, index)
    shown = _apply_voi(apply_modality_lut(stored, attributes), attributes)
    if attributes.get("PhotometricInterpretation") == "MONOCHROME1":
        shown = 255.0 - shown
    return np.clip(np.rint(shown), 0, 255).astype(np.uint8)


def frame_attributes(dataset: Dataset, index: int) -> Dataset:
    """Return the rescale and display attributes in force for frame `index`.

    Enhanced MR keeps them in the shared and per-frame functional groups rather
    than at the top level; the per-frame value wins over the shared one.
    """
    attributes = Dataset()
    if "file_meta" in dataset.__dict__:
        # The byte order, for tables (LUT Data) stored as raw words.
        attributes.file_meta = dataset.file_meta
    for keyword in (*_PIXEL_MODULE, "RescaleSlope", "RescaleIntercept", "ModalityLUTSequence",
                    *_DISPLAY):  # fmt: skip
        if keyword in dataset:
            attributes[keyword] = dataset[keyword]
    for groups in (dataset.get("SharedFunctionalGroupsSequence"),
                   dataset.get("PerFrameFunctionalGroupsSequence")):  # fmt: skip
        if not groups:
            continue
        group = groups[0] if len(groups) == 1 else groups[index]
        for sequence, keywords in _FRAME_GROUPS.items():
            for item in group.get(sequence) or []:
                for keyword in keywords:
                    if keyword in item:
                        attributes[keyword] = item[keyword]
    return attributes


def _apply_voi(values: np.ndarray, attributes: Dataset) -> np.ndarray:
    """Map physical values to 0..255 with the header's VOI LUT, its window, or the full range."""
    if attributes.get("VOILUTSequence"):
        # A table is indexed by whole numbers, whatever the rescale produced.
        indices = np.rint(values).astype(np.int64) if values.dtype.kind == "f" else values
        bits = int(attributes.VOILUTSequence[0].LUTDescriptor[2])
        return apply_voi(indices, attributes).astype(np.float64) * 255.0 / (2**bits - 1)
    values = values.astype(np.float64)
    if "WindowCenter" in attributes and "WindowWidth" in attributes:
        # Windowing into an 8-bit unsigned output: pydicom scales to the stored range it is
        # told, so tell it 8 bits and no rescale (the Modality LUT is already applied).
        window = Dataset()
        for keyword in ("WindowCenter", "WindowWidth", "VOILUTFunction"):
            if keyword in attributes:
                window[keyword] = attributes[keyword]
        window.BitsStored, window.PixelRepresentation = 8, 0
        window.PhotometricInterpretation = "MONOCHROME2"  # inversion comes after, for all paths
        return apply_windowing(values, window)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) * 255.0 / (high - low)


def png_bytes(gray: np.ndarray) -> bytes:
    """Encode a rendered slice losslessly: what the worker fetches and the portal shows."""
    buffer = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
