"""One-step rollout on real parts: a promotion at the site reaches a real worker process
(MODEL_SOURCE=site, an empty registry of its own), which fetches the version over HTTP,
checks its sha256 and serves it from the next job on; a tampered archive is refused and
the worker keeps serving what it has, saying why; a rollback is the same one step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from ml.registry import ModelRegistry
from ml.testing import make_tiny_artefact
from predictions.model_releases import release_of
from predictions.models import WorkerModelState
from tests.integration.conftest import poll_until_finished, submit, wait_for
from webapp.celery import app

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def reported(worker: str, **expected: str) -> WorkerModelState | None:
    state = WorkerModelState.objects.filter(worker=worker).first()
    if state and all(getattr(state, key) == value for key, value in expected.items()):
        return state
    return None


def served_by(site: str, caller: Any) -> str:
    body = poll_until_finished(caller[0], submit(site, caller)["url"], timeout_s=60)
    assert body["status"] == "succeeded", body
    return str(body["result"]["model_version"])


def test_a_promotion_at_the_site_reaches_the_worker_in_one_step(
    site: str, caller: Any, start_worker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:  # fmt: skip
    site_models = tmp_path / "site-models"
    for version in ("tiny-a", "tiny-b", "tiny-c"):
        make_tiny_artefact(site_models, version)
    ModelRegistry(site_models).promote("tiny-a")
    monkeypatch.setenv("MODEL_REGISTRY_DIR", str(site_models))  # the live site's registry
    settings.VAR_DIR = tmp_path / "site-var"
    worker = start_worker(MODEL_SOURCE="site", MODEL_REGISTRY_DIR=str(tmp_path / "worker-cache"),
                          MODEL_SYNC_INTERVAL_S="1")  # fmt: skip

    wait_for(lambda: reported(worker.name, serving="tiny-a", error=""), 60, "the first fetch")
    assert served_by(site, caller) == "tiny-a"

    call_command("model_release", "promote", "tiny-b")
    wait_for(lambda: reported(worker.name, serving="tiny-b"), 60, "the worker to fetch tiny-b")
    assert served_by(site, caller) == "tiny-b"

    # An archive altered after its digest was taken (a corrupted cache, a tampered store).
    with open(release_of("tiny-c").path, "ab") as archive:
        archive.write(b"tampered")
    call_command("model_release", "promote", "tiny-c")
    refused = wait_for(lambda: reported(worker.name, wanted="tiny-c"), 60, "the worker to try")
    assert refused.serving == "tiny-b" and "sha256" in refused.error
    assert served_by(site, caller) == "tiny-b"
    # The worker says so itself too, in the stats Flower shows on its page.
    stats = app.control.inspect([worker.name], timeout=10).stats() or {}
    assert stats[worker.name]["model_sync"]["error"] == refused.error

    call_command("model_release", "rollback")
    wait_for(lambda: reported(worker.name, wanted="tiny-b", error=""), 60, "the rollback")
    assert not (tmp_path / "worker-cache" / "tiny-c").exists()
