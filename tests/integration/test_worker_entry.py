"""`python -m workers` against the live site and the test's Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from predictions import dispatch
from predictions.models import Job
from tests.entry_point import run_entry_point
from tests.factories import JobFactory
from tests.integration.conftest import ROOT, WORKER_SECRET, wait_for
from tests.ops.conftest import clean_env
from webapp.celery import app
from workers.config import broker_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
NO_ML = "the ml package (branch ml) is not merged into this tree yet"


@pytest.fixture
def tiny_registry(request: pytest.FixtureRequest) -> Path:
    """The shared tiny model registry, or a skip while `ml` is absent."""
    pytest.importorskip("ml.testing", reason=NO_ML)
    return Path(request.getfixturevalue("model_registry_dir"))


def test_a_wrong_worker_secret_is_named(site: str) -> None:
    done = run_entry_point(CELERY_BROKER_URL=broker_url(), SITE_URL=site, WORKER_SECRET="nope")
    assert done.returncode == 1
    assert "ok site" not in done.stderr
    assert f"FAILED site: {site} refused WORKER_SECRET" in done.stderr


def test_a_missing_model_folder_fails_after_broker_and_site_pass(site: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-registry"
    done = run_entry_point(
        CELERY_BROKER_URL=broker_url(),
        SITE_URL=site,
        WORKER_SECRET=WORKER_SECRET,
        MODEL_REGISTRY_DIR=str(missing),
    )
    assert done.returncode == 1
    assert "ok broker: Redis" in done.stderr and "ok site: " in done.stderr
    assert f"FAILED model: MODEL_REGISTRY_DIR={missing} is not a folder" in done.stderr


def test_an_empty_model_registry_fails_naming_the_model(site: str, tmp_path: Path) -> None:
    pytest.importorskip("ml.registry", reason=NO_ML)
    done = run_entry_point(
        CELERY_BROKER_URL=broker_url(),
        SITE_URL=site,
        WORKER_SECRET=WORKER_SECRET,
        MODEL_REGISTRY_DIR=str(tmp_path),
    )
    assert done.returncode == 1
    assert "FAILED model: " in done.stderr


def test_all_checks_pass_with_a_registry_that_loads(site: str, tiny_registry: Path) -> None:
    done = run_entry_point(
        timeout_s=240,
        CELERY_BROKER_URL=broker_url(),
        SITE_URL=site,
        WORKER_SECRET=WORKER_SECRET,
        MODEL_REGISTRY_DIR=str(tiny_registry),
    )
    assert done.returncode == 0, done.stderr
    assert "ok model: model tiny-test loads" in done.stderr


def test_a_worker_started_by_the_entry_point_classifies_a_job(
    site: str, tiny_registry: Path, queue_name: str, tmp_path: Path
) -> None:
    label = f"it-{uuid.uuid4().hex[:6]}"
    env = clean_env(
        CELERY_BROKER_URL=broker_url(),
        SITE_URL=site,
        WORKER_SECRET=WORKER_SECRET,
        MODEL_REGISTRY_DIR=str(tiny_registry),
        WORKER_ROLE="cpu",
        WORKER_HOST_LABEL=label,
        WORKER_QUEUES=queue_name,
    )
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers"], env=env, cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: " ready." in log_path.read_text(), 180, "the worker to start")
        job = JobFactory(queue=queue_name, dispatched_at=None)
        dispatch.enqueue(job)
        wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, 60, "the job to finish")
        job.refresh_from_db()
        assert job.status == Job.Status.SUCCEEDED, job.error
        assert job.worker == f"cpu@{label}" and job.model_version == "tiny-test"

        replies = app.control.broadcast(
            "worker_info", reply=True, timeout=3, destination=[f"cpu@{label}"]
        )
        info = replies[0][f"cpu@{label}"]
        assert info["queues"] == [queue_name]
        assert info["model_version"] == info["model_version_at_start"] == "tiny-test"
        assert info["tensorflow_in_parent"] is False
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
