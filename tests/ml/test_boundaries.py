from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_light_modules_import_neither_tensorflow_nor_django() -> None:
    result = _run(
        "import ml.registry, ml.labels, ml.errors, ml.preprocessing, ml.data, ml.evaluate, sys; "
        "bad = [m for m in ('tensorflow', 'keras', 'django') if m in sys.modules]; "
        "assert not bad, bad"
    )
    assert result.returncode == 0, result.stderr


def test_inference_module_leaves_django_out() -> None:
    result = _run(
        "import ml.inference, sys; "
        "bad = [m for m in ('django', 'celery', 'rest_framework', 'webapp', 'predictions', "
        "'workers') if m in sys.modules]; assert not bad, bad"
    )
    assert result.returncode == 0, result.stderr


def test_ml_sources_import_no_web_or_worker_packages() -> None:
    forbidden = ("django", "celery", "rest_framework", "webapp", "predictions", "workers")
    for path in (ROOT / "ml").glob("*.py"):
        for line in path.read_text().splitlines():
            words = line.strip().split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                assert words[1].split(".")[0] not in forbidden, f"{path.name}: {line}"
