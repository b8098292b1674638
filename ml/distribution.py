"""A model version as one file for other hosts: a tar.gz of its folder and the file's sha256.

The central site packs the version it serves; a worker in another cloud downloads it,
checks the digest before unpacking anything, and unpacks it into its own registry, which
is then a cache of the site's. Standard library only.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ml.errors import MLError
from ml.registry import METADATA_FILE, MODEL_FILE, ModelRegistry

ARCHIVE_SUFFIX = ".tar.gz"
_CHUNK = 1 << 20


class ArchiveError(MLError):
    """A downloaded model archive is not the one announced, or not a model version."""


@dataclass(frozen=True)
class PackedModel:
    version: str
    path: Path
    sha256: str
    size: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def pack(registry: ModelRegistry, version: str, archive_dir: Path) -> PackedModel:
    """Return `version` packed in `archive_dir`, packing it on first use.

    A version folder never changes once promoted, so its archive is made once and never
    replaced: several processes of the site may pack it at the same moment, and the first
    archive to land is the one every process serves and takes the digest of.
    """
    folder = registry.path_of(version)
    archive = archive_dir / f"{version}{ARCHIVE_SUFFIX}"
    if not archive.is_file():
        archive_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=archive_dir, suffix=".part", delete=False) as part:
            # No name, mtime=0: the same folder packs to the same bytes, whoever packs it.
            with gzip.GzipFile(filename="", fileobj=part, mode="wb", mtime=0) as packed:
                with tarfile.open(fileobj=packed, mode="w") as tar:
                    tar.add(folder, arcname=version)
        try:
            os.link(part.name, archive)  # fails if another process's archive landed first
        except FileExistsError:
            pass
        finally:
            os.unlink(part.name)
    return PackedModel(version, archive, _digest_of(archive), archive.stat().st_size)


def _digest_of(archive: Path) -> str:
    """The archive's sha256, kept beside it (the archive never changes once made)."""
    digest_file = archive.with_name(archive.name + ".sha256")
    if digest_file.is_file():
        return digest_file.read_text().strip()
    digest = file_sha256(archive)
    with tempfile.NamedTemporaryFile("w", dir=archive.parent, delete=False) as handle:
        handle.write(digest + "\n")
    os.replace(handle.name, digest_file)
    return digest


def install(registry: ModelRegistry, archive: Path, version: str, sha256: str) -> Path:
    """Unpack a downloaded `archive` of `version` into `registry` once its digest matches.

    Raises ArchiveError, leaving the registry as it was, when the digest differs, the
    archive holds anything but that one version's folder, or the folder is incomplete.
    """
    actual = file_sha256(archive)
    if actual != sha256:
        raise ArchiveError(
            f"model {version}: the download's sha256 is {actual}, the site announced {sha256}"
        )
    target = registry.root / version
    if (target / MODEL_FILE).is_file():
        return target
    registry.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=registry.root, prefix=".unpack-") as scratch:
        try:
            with tarfile.open(archive, mode="r:gz") as tar:
                names = tar.getnames()
                if any(name != version and not name.startswith(f"{version}/") for name in names):
                    raise ArchiveError(f"model {version}: the archive holds other files")
                # The "data" filter refuses absolute paths, links out of the folder, devices.
                tar.extractall(scratch, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise ArchiveError(f"model {version}: cannot unpack the archive: {exc}") from exc
        unpacked = Path(scratch) / version
        for required in (MODEL_FILE, METADATA_FILE):
            if not (unpacked / required).is_file():
                raise ArchiveError(f"model {version}: the archive has no {required}")
        try:
            os.replace(unpacked, target)
        except OSError:
            # Another process of this worker installed it meanwhile: keep theirs.
            if not (target / MODEL_FILE).is_file():
                raise
            shutil.rmtree(unpacked, ignore_errors=True)
    return target
