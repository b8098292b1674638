"""The reviewed data set: class folders named by label, files named by scan id."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client

from predictions import reviews
from tests.factories import PredictionFactory, UserFactory

pytestmark = pytest.mark.django_db
FOLDERS = {"glioma", "meningioma", "no_tumor", "pituitary"}


@pytest.fixture
def reviewed(patient: Any, clinician: Any) -> dict[str, Any]:
    """Three reviewed scans of the clinician's patient, one unreviewed, one of another clinic."""
    scans = {}
    for label in ["glioma", "no_tumor", "pituitary"]:
        prediction = PredictionFactory(job__scan__patient=patient)
        reviews.record_review(prediction.job, label, "", clinician)
        scans[label] = prediction.job.scan
    PredictionFactory(job__scan__patient=patient)  # not reviewed: not exported
    stranger = PredictionFactory()
    reviews.record_review(stranger.job, "meningioma", "", UserFactory())
    scans["stranger"] = stranger.job.scan
    return scans


def test_command_writes_reviewed_scans_into_class_folders(
    reviewed: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "data"
    call_command("export_reviewed", "--out", str(out), stdout=io.StringIO())
    assert {p.name for p in out.iterdir()} == FOLDERS
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == sorted(
        [
            f"glioma/{reviewed['glioma'].public_id}.png",
            f"meningioma/{reviewed['stranger'].public_id}.png",
            f"no_tumor/{reviewed['no_tumor'].public_id}.png",
            f"pituitary/{reviewed['pituitary'].public_id}.png",
        ]
    )
    scan = reviewed["glioma"]
    assert (out / f"glioma/{scan.public_id}.png").read_bytes() == scan.image.open("rb").read()


def test_the_corrected_label_decides_the_folder(
    prediction: Any, clinician: Any, tmp_path: Path
) -> None:
    reviews.record_review(prediction.job, "meningioma", "not a glioma", clinician)
    reviews.export_to_directory(tmp_path / "data")
    assert [p.parent.name for p in (tmp_path / "data").rglob("*.png")] == ["meningioma"]


def test_file_names_never_carry_patient_identifiers(
    reviewed: dict[str, Any], patient: Any, tmp_path: Path
) -> None:
    reviews.export_to_directory(tmp_path / "data")
    assert all(patient.external_id not in str(p) for p in (tmp_path / "data").rglob("*"))


def test_users_with_the_export_permission_download_their_organisations_reviewed_scans(
    portal: Client, clinician: Any, reviewed: dict[str, Any]
) -> None:
    clinician.user_permissions.add(Permission.objects.get(codename="export_data"))
    response = portal.get("/export/reviewed.zip")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    assert {name.split("/")[0] for name in names} == FOLDERS
    assert f"pituitary/{reviewed['pituitary'].public_id}.png" in names
    assert f"meningioma/{reviewed['stranger'].public_id}.png" not in names
    assert len([name for name in names if name.endswith(".png")]) == 3


def test_the_export_needs_the_permission_not_just_staff_status(
    portal: Client, clinician: Any, reviewed: dict[str, Any]
) -> None:
    clinician.is_staff = True
    clinician.save()
    response = portal.get("/export/reviewed.zip")
    assert response.status_code == 403
    assert "/export/reviewed.zip" not in portal.get("/").content.decode()
