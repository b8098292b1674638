"""Real parts: the live site, a Redis, Celery worker processes and a tiny model artefact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

import tests.images
from workers.config import broker_url

ROOT = Path(__file__).resolve().parents[2]
WORKER_SECRET = "integration-worker-secret"


@pytest.fixture(scope="session")
def model_registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ml.testing import make_tiny_registry

    root = tmp_path_factory.mktemp("models")
    make_tiny_registry(root)
    return root


@pytest.fixture
def queue_name(settings: Any) -> Iterator[str]:
    """A queue of this test's own, so tests sharing a Redis never take each other's tasks."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    settings.INFERENCE_QUEUE = name
    yield name
    client = redis.Redis.from_url(broker_url())
    client.delete(name)
    client.close()


@pytest.fixture
def site(live_server: Any, settings: Any) -> str:
    from webapp.celery import app  # imported late: the root conftest picks the Redis first

    settings.WORKER_SECRET = WORKER_SECRET
    assert app.conf.broker_url == broker_url(), "the site must send to the test's Redis"
    return str(live_server.url)


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    name: str
    stopped: bool = field(default=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while " ready." not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the whole worker (parent and children): nothing gets to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.stopped = True

    def stop(self) -> None:
        if self.stopped:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.stopped = True


@pytest.fixture
def start_worker(
    site: str, queue_name: str, model_registry_dir: Path, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(pool: str = "prefork", threads: int = 1, **extra_env: str) -> WorkerProcess:
        """`pool="threads"`: the batching worker, with `threads` task threads (one process)."""
        name = f"w{len(started)}-{uuid.uuid4().hex[:6]}@test"
        env = {
            **os.environ,
            "CELERY_BROKER_URL": broker_url(),
            "SITE_URL": site,
            "WORKER_SECRET": WORKER_SECRET,
            "MODEL_REGISTRY_DIR": str(model_registry_dir),
            "INFERENCE_QUEUE": queue_name,
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        log_path = tmp_path / f"{name}.log"
        command = [sys.executable, "-m", "celery", "-A", "workers.app", "worker",
                   "-Q", queue_name, "-P", pool, "-c", str(threads), "-n", name, "-l", "INFO",
                   "--without-gossip", "--without-mingle"]  # fmt: skip
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        worker = WorkerProcess(process, log_path, name)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@pytest.fixture
def caller(site: str) -> tuple[requests.Session, Any]:
    """An API client with a token, and a patient of its organisation."""
    from tests.factories import PatientFactory, UserFactory, api_token

    user = UserFactory()
    session = requests.Session()
    session.headers["Authorization"] = f"Token {api_token(user)}"
    return session, PatientFactory(organisation=user.membership.organisation)


def submit(
    site: str, caller: tuple[requests.Session, Any], image: bytes | None = None
) -> dict[str, Any]:
    session, patient = caller
    response = session.post(
        f"{site}/api/v1/scans/",
        files={"image": ("slice.png", image or tests.images.png_bytes(128), "image/png")},
        # The same synthetic slice again on purpose: these tests are about workers, not duplicates.
        data={"patient": str(patient.public_id), "allow_duplicate": "true"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return response.json()["job"]


def poll_until_finished(session: requests.Session, url: str, timeout_s: float) -> dict[str, Any]:
    seen: list[str] = []

    def finished() -> dict[str, Any] | None:
        body = session.get(url, timeout=10).json()
        seen.append(body["status"])
        return body if body["status"] in ("succeeded", "failed") else None

    body = wait_for(finished, timeout_s, f"job {url} to finish")
    body["seen"] = seen
    return body
