"""One stack for the whole fault and load suite; its table printed and written at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosStack, Row, table

ROOT = Path(__file__).resolve().parents[2]
ROWS: list[Row] = []
# `make chaos` sets CHAOS_LOAD=1000; the default keeps CI's run short.
LOAD = int(os.environ.get("CHAOS_LOAD", "200"))
FAULT_JOBS = int(os.environ.get("CHAOS_FAULT_JOBS", "20"))


@pytest.fixture(scope="session")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    from ml.testing import make_tiny_registry

    registry = tmp_path_factory.mktemp("models")
    make_tiny_registry(registry)
    stack = ChaosStack(tmp_path_factory.mktemp("chaos"), registry)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def record() -> Iterator[list[Row]]:
    """Rows a test adds here go into the table, even when the test then fails."""
    added: list[Row] = []
    yield added
    ROWS.extend(added)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    text = table(ROWS)
    terminalreporter.write_sep("=", "fault and load suite")
    terminalreporter.write_line(text)
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "chaos.md").write_text(f"# Fault and load suite\n\n{text}\n")
    terminalreporter.write_line(f"(written to {artifacts / 'chaos.md'})")
