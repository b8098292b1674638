from __future__ import annotations

from pathlib import Path

import keras
import pytest

from tests.ml.images import write_class_folders


def pytest_configure(config: pytest.Config) -> None:
    # Registered in pyproject.toml on the main branch; repeated so this folder runs alone.
    config.addinivalue_line("markers", "slow: trains a model or runs for more than a few seconds")


@pytest.fixture(autouse=True)
def _seeded() -> None:
    keras.utils.set_random_seed(0)


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "data")


@pytest.fixture(scope="session")
def tiny_artefact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ml.testing import make_tiny_artefact

    return make_tiny_artefact(tmp_path_factory.mktemp("models"), "tiny-a")


@pytest.fixture(scope="session")
def tiny_engine(tiny_artefact: Path):  # type: ignore[no-untyped-def]
    from ml.inference import InferenceEngine

    return InferenceEngine.load(tiny_artefact)
