"""`python -m webapp.runstack` in a subprocess, for the tests and the benchmark of `make run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from webapp.local_redis import free_port, port_is_open

ROOT = Path(__file__).resolve().parent.parent


class RunningStack:
    """`python -m webapp.runstack` in a subprocess, for benchmarks and tests of `make run`."""

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

    def interrupt(self, timeout_s: float = 60) -> int:
        """Press Ctrl-C (SIGINT to the whole process group, as a terminal does)."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=timeout_s)
