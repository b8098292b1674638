"""Tiny, untrained but complete model artefacts for tests, built with the project's own code."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ml.registry import METADATA_FILE, MODEL_FILE, ModelRegistry


def make_tiny_artefact(out_dir: Path | str, version: str = "tiny-test") -> Path:
    """Write `out_dir/<version>/` with the `tiny` architecture; return the folder (~2 s).

    Its guard's network is untrained and its cut-off zero, so only the guard's plain
    checks refuse anything: a colour picture or a blank image is "not a brain MRI slice".
    """
    import keras

    from ml.guard import GuardSettings, build_guard_network, save_guard
    from ml.model import build_model
    from ml.train import TrainingOptions, build_metadata

    keras.utils.set_random_seed(0)
    folder = Path(out_dir) / version
    folder.mkdir(parents=True, exist_ok=True)
    model = build_model("tiny")
    model.save(folder / MODEL_FILE)
    options = TrainingOptions(architecture="tiny", epochs=0)
    metadata = build_metadata(model, version, options, [], None, 0.0, datetime.now(UTC))
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    save_guard(folder, build_guard_network(), GuardSettings(threshold=0.0), {"untrained": True})
    return folder


def make_tiny_registry(
    root: Path | str, versions: tuple[str, ...] = ("tiny-test",)
) -> ModelRegistry:
    """Create a registry holding tiny artefacts, the last of `versions` active."""
    registry = ModelRegistry(root)
    for version in versions:
        make_tiny_artefact(root, version)
        registry.promote(version)
    return registry
