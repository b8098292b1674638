"""`python -m workers` against the live site and the test's Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import WORKER_SECRET
from tests.workers.test_entry_point import run_entry_point
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
