"""Write a synthetic MR study (DICOM files drawn from shapes and noise, never a scan).

For trying the PACS round trip by hand (docs/pacs.md):

    .venv/bin/python scripts/synthetic_study.py --patient-id MRN-0001 --out /tmp/study
    storescu -aec ORTHANC 127.0.0.1 4242 /tmp/study/*.dcm
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dicom_files import mr_dataset, picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patient-id", required=True, help="the patient's ID (the MRN)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--slices", type=int, default=3)
    parser.add_argument("--with-ct", action="store_true", help="add a CT image (refused)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = generate_uid(), generate_uid()
    datasets = [
        mr_dataset(picture(seed, 256)[None], patient_id=args.patient_id, study_uid=study_uid,
                   series_uid=series_uid, instance_number=seed + 1)
        for seed in range(args.slices)
    ]  # fmt: skip
    if args.with_ct:
        datasets.append(mr_dataset(patient_id=args.patient_id, study_uid=study_uid,
                                   modality="CT", series_number=2))  # fmt: skip
    for index, dataset in enumerate(datasets, start=1):
        dataset.save_as(args.out / f"{index:03d}.dcm", enforce_file_format=True)
    print(f"StudyInstanceUID {study_uid}: {len(datasets)} files in {args.out}")


if __name__ == "__main__":
    main()
