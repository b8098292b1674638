"""Model versions packed for other hosts and installed only when their digest matches."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ml.distribution import ArchiveError, file_sha256, install, pack
from ml.registry import ModelRegistry
from ml.testing import make_tiny_artefact


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    root = tmp_path_factory.mktemp("site-models")
    make_tiny_artefact(root, "tiny-a")
    registry = ModelRegistry(root)
    registry.promote("tiny-a")
    return registry


def test_a_packed_version_installs_into_another_registry(
    source: ModelRegistry, tmp_path: Path
) -> None:
    packed = pack(source, "tiny-a", tmp_path / "archives")
    worker = ModelRegistry(tmp_path / "worker")

    folder = install(worker, packed.path, "tiny-a", packed.sha256)

    assert packed.sha256 == file_sha256(packed.path) and packed.size == packed.path.stat().st_size
    assert folder == worker.path_of("tiny-a")
    original = source.path_of("tiny-a")
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in original.iterdir())
    assert (folder / "model.keras").read_bytes() == (original / "model.keras").read_bytes()


def test_packing_twice_reuses_the_archive(source: ModelRegistry, tmp_path: Path) -> None:
    first = pack(source, "tiny-a", tmp_path)
    mtime = first.path.stat().st_mtime_ns
    assert pack(source, "tiny-a", tmp_path) == first
    assert first.path.stat().st_mtime_ns == mtime


def test_a_download_whose_digest_differs_is_refused_and_nothing_installed(
    source: ModelRegistry, tmp_path: Path
) -> None:
    packed = pack(source, "tiny-a", tmp_path / "archives")
    worker = ModelRegistry(tmp_path / "worker")

    with pytest.raises(ArchiveError, match="sha256"):
        install(worker, packed.path, "tiny-a", "0" * 64)
    assert not (tmp_path / "worker" / "tiny-a").exists()


def write_archive(path: Path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return file_sha256(path)


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"tiny-b/model.keras": b"x", "../escape": b"x"}, "other files"),
        ({"tiny-b/model.keras": b"x", "tiny-a/metadata.json": b"{}"}, "other files"),
        ({"tiny-b/model.keras": b"x"}, "no metadata.json"),
        ({"tiny-b/../../etc/passwd": b"x"}, "cannot unpack|other files"),
    ],
)
def test_an_archive_that_is_not_exactly_one_version_is_refused(
    tmp_path: Path, members: dict[str, bytes], reason: str
) -> None:
    archive = tmp_path / "bad.tar.gz"
    digest = write_archive(archive, members)
    worker = ModelRegistry(tmp_path / "worker")

    with pytest.raises(ArchiveError, match=reason):
        install(worker, archive, "tiny-b", digest)
    assert not (tmp_path / "worker" / "tiny-b").exists()
    assert not (tmp_path / "etc").exists()


def test_packing_is_deterministic_and_an_existing_archive_is_never_replaced(
    source: ModelRegistry, tmp_path: Path
) -> None:
    # Two site processes packing at once must serve one archive with its own digest.
    first = pack(source, "tiny-a", tmp_path / "one")
    second = pack(source, "tiny-a", tmp_path / "two")
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    inode = first.path.stat().st_ino
    (tmp_path / "one" / "tiny-a.tar.gz.sha256").unlink()  # a lost digest is taken again
    again = pack(source, "tiny-a", tmp_path / "one")
    assert again.sha256 == first.sha256 and again.path.stat().st_ino == inode
