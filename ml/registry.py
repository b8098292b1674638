"""Versioned model artefacts and the "active model" pointer that workers follow.

Layout of a registry folder (default `<repo>/models`, or `MODEL_REGISTRY_DIR`):

    models/<version>/model.keras, metadata.json, ...   one folder per version
    models/ACTIVE                                      the active version's name
    models/HISTORY.jsonl                               every promotion, for rollback

Standard library only, and cheap: workers read the pointer before every task.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml.errors import ModelNotFoundError

ACTIVE_FILE = "ACTIVE"
HISTORY_FILE = "HISTORY.jsonl"
METADATA_FILE = "metadata.json"
MODEL_FILE = "model.keras"
TRAINING_HISTORY_FILE = "history.json"


def default_registry_root() -> Path:
    if configured := os.environ.get("MODEL_REGISTRY_DIR"):
        return Path(configured)
    return Path(__file__).resolve().parent.parent / "models"


@dataclass(frozen=True)
class ModelInfo:
    version: str
    path: Path
    metadata: dict[str, Any]
    active: bool


class ModelRegistry:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_registry_root()

    def versions(self) -> list[ModelInfo]:
        """Return every version with a complete artefact, oldest first."""
        active = self._read_active()
        found = []
        for folder in sorted(self.root.glob(f"*/{METADATA_FILE}")):
            metadata = json.loads(folder.read_text())
            version = folder.parent.name
            found.append(ModelInfo(version, folder.parent, metadata, version == active))
        return sorted(found, key=lambda info: str(info.metadata.get("created_at", "")))

    def active_version(self) -> str:
        version = self._read_active()
        if version is None:
            raise ModelNotFoundError(
                f"no active model in {self.root}: train one with `python -m ml train` "
                "and promote it with `python -m ml registry promote VERSION`"
            )
        return version

    def active_path(self) -> Path:
        return self.path_of(self.active_version())

    def path_of(self, version: str) -> Path:
        path = self.root / version
        if not (path / MODEL_FILE).is_file() or not (path / METADATA_FILE).is_file():
            raise ModelNotFoundError(f"model version {version!r} is not in {self.root}")
        return path

    def promote(self, version: str) -> None:
        """Make `version` the active model; workers switch before their next task."""
        self.path_of(version)
        self._activate(version, "promote")

    def rollback(self) -> str:
        """Undo the last promotion: re-activate the version active before it; return it."""
        stack = self._promotion_stack()
        if len(stack) < 2:
            raise ModelNotFoundError("nothing to roll back to: no earlier promotion is recorded")
        version = stack[-2]
        self.path_of(version)
        self._activate(version, "rollback")
        return version

    def _activate(self, version: str, action: str) -> None:
        self._write_active(version)
        entry = {"action": action, "version": version, "at": datetime.now(UTC).isoformat()}
        with open(self.root / HISTORY_FILE, "a") as history:
            history.write(json.dumps(entry) + "\n")

    def _promotion_stack(self) -> list[str]:
        """Replay the history: a promotion pushes a version, a rollback pops one."""
        path = self.root / HISTORY_FILE
        lines = path.read_text().splitlines() if path.exists() else []
        stack: list[str] = []
        for entry in (json.loads(line) for line in lines if line.strip()):
            if entry["action"] == "rollback":
                stack.pop()
            else:
                stack.append(entry["version"])
        return stack

    def _read_active(self) -> str | None:
        try:
            return (self.root / ACTIVE_FILE).read_text().strip() or None
        except FileNotFoundError:
            return None

    def _write_active(self, version: str) -> None:
        # Write then rename: a worker reading the pointer never sees half a name.
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.root, delete=False) as handle:
            handle.write(version + "\n")
        os.replace(handle.name, self.root / ACTIVE_FILE)
