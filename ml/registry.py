"""The model registry: versioned artefact folders plus an ACTIVE pointer (stdlib only).

Layout under the root (default `<repo>/models`, or `$MODEL_REGISTRY_DIR`)::

    <version>/model.keras, metadata.json, ...   one folder per trained model
    ACTIVE                                      one line: the version workers serve
    HISTORY.jsonl                               promotions and rollbacks, oldest first

Workers call `active_version()` between tasks, so it only reads one small file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml.errors import MLError, ModelNotFoundError

ACTIVE_FILE = "ACTIVE"
HISTORY_FILE = "HISTORY.jsonl"
MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def default_registry_root() -> Path:
    """Return `$MODEL_REGISTRY_DIR` if set, else the repository's `models/` folder."""
    configured = os.environ.get("MODEL_REGISTRY_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1] / "models"


@dataclass
class ModelInfo:
    version: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    active: bool = False


class ModelRegistry:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_registry_root()

    def versions(self) -> list[ModelInfo]:
        """Return every artefact folder under the root, sorted by version name."""
        if not self.root.is_dir():
            return []
        active = self._read_active()
        return [
            ModelInfo(path.name, path, _read_metadata(path), path.name == active)
            for path in sorted(self.root.iterdir())
            if (path / MODEL_FILE).is_file()
        ]

    def active_version(self) -> str:
        """Return the version in ACTIVE; raise ModelNotFoundError when none is set."""
        version = self._read_active()
        if not version:
            raise ModelNotFoundError(
                f"no active model: {self.root / ACTIVE_FILE} is missing or empty; "
                "run `python -m ml registry promote VERSION`"
            )
        return version

    def active_path(self) -> Path:
        return self.path_of(self.active_version())

    def path_of(self, version: str) -> Path:
        """Return the artefact folder of `version`; raise ModelNotFoundError if absent."""
        if not _VERSION_PATTERN.match(version):
            raise ModelNotFoundError(f"invalid model version {version!r}")
        path = self.root / version
        if not (path / MODEL_FILE).is_file():
            raise ModelNotFoundError(f"model version {version!r} not found: no {path / MODEL_FILE}")
        return path

    def promote(self, version: str) -> None:
        """Make `version` the active model and record the promotion."""
        self.path_of(version)
        self._write_active(version)
        self._append_history({"version": version, "promoted_at": _now()})

    def rollback(self) -> str:
        """Re-activate the model that was active before the current one; return its version."""
        stack = self._promotion_stack()
        if len(stack) < 2:
            raise MLError("no previous model version to roll back to")
        previous = stack[-2]
        self.path_of(previous)
        self._write_active(previous)
        self._append_history({"version": previous, "promoted_at": _now(), "rollback": True})
        return previous

    def history(self) -> list[dict[str, Any]]:
        path = self.root / HISTORY_FILE
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def _promotion_stack(self) -> list[str]:
        """Replay the history: a promotion pushes a version, a rollback pops one."""
        stack: list[str] = []
        for entry in self.history():
            if entry.get("rollback") and len(stack) >= 2:
                stack.pop()
            elif not stack or stack[-1] != entry["version"]:
                stack.append(entry["version"])
        return stack

    def _read_active(self) -> str:
        try:
            return (self.root / ACTIVE_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return ""

    def _write_active(self, version: str) -> None:
        # Write then rename, so a worker never reads a half-written pointer.
        self.root.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=self.root, prefix=".ACTIVE.")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(version + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, self.root / ACTIVE_FILE)

    def _append_history(self, entry: dict[str, Any]) -> None:
        with (self.root / HISTORY_FILE).open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(entry) + "\n")


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
