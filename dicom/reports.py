"""What goes back to the PACS for a finished study: a Structured Report and a Secondary Capture.

Both are built by highdicom from the stored source instances, so they carry the
study's patient and study attributes and reference the source study (the SR's
evidence sequence, the SC's study UID); the PACS files them under the right study.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset, FileDataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from dicom.models import Instance, Study
from dicom.studies import StudyResult

MANUFACTURER = "mri-classifier (open source)"
DISCLAIMER = (
    "Research aid, not a diagnosis: produced by an automated classifier that is not a "
    "medical device. Every result must be read by a qualified clinician."
)
SR_SERIES_NUMBER, SC_SERIES_NUMBER = 9901, 9902
_SCHEME = "99MRICLS"  # a private coding scheme for what no standard code names


def _code(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator=_SCHEME, meaning=meaning)


FINDING = hd.sr.CodedConcept(value="121071", scheme_designator="DCM", meaning="Finding")
ALGORITHM_VERSION = hd.sr.CodedConcept(
    value="111003", scheme_designator="DCM", meaning="Algorithm Version"
)
COMMENT = hd.sr.CodedConcept(value="121106", scheme_designator="DCM", meaning="Comment")
SOURCE_IMAGE = hd.sr.CodedConcept(value="260753009", scheme_designator="SCT", meaning="Source")
REPORT_TITLE = hd.sr.CodedConcept(
    value="18748-4", scheme_designator="LN", meaning="Diagnostic imaging report"
)
NEEDS_REVIEW = _code("needs-review", "Needs review by a clinician")
SLICES = _code("slices-classified", "Slices classified")


@dataclass(frozen=True)
class Reports:
    structured_report: hd.sr.ComprehensiveSR
    secondary_capture: hd.sc.SCImage | None

    def datasets(self) -> list[Dataset]:
        return [self.structured_report, *filter(None, [self.secondary_capture])]


def build_reports(study: Study, result: StudyResult | None, heatmap_png: bytes | None) -> Reports:
    """Return the SR (always) and the heat-map SC (when the deciding slice has a heat map)."""
    sources = _source_headers(study)
    deciding = result.deciding.slice.instance if result else None
    reference = sources[deciding.pk] if deciding else next(iter(sources.values()))
    version = _version_key(study, result)
    report = hd.sr.ComprehensiveSR(
        evidence=list(sources.values()),
        content=_content(result),
        series_instance_uid=generate_uid(entropy_srcs=[version, "sr-series"]),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(entropy_srcs=[version, "sr"]),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description="MRI classifier report (research aid)",
    )
    capture = None
    if result is not None and heatmap_png:
        capture = _secondary_capture(reference, heatmap_png, version)
    return Reports(report, capture)


def _source_headers(study: Study) -> dict[int, FileDataset]:
    """Return the headers of the study's classified instances (pixels are not needed)."""
    instances = Instance.objects.filter(series__study=study, series__refusal="")
    headers = {}
    for instance in instances:
        with instance.file.open("rb") as handle:
            headers[instance.pk] = _with_type_2(dcmread(handle, stop_before_pixels=True))
    if not headers:
        raise ValueError("the study has no classified instance to report on")
    return headers


# Patient and study attributes the SR and SC must carry, empty if unknown (type 2). Some
# senders leave them out; highdicom copies them from the source, so give them a value.
_TYPE_2 = ("PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
           "ReferringPhysicianName", "StudyID", "AccessionNumber")  # fmt: skip


def _with_type_2(header: FileDataset) -> FileDataset:
    for keyword in _TYPE_2:
        if keyword not in header:
            setattr(header, keyword, "")
    return header


def _version_key(study: Study, result: StudyResult | None) -> str:
    """Name this version of the results: resending the same answer reuses the same UIDs."""
    if result is None:
        return f"{study.public_id.hex}:no-answer"
    return f"{study.public_id.hex}:{result.deciding.job.public_id.hex}:{result.slices_classified}"


def _content(result: StudyResult | None) -> hd.sr.ContainerContentItem:
    root = hd.sr.ContainerContentItem(name=REPORT_TITLE, template_id=None)
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    items: list[hd.sr.ContentItem] = []
    if result is None:
        items.append(hd.sr.TextContentItem(FINDING, "No answer: no slice could be classified.",
                                           relationship_type=contains))  # fmt: skip
        items.append(_yes_no(NEEDS_REVIEW, True))
    else:
        items.extend(_result_items(result))
    items.append(hd.sr.TextContentItem(COMMENT, DISCLAIMER, relationship_type=contains))
    root.ContentSequence = hd.sr.ContentSequence(items)
    return root


def _result_items(result: StudyResult) -> list[hd.sr.ContentItem]:
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    label = result.label.replace("_", " ")
    items: list[hd.sr.ContentItem] = [
        hd.sr.TextContentItem(FINDING, label, relationship_type=contains),
        *[
            hd.sr.NumContentItem(
                _code(f"p-{name}", f"Probability of {name.replace('_', ' ')}"),
                value=round(float(probability), 4),
                unit=codes.UCUM.NoUnits,
                relationship_type=contains,
            )
            for name, probability in sorted(result.probabilities.items())
        ],
        _yes_no(NEEDS_REVIEW, result.needs_review),
        hd.sr.NumContentItem(
            SLICES,
            value=result.slices_classified,
            unit=codes.UCUM.NoUnits,
            relationship_type=contains,
        ),
        hd.sr.TextContentItem(ALGORITHM_VERSION, result.model_version, relationship_type=contains),
    ]
    deciding = result.deciding.slice
    items.append(
        hd.sr.ImageContentItem(
            SOURCE_IMAGE,
            referenced_sop_class_uid=deciding.instance.sop_class_uid,
            referenced_sop_instance_uid=deciding.instance.sop_instance_uid,
            referenced_frame_numbers=deciding.frame if _is_multi_frame(deciding.instance) else None,
            relationship_type=contains,
        )
    )
    return items


def _is_multi_frame(instance: Instance) -> bool:
    return instance.slices.count() > 1


def _yes_no(name: hd.sr.CodedConcept, value: bool) -> hd.sr.CodeContentItem:
    answer = codes.SCT.Yes if value else codes.SCT.No
    return hd.sr.CodeContentItem(
        name, answer, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )


# DICOM's patient axes: +x is the patient's left, +y posterior, +z head (PS3.3 C.7.6.1.1.1).
_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))


def _orientation(reference: Dataset) -> tuple[str, str]:
    """Return the source's PatientOrientation: the overlay keeps its rows' and columns' axes."""
    cosines = reference.get("ImageOrientationPatient")
    if not cosines or len(cosines) != 6:
        return ("L", "P")  # an axial slice as scanners write it, when the header does not say
    return _letter([float(v) for v in cosines[:3]]), _letter([float(v) for v in cosines[3:]])


def _letter(direction: list[float]) -> str:
    axis = max(range(3), key=lambda index: abs(direction[index]))
    positive, negative = _AXIS_LETTERS[axis]
    return positive if direction[axis] > 0 else negative


def _secondary_capture(reference: FileDataset, heatmap_png: bytes, version: str) -> hd.sc.SCImage:
    overlay = np.asarray(Image.open(io.BytesIO(heatmap_png)).convert("RGB"), dtype=np.uint8)
    return hd.sc.SCImage.from_ref_dataset(
        ref_dataset=reference,
        pixel_array=overlay,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        patient_orientation=_orientation(reference),
        series_instance_uid=generate_uid(entropy_srcs=[version, "sc-series"]),
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=generate_uid(entropy_srcs=[version, "sc"]),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description="MRI classifier heat map (research aid)",
    )
