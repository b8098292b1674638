from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ml.errors import ModelNotFoundError
from ml.registry import ModelRegistry


@pytest.fixture
def registry(tiny_registry: Path, tmp_path: Path) -> ModelRegistry:
    root = tmp_path / "models"
    for version in ("tiny-a", "tiny-b"):
        shutil.copytree(tiny_registry / version, root / version)
    return ModelRegistry(root)


def test_an_empty_registry_says_how_to_get_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="python -m ml train"):
        ModelRegistry(tmp_path).active_version()


def test_promote_and_rollback_switch_the_active_model(registry: ModelRegistry) -> None:
    registry.promote("tiny-a")
    registry.promote("tiny-b")
    assert registry.active_path() == registry.root / "tiny-b"
    assert registry.rollback() == "tiny-a"
    assert registry.active_version() == "tiny-a"
    with pytest.raises(ModelNotFoundError, match="nothing to roll back to"):
        registry.rollback()


def test_rollback_undoes_promotions_in_order(registry: ModelRegistry) -> None:
    for version in ("tiny-a", "tiny-b", "tiny-a"):
        registry.promote(version)
    assert registry.rollback() == "tiny-b"
    assert registry.rollback() == "tiny-a"


def test_an_unknown_version_cannot_be_promoted(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError, match="'tiny-z' is not in"):
        registry.promote("tiny-z")


def test_versions_lists_complete_artefacts_and_marks_the_active_one(
    registry: ModelRegistry,
) -> None:
    registry.promote("tiny-b")
    (registry.root / "half-written").mkdir()
    listed = {info.version: info.active for info in registry.versions()}
    assert listed == {"tiny-a": False, "tiny-b": True}


def test_the_engine_loads_what_the_registry_points_at(registry: ModelRegistry) -> None:
    from ml.inference import InferenceEngine

    registry.promote("tiny-a")
    assert InferenceEngine.load(registry.active_path()).version == "tiny-a"
    registry.promote("tiny-b")
    assert InferenceEngine.load(registry.active_path()).version == "tiny-b"
