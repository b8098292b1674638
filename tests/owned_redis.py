"""A Redis server a test owns, so it may stop, freeze, kill or wipe it (nothing mocked)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celery import Celery

from webapp.local_redis import free_port, port_is_open, start_redis


class OwnedRedis:
    """redis-server on a free port, its append-only file under `data_dir` so a stop keeps data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        durable = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.data_dir)]
        self.process = start_redis(self.port, self.data_dir / "redis.log", extra_args=durable)

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: Redis writes its data and exits."""
        self._signal_and_wait(signal.SIGTERM)

    def kill(self) -> None:
        self._signal_and_wait(signal.SIGKILL)

    def wipe(self) -> None:
        """Kill the server and delete its data: it comes back empty, as after a lost disk."""
        self.kill()
        for path in list(self.data_dir.rglob("*")):
            if path.is_file() and path.name != "redis.log":
                path.unlink()

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections, but nothing ever answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
        self.frozen = False

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            if self.frozen:
                self.thaw()
            self.kill()

    def _signal_and_wait(self, signum: int) -> None:
        assert self.process is not None
        if self.frozen:
            self.thaw()
        self.process.send_signal(signum)
        self.process.wait(timeout=30)
        assert not port_is_open(self.port)


@contextmanager
def site_broker(url: str, app: Celery | None = None) -> Iterator[None]:
    """Point the site's Celery app at `url`, dropping pooled connections on the way in and out."""
    if app is None:
        from webapp.celery import app
    previous = app.conf.broker_url
    app.conf.broker_url = url
    app._after_fork()  # the pools still hold connections to the previous broker
    try:
        yield
    finally:
        app.conf.broker_url = previous
        app._after_fork()
