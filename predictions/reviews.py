"""Clinicians' verdicts on results, and the reviewed data set they add up to.

The export writes one folder per class (`glioma/`, `meningioma/`, `no_tumor/`,
`pituitary/`), the layout `python -m ml train --data DIR` reads: the loop from
the clinic back to training. Files are named by the scan's public id, never by
anything that identifies the patient.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.utils import timezone

from predictions.models import LABELS, Job, Organisation, Review, Scan

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png"}

# A TextField's max_length is not enforced by the database, so it is checked here.
COMMENT_MAX_LENGTH: int = Review._meta.get_field("comment").max_length or 2000


def record_review(
    job: Job,
    label: str,
    comment: str,
    user: User | AnonymousUser,
    model_answer_shown: bool = True,
) -> Review:
    """Add a verdict on a succeeded job, with who gave it and when; earlier ones stay as history.

    `model_answer_shown` is False when the reader committed without seeing the model's answer.
    """
    if job.status != Job.Status.SUCCEEDED:
        raise ValueError("only a finished result can be reviewed")
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}")
    comment = comment.strip()
    if len(comment) > COMMENT_MAX_LENGTH:
        raise ValueError(
            f"the comment is {len(comment):,} characters long; "
            f"the limit is {COMMENT_MAX_LENGTH:,} characters"
        )
    return Review.objects.create(
        job=job,
        label=label,
        confirmed=label == job.prediction.label,
        comment=comment,
        reviewed_by=user if isinstance(user, User) else None,
        reviewed_at=timezone.now(),
        model_answer_shown=model_answer_shown,
    )


def reviewed_scans(organisation: Organisation | None = None) -> Iterator[tuple[str, Scan]]:
    """Yield (reviewed label, scan) once per scan; its latest review wins."""
    reviews: QuerySet[Review] = (
        Review.objects.select_related("job__scan")
        .filter(job__scan__voided_at__isnull=True)  # filed in error: not training data
        .order_by("-reviewed_at", "-pk")
    )
    if organisation is not None:
        reviews = reviews.filter(job__scan__patient__organisation=organisation)
    seen: set[int] = set()
    for review in reviews.iterator():
        scan = review.job.scan
        if scan.pk not in seen:
            seen.add(scan.pk)
            yield review.label, scan


def dataset_path(label: str, scan: Scan) -> str:
    """Return `label/<scan public id>.<ext>`: the class folder decides the training label."""
    return f"{label}/{scan.public_id}.{EXTENSIONS.get(scan.content_type, 'bin')}"


def export_to_directory(out: Path, organisation: Organisation | None = None) -> int:
    """Write the reviewed scans under `out` in class folders; return how many were written."""
    for label in LABELS:
        (out / label).mkdir(parents=True, exist_ok=True)
    count = 0
    for label, scan in reviewed_scans(organisation):
        with scan.image.open("rb") as source:
            (out / dataset_path(label, scan)).write_bytes(source.read())
        count += 1
    return count


def export_to_zip(target: IO[bytes], organisation: Organisation | None = None) -> int:
    """Write the same layout as `export_to_directory` into a zip file; return the count."""
    count = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for label in LABELS:
            archive.writestr(f"{label}/", b"")
        for label, scan in reviewed_scans(organisation):
            with scan.image.open("rb") as source:
                # Scans are already compressed (JPEG/PNG): storing them is as small and faster.
                archive.writestr(dataset_path(label, scan), source.read())
            count += 1
    return count
