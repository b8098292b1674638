from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gunicorn_site import collect_static
from webapp.local_redis import free_port, start_redis

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "REDIS_"))}
    return env | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}


@pytest.fixture
def own_redis() -> Iterator[dict[str, Any]]:
    """A Redis of this test's own, which the test may stop: {"url", "process"}."""
    port = free_port()
    process = start_redis(port)
    yield {"url": f"redis://127.0.0.1:{port}/0", "process": process}
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def bare_worker(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start a real Celery worker (no task module) on `broker` and `queue`; return its name."""
    started: list[subprocess.Popen[bytes]] = []

    def start(broker: str, queue: str, name: str) -> str:
        log_path = tmp_path / f"{name}.log"
        command = [sys.executable, "-m", "celery", "-A", "tests.ops.bare_worker", "worker",
                   "-I", "workers.control", "-Q", queue, "-n", name, "-P", "solo",
                   "-l", "INFO", "--without-gossip", "--without-mingle"]  # fmt: skip
        with open(log_path, "wb") as log:
            # An empty model registry: what the worker reports must not depend on models/.
            env = clean_env(CELERY_BROKER_URL=broker, MODEL_REGISTRY_DIR=str(tmp_path / "none"))
            process = subprocess.Popen(
                command, env=env, cwd=ROOT,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        started.append(process)
        deadline = time.monotonic() + 60
        while " ready." not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        return name

    yield start
    for process in started:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


PROBE = """
import json, django
django.setup()
from django.test import Client
response = Client().get("/readyz")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


def probe_readyz(**env: str) -> tuple[int, dict[str, Any]]:
    """GET /readyz in a fresh process whose settings come from `env`, as a deployment's would."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=clean_env(DJANGO_SETTINGS_MODULE="tests.settings", **env),
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["status"], answer["body"]


@pytest.fixture(scope="session")
def static_var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VAR_DIR with the static files collected, for the site under gunicorn."""
    return collect_static(tmp_path_factory.mktemp("var"))
