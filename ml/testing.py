"""Tiny, untrained but complete model artefacts for tests, built with the project's own code."""

from __future__ import annotations

from pathlib import Path

from ml.registry import ModelRegistry


def make_tiny_artefact(out_dir: Path | str, version: str = "tiny-test") -> Path:
    """Write `out_dir/<version>/` (model.keras + metadata.json, `tiny`); return it (~1-2 s)."""
    import keras

    from ml.model import build_model, save_artefact

    keras.utils.set_random_seed(0)
    folder = Path(out_dir) / version
    model = build_model("tiny")
    save_artefact(model, folder, version, "tiny", {"training": {"epochs": 0, "untrained": True}})
    return folder


def make_tiny_registry(
    root: Path | str, versions: tuple[str, ...] = ("tiny-test",)
) -> ModelRegistry:
    """Return a registry at `root` holding tiny artefacts, the last of `versions` active."""
    registry = ModelRegistry(root)
    for version in versions:
        make_tiny_artefact(root, version)
        registry.promote(version)
    return registry
