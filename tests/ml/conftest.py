from __future__ import annotations

from pathlib import Path

import pytest

from tests.images import brain_like, encode


def write_class_folders(
    root: Path, per_class: int = 6, size: int = 80, seed_offset: int = 0
) -> Path:
    """A tiny data set in the training folder's layout: synthetic slices, never real scans."""
    folders = ("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor")
    for class_index, folder in enumerate(folders):
        (root / folder).mkdir(parents=True)
        for i in range(per_class):
            image = brain_like(size, seed=seed_offset + class_index * 1000 + i)
            suffix = "png" if i % 2 else "jpg"
            image_format = "PNG" if suffix == "png" else "JPEG"
            (root / folder / f"{i}.{suffix}").write_bytes(encode(image, image_format))
    return root


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "data")


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ml.testing import make_tiny_registry

    root = tmp_path_factory.mktemp("registry")
    make_tiny_registry(root, ("tiny-a", "tiny-b"))
    return root
