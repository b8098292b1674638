"""`make run`'s launcher: the whole stack comes up, classifies a scan, keeps its services
running, and leaves nothing behind on Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.images import jpeg_bytes
from tests.integration.conftest import wait_for
from tests.stack import HealthWatch, RunningStack, port_is_free, processes_in_groups
from workers.config import broker_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"web", "worker", "flower", "sweeper", "pacs-sender"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    if not (ROOT / "models" / "ACTIVE").exists():
        pytest.skip("no shipped model in models/ yet")
    env = {"REDIS_URL": broker_url(), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "INFERENCE_QUEUE": f"runstack-{os.getpid()}"}  # fmt: skip
    running = RunningStack(tmp_path / "var", env)
    try:
        running.wait_ready()
        yield running
    finally:
        running.close()


def classify_a_scan(stack: RunningStack, external_id: str) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {stack.banner_value('api token')}"
    api = f"{stack.site_url}/api/v1"
    patient = session.post(f"{api}/patients/", json={"external_id": external_id}, timeout=10)
    submitted = session.post(
        f"{api}/scans/", files={"image": ("s.jpg", jpeg_bytes(256), "image/jpeg")},
        data={"patient": patient.json()["id"]}, timeout=30,
    )  # fmt: skip
    assert submitted.status_code == 202, submitted.text

    def finished() -> dict[str, Any] | None:
        body = session.get(submitted.json()["job"]["url"], timeout=10).json()
        return body if body["status"] in ("succeeded", "failed") else None

    body = wait_for(finished, 180, "the job to finish")
    active = (ROOT / "models" / "ACTIVE").read_text().strip()
    assert body["status"] == "succeeded", body
    assert body["result"]["model_version"] == active


def service_processes(stack: RunningStack) -> tuple[set[int], dict[int, str]]:
    """The services' process groups and every process in them, gunicorn's workers included."""
    pids = stack.service_pids()
    assert set(pids) == SERVICES, stack.log()[-3000:]
    web = processes_in_groups({pids["web"]})
    assert len(web) >= 3, f"expected gunicorn's master and 2 workers, found {web}"
    groups = set(pids.values())
    return groups, processes_in_groups(groups)


def assert_nothing_left(stack: RunningStack, groups: set[int], seen: dict[int, str]) -> None:
    # The watchdog exits too, once it finds (or leaves) every group empty.
    watchdog = stack.watchdog_pid()
    wait_for(lambda: not processes_in_groups({watchdog}), 60, "the watchdog to exit")
    left = processes_in_groups(groups | {stack.process.pid})
    assert not left, f"still running after the stop: {left}\nseen while running: {seen}"
    assert port_is_free(stack.web_port), f"port {stack.web_port} is still taken"
    assert port_is_free(stack.flower_port), f"port {stack.flower_port} is still taken"


def test_the_stack_classifies_a_scan_and_ctrl_c_leaves_nothing_running(
    stack: RunningStack,
) -> None:
    classify_a_scan(stack, "MRN-1")
    groups, seen = service_processes(stack)

    assert stack.interrupt() == 0, stack.log()[-3000:]
    assert_nothing_left(stack, groups, seen)


def test_a_sigkilled_launcher_leaves_nothing_running(stack: RunningStack) -> None:
    groups, seen = service_processes(stack)

    assert stack.kill() == -signal.SIGKILL
    # No launcher is left to stop anything: its watchdog does, within the grace period.
    wait_for(lambda: not processes_in_groups(groups), 60, "the services to stop")
    assert "[runstack watchdog] the launcher is gone" in stack.log(), stack.log()[-3000:]
    assert_nothing_left(stack, groups, seen)


def test_a_killed_worker_is_restarted_while_the_site_answers_and_sigterm_leaves_nothing(
    stack: RunningStack,
) -> None:
    old_worker = stack.service_pids()["worker"]
    health = HealthWatch(stack.site_url)
    try:
        os.killpg(old_worker, signal.SIGKILL)
        restarting = r"\[runstack\] worker exited with code -9; restarting in \d+ s"
        wait_for(lambda: re.search(restarting, stack.log()), 30, "the restart line")
        wait_for(lambda: stack.service_pids()["worker"] != old_worker, 60, "a new worker")
        classify_a_scan(stack, "MRN-2")  # queued until the new worker is ready
    finally:
        health.stop()
    assert health.answers > 10 and not health.failures, health.failures
    groups, seen = service_processes(stack)

    assert stack.terminate() == 0, stack.log()[-3000:]
    assert_nothing_left(stack, groups, seen)


def test_a_service_that_keeps_crashing_stops_the_stack_with_a_clear_message(
    tmp_path: Path,
) -> None:
    taken = socket.create_server(("127.0.0.1", 0))  # Flower cannot bind it, so exits at once
    env = {"REDIS_URL": broker_url(), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "INFERENCE_QUEUE": f"runstack-{os.getpid()}",
           "FLOWER_PORT": str(taken.getsockname()[1])}  # fmt: skip
    stack = RunningStack(tmp_path / "var", env)
    try:
        assert stack.process.wait(timeout=180) == 1, stack.log()[-3000:]
        log = stack.log()
        assert len(re.findall(r"flower exited with code 1; restarting in \d+ s", log)) == 4, log
        assert (
            "flower exited with code 1, 5 times in a row within 60 s of starting; "
            "giving up and stopping the stack" in log
        ), log[-3000:]
        assert_nothing_left(stack, stack.all_service_groups(), {})
    finally:
        taken.close()
        stack.close()
