"""`python -m webapp.runstack` in a subprocess, for the tests and the benchmark of `make run`."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from webapp.local_redis import free_port, port_is_open

ROOT = Path(__file__).resolve().parent.parent
STARTED = re.compile(r"^\[runstack\] started ([\w-]+) \(pid (\d+)\)$", re.MULTILINE)


class RunningStack:
    """The launcher in a session of its own, as a terminal would run it; its output in a log."""

    def __init__(self, var_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.web_port, self.flower_port = free_port(), free_port()
        env = {**os.environ, "VAR_DIR": str(var_dir), "WEB_PORT": str(self.web_port),
               "FLOWER_PORT": str(self.flower_port), **(extra_env or {})}  # fmt: skip
        self.log_path = var_dir / "runstack.log"
        var_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "webapp.runstack"], cwd=ROOT, env=env,
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
