"""`python -m webapp.runstack` in a subprocess, for the tests and the benchmark of `make run`."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from webapp.local_redis import free_port, port_is_open

ROOT = Path(__file__).resolve().parent.parent
STARTED = re.compile(r"^\[runstack\] started ([\w-]+) \(pid (\d+)\)$", re.MULTILINE)
WATCHDOG = re.compile(r"^\[runstack\] watchdog pid (\d+)$", re.MULTILINE)


class RunningStack:
    """The launcher in a session of its own, as a terminal would run it; its output in a log."""

    def __init__(
        self, var_dir: Path, extra_env: dict[str, str] | None = None, root: Path = ROOT
    ) -> None:
        """`root`: the checkout whose launcher runs (the benchmark runs an older one too)."""
        self.web_port, self.flower_port = free_port(), free_port()
        env = {**os.environ, "VAR_DIR": str(var_dir), "WEB_PORT": str(self.web_port),
               "FLOWER_PORT": str(self.flower_port), **(extra_env or {})}  # fmt: skip
        self.log_path = var_dir / "runstack.log"
        var_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "webapp.runstack"], cwd=root, env=env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.site_url = f"http://127.0.0.1:{self.web_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 180) -> None:
        """Wait for the banner and for the web server and a worker to be up."""
        deadline = time.monotonic() + timeout_s
        while not (port_is_open(self.web_port) and "ready." in self.log()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the stack did not start:\n{self.log()[-4000:]}")
            time.sleep(0.3)

    def banner_value(self, key: str) -> str:
        for line in self.log().splitlines():
            if line.strip().startswith(f"{key}:"):
                return line.split(":", 1)[1].strip()
        raise KeyError(key)

    def service_pids(self) -> dict[str, int]:
        """Each service's current main pid (also its process group id), from the log."""
        return {name: int(pid) for name, pid in STARTED.findall(self.log())}

    def all_service_groups(self) -> set[int]:
        """Every process group the launcher has started a service in, restarts included."""
        return {int(pid) for _, pid in STARTED.findall(self.log())}

    def interrupt(self, timeout_s: float = 60) -> int:
        """Press Ctrl-C (SIGINT to the whole process group, as a terminal does)."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=timeout_s)

    def watchdog_pid(self) -> int:
        """The pid of `webapp.stack_watchdog`, which stops the services if the launcher dies."""
        found = WATCHDOG.search(self.log())
        if found is None:
            raise KeyError("watchdog")
        return int(found.group(1))

    def kill(self, timeout_s: float = 60) -> int:
        """SIGKILL the launcher alone: it gets no chance to stop anything itself."""
        self.process.kill()
        return self.process.wait(timeout=timeout_s)

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM to the launcher alone, as a service manager or `kill` would send."""
        self.process.terminate()
        return self.process.wait(timeout=timeout_s)

    def close(self) -> None:
        """Stop whatever is still running after a test, even one that failed half-way."""
        if self.process.poll() is None:
            try:
                self.interrupt()
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pgid in self.all_service_groups():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


def processes_in_groups(pgids: set[int]) -> dict[int, str]:
    """Living processes (pid -> command line) whose process group is one of `pgids`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # exited while we looked
        state, _ppid, pgid = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgid) in pgids and state != "Z":
            found[int(entry.name)] = command.strip()
    return found


def port_is_free(port: int) -> bool:
    """Whether a server could bind `port` again (nothing is listening on it)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class HealthWatch:
    """Ask /healthz every 0.2 s in a thread; keep every answer that was not a quick 200.

    A request that takes longer than `timeout_s` counts as a failure; `slowest_s` is
    the longest answer, and `down_s` the time from the first failure to the last.
    """

    def __init__(self, site_url: str, timeout_s: float = 5.0) -> None:
        self.url, self.timeout_s = f"{site_url}/healthz", timeout_s
        self.failures: list[object] = []
        self.answers, self.slowest_s = 0, 0.0
        self.first_failure: float | None = None
        self.last_failure: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self) -> None:
        while not self.done.wait(0.2):
            started = time.monotonic()
            try:
                status: object = requests.get(self.url, timeout=self.timeout_s).status_code
            except requests.RequestException as exc:
                status = repr(exc)
            self.answers += 1
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            if status != 200:
                self.failures.append(status)
                self.first_failure = self.first_failure or started
                self.last_failure = time.monotonic()

    @property
    def down_s(self) -> float:
        if self.first_failure is None or self.last_failure is None:
            return 0.0
        return self.last_failure - self.first_failure

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)
