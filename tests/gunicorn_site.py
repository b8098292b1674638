"""The site under a real gunicorn (as `make run` and the container start it), on the test
database, for behaviour only the real server shows: its access log, chunked bodies."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from django.db import connection

from webapp.local_redis import free_port, port_is_open

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """Return a DATABASE_URL naming the database the tests use right now (the test copy)."""
    settings: dict[str, Any] = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    user, host, port = settings["USER"], settings["HOST"], settings["PORT"] or 5432
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


class GunicornSite:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process, self.url, self.log_path = process, url, log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def collect_static(var_dir: Path) -> Path:
    """Run collectstatic into `var_dir`/static, as a deploy does (the manifest pages need)."""
    command = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"]
    env = {**os.environ, "VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    return var_dir


@contextmanager
def gunicorn_site(var_dir: Path, tmp_path: Path, **extra_env: str) -> Iterator[GunicornSite]:
    """Run `gunicorn webapp.wsgi` from the repository root (so it reads gunicorn.conf.py).

    `var_dir` holds collected static files (`collect_static`); media go under `tmp_path`.
    """
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DATABASE_URL": database_url(),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "VAR_DIR": str(var_dir),
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    log_path = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "webapp.wsgi", "-b", f"127.0.0.1:{port}",
               "--workers", "1", "--threads", "2", "--access-logfile", "-"]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not port_is_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        site = GunicornSite(process, f"http://127.0.0.1:{port}", log_path)
        requests.get(f"{site.url}/healthz", timeout=30)  # the worker has loaded the app
        yield site
    finally:
        process.terminate()
        process.wait(timeout=30)
