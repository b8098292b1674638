"""The site serves the active model version to workers and tracks what each one serves."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from ml.registry import ModelRegistry
from ml.testing import make_tiny_artefact
from predictions.models import WorkerModelState
from tests.predictions.conftest import WORKER_SECRET as SECRET


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site-models")
    for version in ("tiny-a", "tiny-b"):
        make_tiny_artefact(root, version)
    return root


@pytest.fixture
def site_registry(
    registry_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> ModelRegistry:
    root = tmp_path / "models"
    shutil.copytree(registry_root, root)
    monkeypatch.setenv("MODEL_REGISTRY_DIR", str(root))
    settings.VAR_DIR = tmp_path / "var"
    registry = ModelRegistry(root)
    registry.promote("tiny-a")
    return registry


def state_body(**changes: str) -> dict[str, str]:
    return {
        "worker": "gpu@aws-eu-1",
        "wanted": "tiny-a",
        "serving": "tiny-a",
        "error": "",
    } | changes


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/internal/models/active/"),
        ("get", "/api/v1/internal/models/tiny-a/archive/"),
        ("post", "/api/v1/internal/models/state/"),
    ],
)
def test_model_endpoints_need_the_worker_secret(
    site_registry: ModelRegistry, api: APIClient, settings: Any, method: str, path: str
) -> None:
    settings.WORKER_SECRET = SECRET
    anonymous = getattr(APIClient(), method)(path)
    clinician = getattr(api, method)(path)
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Worker not-the-secret")

    assert anonymous.status_code in (401, 403)
    assert clinician.status_code == 403
    assert getattr(wrong, method)(path).status_code == 401


@pytest.mark.django_db
def test_the_active_version_is_announced_with_the_digest_of_its_archive(
    site_registry: ModelRegistry, worker_api: APIClient
) -> None:
    active = worker_api.get("/api/v1/internal/models/active/").json()
    archive = worker_api.get(f"/api/v1/internal/models/{active['version']}/archive/")
    content = b"".join(archive.streaming_content)

    assert active["version"] == "tiny-a"
    assert hashlib.sha256(content).hexdigest() == active["sha256"]
    assert len(content) == active["size"]
    assert archive["X-Checksum-SHA256"] == active["sha256"]


@pytest.mark.django_db
def test_an_unknown_version_is_a_404(site_registry: ModelRegistry, worker_api: APIClient) -> None:
    assert worker_api.get("/api/v1/internal/models/nope/archive/").status_code == 404
    assert worker_api.get("/api/v1/internal/models/..%2Fsecrets/archive/").status_code == 404


@pytest.mark.django_db
def test_a_workers_report_is_kept_one_row_per_worker(
    site_registry: ModelRegistry, worker_api: APIClient
) -> None:
    url = "/api/v1/internal/models/state/"
    assert worker_api.post(url, state_body(), format="json").status_code == 200
    late = state_body(wanted="tiny-b", error="sha256 differs")
    assert worker_api.post(url, late, format="json").status_code == 200
    assert worker_api.post(url, {"worker": ""}, format="json").status_code == 400

    (state,) = WorkerModelState.objects.all()
    assert (state.serving, state.wanted, state.error) == ("tiny-a", "tiny-b", "sha256 differs")


@pytest.mark.django_db
def test_promote_rollback_and_status_from_the_command_line(
    site_registry: ModelRegistry, worker_api: APIClient
) -> None:
    out = io.StringIO()
    call_command("model_release", "promote", "tiny-b", stdout=out)
    assert site_registry.active_version() == "tiny-b"
    assert "promoted tiny-b (sha256 " in out.getvalue()

    worker_api.post("/api/v1/internal/models/state/", state_body(), format="json")
    with pytest.raises(CommandError, match="1 worker"):
        call_command("model_release", "status", stdout=io.StringIO())

    call_command("model_release", "rollback", stdout=out)
    assert site_registry.active_version() == "tiny-a"
    status = io.StringIO()
    call_command("model_release", "status", stdout=status)
    assert "gpu@aws-eu-1: tiny-a" in status.getvalue()
    with pytest.raises(CommandError, match="not in"):
        call_command("model_release", "promote", "nope")


@pytest.mark.django_db
def test_metrics_say_which_workers_serve_the_wanted_version(
    site_registry: ModelRegistry, worker_api: APIClient, settings: Any
) -> None:
    from django.test import Client

    url = "/api/v1/internal/models/state/"
    worker_api.post(url, state_body(), format="json")
    worker_api.post(url, state_body(worker="cpu@gcp", wanted="tiny-b", error="x"), format="json")
    settings.METRICS_TOKEN = "metrics-token"
    text = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token").content.decode()

    assert (
        'mri_worker_model_current{serving="tiny-a",wanted="tiny-a",worker="gpu@aws-eu-1"} 1.0'
        in text
    )
    assert 'mri_worker_model_current{serving="tiny-a",wanted="tiny-b",worker="cpu@gcp"} 0.0' in text


@pytest.mark.django_db
def test_a_superuser_promotes_and_rolls_back_from_the_admin(site_registry: ModelRegistry) -> None:
    from django.test import Client

    from tests.factories import UserFactory

    admin = Client()
    admin.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = admin.get("/admin/predictions/workermodelstate/")
    assert page.status_code == 200
    assert b"Promote tiny-b" in page.content and b"Promote tiny-a" not in page.content

    assert admin.get("/admin/predictions/workermodelstate/promote/").status_code == 405
    done = admin.post("/admin/predictions/workermodelstate/promote/", {"version": "tiny-b"})
    assert done.status_code == 302 and site_registry.active_version() == "tiny-b"
    admin.post("/admin/predictions/workermodelstate/rollback/")
    assert site_registry.active_version() == "tiny-a"

    staff = Client()
    staff.force_login(UserFactory(is_staff=True))
    refused = staff.post("/admin/predictions/workermodelstate/promote/", {"version": "tiny-b"})
    # The whole admin is for superusers (webapp/admin.py): staff are sent to its login.
    assert refused.status_code == 302 and refused["Location"].startswith("/admin/login/")
    assert site_registry.active_version() == "tiny-a"
