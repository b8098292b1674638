from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.errors import MLError, ModelNotFoundError
from ml.registry import ModelRegistry, default_registry_root


def _fake_artefact(root: Path, version: str) -> None:
    (root / version).mkdir(parents=True)
    (root / version / "model.keras").write_bytes(b"weights")
    (root / version / "metadata.json").write_text(json.dumps({"version": version}))


def test_without_active_model_it_says_how_to_set_one(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="registry promote"):
        ModelRegistry(tmp_path).active_version()


def test_promote_and_rollback_switch_the_active_path(tmp_path: Path) -> None:
    for version in ("v1", "v2", "v3"):
        _fake_artefact(tmp_path, version)
    registry = ModelRegistry(tmp_path)
    registry.promote("v1")
    registry.promote("v2")
    registry.promote("v3")
    assert registry.active_path() == tmp_path / "v3"
    assert registry.rollback() == "v2"
    assert registry.active_path() == tmp_path / "v2"
    assert registry.rollback() == "v1"
    with pytest.raises(MLError, match="no previous"):
        registry.rollback()
    assert (tmp_path / "ACTIVE").read_text() == "v1\n"


def test_versions_mark_the_active_one(tmp_path: Path) -> None:
    _fake_artefact(tmp_path, "a")
    _fake_artefact(tmp_path, "b")
    ModelRegistry(tmp_path).promote("b")
    listed = {info.version: info.active for info in ModelRegistry(tmp_path).versions()}
    assert listed == {"a": False, "b": True}


@pytest.mark.parametrize("version", ["missing", "../etc", ""])
def test_promote_refuses_unknown_versions(tmp_path: Path, version: str) -> None:
    with pytest.raises(ModelNotFoundError):
        ModelRegistry(tmp_path).promote(version)


def test_registry_dir_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODEL_REGISTRY_DIR", str(tmp_path))
    assert default_registry_root() == tmp_path
    monkeypatch.delenv("MODEL_REGISTRY_DIR")
    assert default_registry_root().name == "models"


def test_engine_follows_promote_and_rollback(tmp_path: Path) -> None:
    from ml.inference import InferenceEngine
    from ml.testing import make_tiny_registry

    registry = make_tiny_registry(tmp_path, ("old", "new"))
    assert InferenceEngine.load(registry.active_path()).version == "new"
    registry.rollback()
    assert registry.active_path() == tmp_path / "old"
    assert InferenceEngine.load(registry.active_path()).version == "old"
    registry.promote("new")
    assert InferenceEngine.load(registry.active_path()).version == "new"
