"""Flower started by the project's own command (webapp.runstack.flower_command)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.ops.conftest import ROOT, clean_env
from webapp.local_redis import free_port, port_is_open
from webapp.runstack import flower_command

pytestmark = pytest.mark.integration
AUTH = ("ops", "flower-test-password")


@pytest.fixture
def start_flower(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], str]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(broker: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        log_path = tmp_path / f"flower-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                flower_command(port, tmp_path / "flower.db"),
                env=clean_env(CELERY_BROKER_URL=broker, **env), cwd=ROOT,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        started.append(process)
        deadline = time.monotonic() + 30
        while not port_is_open(port) and process.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text())
            time.sleep(0.1)
        return process, f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)


def test_flower_shows_the_worker_to_its_users_only(
    own_redis: dict[str, Any], bare_worker: Any, start_flower: Any
) -> None:
    name = bare_worker(own_redis["url"], f"flower-{uuid.uuid4().hex[:6]}", "gpu@flower-test")
    _, url = start_flower(own_redis["url"], FLOWER_BASIC_AUTH=":".join(AUTH))

    assert requests.get(f"{url}/api/workers", timeout=10).status_code == 401
    wrong = requests.get(f"{url}/api/workers", auth=("ops", "wrong"), timeout=10)
    assert wrong.status_code == 401
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = requests.get(f"{url}/api/workers?refresh=1", auth=AUTH, timeout=15)
        assert answer.status_code == 200
        if name in answer.json():
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"{name} never appeared in Flower: {answer.text[:500]}")
    queues = answer.json()[name]["active_queues"]
    assert [queue["name"] for queue in queues] == [queues[0]["name"]]
    assert queues[0]["name"].startswith("flower-")


def test_flower_refuses_to_start_without_credentials(
    own_redis: dict[str, Any], start_flower: Any
) -> None:
    env = {k: "" for k in ("FLOWER_BASIC_AUTH", "FLOWER_AUTH")}
    process, _ = start_flower(own_redis["url"], **env)
    assert process.wait(timeout=30) != 0


def test_flowers_broker_page_lists_a_configured_queue_that_no_worker_consumes(
    own_redis: dict[str, Any], bare_worker: Any, start_flower: Any
) -> None:
    consumed, idle = f"flower-gpu-{uuid.uuid4().hex[:6]}", f"flower-cpu-{uuid.uuid4().hex[:6]}"
    name = bare_worker(own_redis["url"], consumed, "gpu@flower-queues")
    _, url = start_flower(
        own_redis["url"], FLOWER_BASIC_AUTH=":".join(AUTH), INFERENCE_QUEUE=consumed,
        CPU_QUEUE=idle,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while name not in requests.get(f"{url}/api/workers?refresh=1", auth=AUTH, timeout=15).json():
        assert time.monotonic() < deadline, f"{name} never appeared in Flower"
        time.sleep(0.5)

    page = requests.get(f"{url}/broker", auth=AUTH, timeout=15)

    assert page.status_code == 200
    assert consumed in page.text
    assert idle in page.text, "a queue nobody consumes must still be watched"
