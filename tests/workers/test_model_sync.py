"""A worker following the site's model: fetch, verify, switch; or keep serving and say why.
The site client is faked here; tests/integration/test_model_rollout.py uses the real one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from ml.distribution import pack
from ml.registry import ModelRegistry
from ml.testing import make_tiny_artefact
from workers.model_sync import ModelSync, last_state
from workers.web_client import ModelRelease, SiteClient, SiteError


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    root = tmp_path_factory.mktemp("site-models")
    for version in ("tiny-a", "tiny-b"):
        make_tiny_artefact(root, version)
    return ModelRegistry(root)


def fake_site(site: ModelRegistry, version: str, archives: Path, sha256: str = "") -> Any:
    packed = pack(site, version, archives)
    client = mock.create_autospec(SiteClient, instance=True)
    client.active_model.return_value = ModelRelease(version, sha256 or packed.sha256, packed.size)
    client.download_model.side_effect = lambda _, dest: shutil.copy(packed.path, dest)
    return client


def test_a_new_version_is_fetched_verified_made_active_and_reported(
    site: ModelRegistry, tmp_path: Path
) -> None:
    client = fake_site(site, "tiny-b", tmp_path / "archives")
    worker = ModelRegistry(tmp_path / "worker")

    state = ModelSync(client, worker, "gpu@a").check()

    assert (state.wanted, state.serving, state.error) == ("tiny-b", "tiny-b", "")
    assert worker.active_version() == "tiny-b"
    client.report_model_state.assert_called_once_with(state.to_json())
    assert last_state(worker) == state.to_json()
    # Nothing is downloaded again while the site serves the same version.
    ModelSync(client, worker, "gpu@a").check()
    assert client.download_model.call_count == 1


def test_a_version_whose_digest_differs_is_refused_and_the_old_one_kept(
    site: ModelRegistry, tmp_path: Path
) -> None:
    worker = ModelRegistry(tmp_path / "worker")
    ModelSync(fake_site(site, "tiny-a", tmp_path / "archives"), worker, "gpu@a").check()
    tampered = fake_site(site, "tiny-b", tmp_path / "archives", sha256="f" * 64)

    state = ModelSync(tampered, worker, "gpu@a").check()

    assert (state.wanted, state.serving) == ("tiny-b", "tiny-a")
    assert "sha256" in state.error
    assert worker.active_version() == "tiny-a"
    assert "tiny-b" not in {info.version for info in worker.versions()}
    tampered.report_model_state.assert_called_once()


def test_an_unreachable_site_keeps_the_current_version_and_says_so(
    site: ModelRegistry, tmp_path: Path
) -> None:
    worker = ModelRegistry(tmp_path / "worker")
    ModelSync(fake_site(site, "tiny-a", tmp_path / "archives"), worker, "cpu@b").check()
    down = mock.create_autospec(SiteClient, instance=True)
    down.active_model.side_effect = SiteError("GET /models/active/: timed out", permanent=False)
    down.report_model_state.side_effect = SiteError("still down", permanent=False)

    state = ModelSync(down, worker, "cpu@b").check()

    assert (state.wanted, state.serving) == ("", "tiny-a")
    assert "timed out" in state.error
    assert last_state(worker) == state.to_json()
