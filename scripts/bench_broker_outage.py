#!/usr/bin/env python
"""Measure what a frozen broker (Redis stopped with SIGSTOP) does to the site.

Starts its own Redis and the web server as `make run` does (gunicorn, 2 processes of
4 threads) from a checkout (`--root`, this one by default, so an older checkout can
be measured the same way), then prints the latency of submits, the dashboard and
/healthz with Redis answering, and again while Redis is frozen: `--submits` submits
and one dashboard request at once, /healthz polled every 0.2 s meanwhile. Requests
are cut off after `--cutoff` seconds (a hung request counts as "> cutoff").

    python scripts/bench_broker_outage.py [--root DIR] [--database-url URL] [--submits 10]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.images import png_bytes
from tests.owned_redis import OwnedRedis
from webapp.local_redis import free_port, port_is_open

Timing = float | None  # seconds, None when cut off or failed


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = OwnedRedis(Path(tmp) / "redis")
        redis_server.start()
        site = Site(Path(args.root).resolve(), Path(tmp), redis_server.url, args.database_url)
        try:
            site.start()
            measure(site, redis_server, args)
        finally:
            site.stop()
            redis_server.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp folder")
    parser.add_argument("--submits", type=int, default=10)
    parser.add_argument("--cutoff", type=float, default=20.0)
    parser.add_argument("--frozen-for", type=float, default=35.0)
    return parser.parse_args()


class Site:
    """gunicorn as `make run` starts it, with a demo user, on a free port."""

    def __init__(self, root: Path, tmp: Path, redis_url: str, database_url: str) -> None:
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "REDIS_URL": redis_url, "VAR_DIR": str(tmp / "var"),
                    "DATABASE_URL": database_url or f"sqlite:///{tmp / 'db.sqlite3'}",
                    "SECRET_KEY": "bench", "WORKER_SECRET": "bench", "DEBUG": "false",
                    "ALLOWED_HOSTS": "127.0.0.1", "DJANGO_SETTINGS_MODULE": "webapp.settings",
                    "PYTHONPATH": str(root)}  # fmt: skip
        self.env.pop("CELERY_BROKER_URL", None)
        self.process: subprocess.Popen[bytes] | None = None

    def manage(self, *command: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *command], cwd=self.root,
                              env=self.env, check=True, capture_output=True, text=True)  # fmt: skip
        return done.stdout

    def start(self) -> None:
        (Path(self.env["VAR_DIR"])).mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("collectstatic", "--noinput", "-v", "0")
        demo = self.manage("create_demo", "--password", "bench-password-1")
        self.token = re.search(r"api token: (\w+)", demo).group(1)  # type: ignore[union-attr]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "webapp.wsgi", "-b", f"127.0.0.1:{self.port}",
             "--workers", "2", "--threads", "4", "--timeout", "120"],
            cwd=self.root, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not port_is_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def measure(site: Site, redis_server: OwnedRedis, args: argparse.Namespace) -> None:
    api = requests.Session()
    api.headers["Authorization"] = f"Token {site.token}"
    patient = api.post(f"{site.url}/api/v1/patients/", json={"external_id": "BENCH-1"}, timeout=30)
    portal = logged_in_portal(site.url)
    image = png_bytes(128)

    def submit() -> Timing:
        files = {"image": ("s.png", image, "image/png")}
        # The same slice every time, on purpose (the site warns about duplicates otherwise).
        data = {"patient": patient.json()["id"], "allow_duplicate": "true"}
        return timed(lambda: api.post(f"{site.url}/api/v1/scans/", files=files, data=data,
                                      timeout=args.cutoff), expect=202)  # fmt: skip

    def dashboard() -> Timing:
        return timed(lambda: portal.get(f"{site.url}/", timeout=args.cutoff), expect=200)

    def healthz() -> Timing:
        return timed(lambda: requests.get(f"{site.url}/healthz", timeout=args.cutoff), expect=200)

    rows = [("broker answering", "submit", [submit() for _ in range(5)]),
            ("broker answering", "dashboard", [dashboard() for _ in range(5)]),
            ("broker answering", "/healthz", [healthz() for _ in range(5)])]  # fmt: skip
    redis_server.freeze()
    poller = Poller(healthz)
    with ThreadPoolExecutor(max_workers=args.submits + 1) as pool:
        submits = [pool.submit(submit) for _ in range(args.submits)]
        board = pool.submit(dashboard)
        thaw_at = time.monotonic() + args.frozen_for
        while time.monotonic() < thaw_at and not all(f.done() for f in [*submits, board]):
            time.sleep(0.2)
        poller.stop()
        rows += [(f"Redis SIGSTOPped, {args.submits} at once", "submit",
                  [f.result() for f in submits]),
                 (f"Redis SIGSTOPped, with the {args.submits}", "dashboard", [board.result()]),
                 ("Redis SIGSTOPped (polled 0.2 s)", "/healthz", poller.timings)]  # fmt: skip
    # Still frozen, one request at a time: what a single caller sees.
    for request, probe in (("submit", submit), ("dashboard", dashboard), ("/healthz", healthz)):
        rows.append(("Redis SIGSTOPped, one at a time", request, [probe() for _ in range(3)]))
    redis_server.thaw()
    print_table(rows, args.cutoff)


def logged_in_portal(site_url: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{site_url}/accounts/login/", timeout=30)
    form = {"username": "demo", "password": "bench-password-1",
            "csrfmiddlewaretoken": session.cookies["csrftoken"]}  # fmt: skip
    session.post(f"{site_url}/accounts/login/", data=form, timeout=30,
                 headers={"Referer": f"{site_url}/accounts/login/"})  # fmt: skip
    if "sessionid" not in session.cookies:
        raise RuntimeError("could not log in to the portal")
    return session


def timed(call: Callable[[], requests.Response], expect: int) -> Timing:
    started = time.monotonic()
    try:
        response = call()
    except requests.RequestException:
        return None
    return time.monotonic() - started if response.status_code == expect else None


class Poller:
    """Call `probe` every 0.2 s in a thread, keeping every timing."""

    def __init__(self, probe: Callable[[], Timing]) -> None:
        self.probe, self.timings = probe, list[Timing]()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.timings.append(self.probe())

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def print_table(rows: list[tuple[str, str, list[Timing]]], cutoff: float) -> None:
    print("| condition | request | n | median | max | failed or > cut-off |")
    print("|---|---|---|---|---|---|")
    for condition, request, timings in rows:
        done = [t for t in timings if t is not None]
        median = f"{statistics.median(done) * 1000:.0f} ms" if done else "-"
        worst = f"{max(done) * 1000:.0f} ms" if done else "-"
        failed = len(timings) - len(done)
        print(f"| {condition} | {request} | {len(timings)} | {median} | {worst} | "
              f"{failed}{f' (> {cutoff:g} s or error)' if failed else ''} |")  # fmt: skip


if __name__ == "__main__":
    main()
