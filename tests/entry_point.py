"""Run `python -m workers --check` as an operator would, for the unit and integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_entry_point(timeout_s: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "REDIS_"))}
    base |= {"PYTHONPATH": str(ROOT), "SITE_URL": "", "WORKER_SECRET": "", **env}
    return subprocess.run(
        [sys.executable, "-m", "workers", "--check"],
        env=base, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
