"""Artefact folders: metadata.json contents, data fingerprints, version names (no TF)."""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from ml.errors import ModelNotFoundError
from ml.registry import METADATA_FILE

_LIBRARIES = ("tensorflow-cpu", "tensorflow", "keras", "numpy", "pillow")


def new_version(architecture: str, when: datetime | None = None) -> str:
    """Return e.g. `mri_cnn-20261124-1530`: architecture plus UTC timestamp."""
    moment = when or datetime.now(UTC)
    return f"{architecture}-{moment.strftime('%Y%m%d-%H%M')}"


def unique_folder(parent: Path, version: str) -> tuple[str, Path]:
    """Return a version (suffixed if needed) whose folder does not exist yet."""
    candidate, counter = version, 1
    while (parent / candidate).exists():
        counter += 1
        candidate = f"{version}-{counter}"
    return candidate, parent / candidate


def fingerprint_files(root: Path, relative_paths: list[str]) -> str:
    """Return sha256 over sorted relative paths and each file's own sha256."""
    digest = hashlib.sha256()
    for relative in sorted(relative_paths):
        file_hash = hashlib.sha256((root / relative).read_bytes()).hexdigest()
        digest.update(f"{relative}\0{file_hash}\n".encode())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def read_metadata(artefact_dir: Path) -> dict[str, Any]:
    """Return the artefact's metadata; raise ModelNotFoundError when it is missing."""
    path = Path(artefact_dir) / METADATA_FILE
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"no model artefact at {artefact_dir}: {path} missing") from exc
    except ValueError as exc:
        raise ModelNotFoundError(f"unreadable {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ModelNotFoundError(f"unreadable {path}: not a JSON object")
    return loaded


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
