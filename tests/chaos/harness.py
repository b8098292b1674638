"""What the fault and load suite runs: the real stack (`make run`'s launcher) in front of a
Redis and a database connection the suite owns, so it can stop, freeze, wipe and cut them.

Nothing is mocked. The stack runs with short job timeouts (below) so that recovery
paths that take minutes in production (a message lost with Redis's data, a worker
killed mid-task) show within the suite's time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

from tests.images import png_bytes
from tests.owned_redis import OwnedRedis
from tests.stack import HealthWatch, RunningStack
from webapp.local_redis import free_port

# Production defaults are minutes; these make every recovery path show within seconds.
STACK_ENV = {
    # The worker is `make run`'s: one batching process (threads pool), default batch knobs.
    # Above the worker's 30 s wait for the site, so a site restarting is waited out.
    "TASK_TIME_LIMIT": "45",
    "TASK_SOFT_TIME_LIMIT": "40",
    "BROKER_VISIBILITY_TIMEOUT": "50",
    "BROKER_RESTORE_INTERVAL": "2",
    "JOB_QUEUED_TIMEOUT": "30",
    "JOB_RUNNING_TIMEOUT": "50",
    "JOB_MAX_ATTEMPTS": "5",
    "JOB_SWEEP_INTERVAL": "3",
    "JOB_DISPATCH_INTERVAL": "1",
    "BROKER_STATUS_INTERVAL": "5",
    "RUNSTACK_GRACE_S": "5",
    # The suite measures faults, not rate limits: it polls every job it sends.
    "API_THROTTLE_USER": "off",
    "API_THROTTLE_IP": "off",
}
RESPONSIVE_S = 1.0


class TcpProxy:
    """A TCP relay of the suite's own in front of PostgreSQL, that it can cut and restore.

    A cut closes every relayed connection with a reset and stops listening, as a
    database that went away would: new connections are refused until `restore()`.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        assert self.listener is not None
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.listener = None
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for end in pair:
                _reset(end)

    def restore(self) -> None:
        self.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self.lock:
                self.pairs.append((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for end in (source, sink):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)


def _reset(end: socket.socket) -> None:
    """End the connection now: linger 0, so the close resets it.

    The shutdown first: a pump thread is blocked in `recv` on this socket, and closing the
    descriptor alone leaves that call, and so the connection, alive (Linux). The relay then
    stopped relaying without resetting anything: a client mid-query waited for ever, and a
    transaction left open on the server held its row locks (a job then never finished).
    """
    with contextlib.suppress(OSError):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        end.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        end.close()


class Database:
    """The stack's own database (PostgreSQL through the proxy, or SQLite), read directly."""

    def __init__(self, tmp: Path, base_url: str) -> None:
        self.proxy: TcpProxy | None = None
        parts = urlsplit(base_url)
        if parts.scheme.startswith("postgres"):
            self.name = f"{parts.path.lstrip('/') or 'mri'}_chaos"
            self.admin_url = urlunsplit(parts._replace(path="/postgres"))
            self.direct_url = urlunsplit(parts._replace(path=f"/{self.name}"))
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{self.name}"')
            self.proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
            self.proxy.start()
            user = f"{parts.username}@" if parts.username else ""
            netloc = f"{user}127.0.0.1:{self.proxy.port}"
            self.stack_url = urlunsplit(parts._replace(netloc=netloc, path=f"/{self.name}"))
        else:
            self.sqlite_path = tmp / "chaos.sqlite3"
            self.stack_url = f"sqlite:///{self.sqlite_path}"

    def jobs_of(self, patient: str) -> list[tuple[str, str, int, int]]:
        """(job id as hex, status, attempts, predictions recorded) for a patient's jobs."""
        query = (
            "SELECT j.public_id, j.status, j.attempts, (SELECT COUNT(*) FROM "
            "predictions_prediction p WHERE p.job_id = j.id) FROM predictions_job j "
            "JOIN predictions_scan s ON s.id = j.scan_id "
            "JOIN predictions_patient pt ON pt.id = s.patient_id WHERE pt.external_id = {}"
        )
        if self.proxy is None:
            with contextlib.closing(sqlite3.connect(self.sqlite_path, timeout=30)) as db:
                rows = db.execute(query.format("?"), (patient,)).fetchall()
        else:
            with psycopg.connect(self.direct_url) as db:
                rows = db.execute(query.format("%s"), (patient,)).fetchall()  # type: ignore[arg-type]
        return [(uuid.UUID(str(r[0])).hex, str(r[1]), int(r[2]), int(r[3])) for r in rows]

    def error_of(self, job_hex: str) -> str:
        """The failure code and reason of one job (by its id in hex)."""
        if self.proxy is None:
            with contextlib.closing(sqlite3.connect(self.sqlite_path, timeout=30)) as db:
                query = "SELECT failure_code, error FROM predictions_job WHERE public_id = ?"
                row = db.execute(query, (job_hex,)).fetchone()
        else:
            with psycopg.connect(self.direct_url) as db:
                query = "SELECT failure_code, error FROM predictions_job WHERE public_id = %s"
                row = db.execute(query, (str(uuid.UUID(job_hex)),)).fetchone()
        return f"{row[0]}: {row[1][:120]}" if row else "?"

    def close(self) -> None:
        if self.proxy is not None:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as db:
            db.execute(statement)  # type: ignore[arg-type]


class ChaosStack:
    """The stack under test, its Redis and database, and an API client of the demo clinic."""

    def __init__(self, tmp: Path, registry: Path) -> None:
        self.redis = OwnedRedis(tmp / "redis")
        self.redis.start()
        self.db = Database(tmp, os.environ.get("DATABASE_URL", ""))
        env = {**STACK_ENV, "REDIS_URL": self.redis.url, "DATABASE_URL": self.db.stack_url,
               "MODEL_REGISTRY_DIR": str(registry)}  # fmt: skip
        # An empty CELERY_BROKER_URL leaves REDIS_URL (ours) in charge.
        self.stack = RunningStack(tmp / "var", {**env, "CELERY_BROKER_URL": ""})
        self.stack.wait_ready()
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Token {self.stack.banner_value('api token')}"
        self.image = png_bytes(128)
        self.warm_up()

    def warm_up(self, timeout_s: float = 300) -> None:
        """Classify one scan, so every scenario starts with the model loaded in the worker."""
        _, patient_id = self.new_patient()
        job_url = self.submit(patient_id).json()["job"]["url"]
        deadline = time.monotonic() + timeout_s
        while self.api.get(job_url, timeout=30).json()["status"] != "succeeded":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the warm-up job did not succeed:\n{self.stack.log()[-3000:]}")
            time.sleep(0.5)

    @property
    def url(self) -> str:
        return self.stack.site_url

    def new_patient(self) -> tuple[str, str]:
        """Register a patient of its own for a scenario; return (external id, public id)."""
        external_id = f"CHAOS-{uuid.uuid4().hex[:10]}"
        answer = self.api.post(
            f"{self.url}/api/v1/patients/", json={"external_id": external_id}, timeout=30
        )
        answer.raise_for_status()
        return external_id, answer.json()["id"]

    def submit(self, patient_id: str, timeout_s: float = 30) -> requests.Response:
        return self.api.post(
            f"{self.url}/api/v1/scans/", files={"image": ("s.png", self.image, "image/png")},
            # The same slice on purpose, many times: not the duplicate the API warns about.
            data={"patient": patient_id, "allow_duplicate": "true"}, timeout=timeout_s,
        )  # fmt: skip

    def worker_group(self) -> int:
        return self.stack.service_pids()["worker"]

    def close(self) -> None:
        self.stack.close()
        self.redis.close()
        self.db.close()


@dataclass
class Row:
    """One line of the table: what a scenario submitted and what became of it."""

    scenario: str
    submitted: int = 0
    finished: int = 0
    lost: int = 0
    duplicated: int = 0
    recover_s: float = 0.0
    healthz_slowest_s: float = 0.0
    healthz_failures: int = 0
    healthz_down_s: float = 0.0
    refused: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def responsive(self) -> bool:
        return self.healthz_failures == 0 and self.healthz_slowest_s < RESPONSIVE_S

    def responsive_text(self) -> str:
        slowest = f"max {self.healthz_slowest_s * 1000:.0f} ms"
        if self.responsive:
            return f"yes ({slowest})"
        return f"no: {self.healthz_failures} failed, down {self.healthz_down_s:.1f} s ({slowest})"


class Scenario:
    """Submit, break something, repair it, and count what finished; /healthz polled throughout."""

    def __init__(self, chaos: ChaosStack, name: str) -> None:
        self.chaos, self.row = chaos, Row(name)
        self.patient, self.patient_id = chaos.new_patient()
        self.job_ids: set[str] = set()
        self.awaiting_dispatch = 0
        self.refusals: list[str] = []
        self.submit_s: list[float] = []
        self.repaired_at: float | None = None
        self.health = HealthWatch(chaos.url, timeout_s=RESPONSIVE_S)

    def submit(self, count: int, threads: int = 4) -> None:
        """Submit `count` scans; a 202 is counted as submitted, anything else as refused."""

        def one(_: int) -> None:
            started = time.monotonic()
            try:
                answer = self.chaos.submit(self.patient_id)
            except requests.RequestException as exc:
                self.refusals.append(type(exc).__name__)
                return
            self.submit_s.append(time.monotonic() - started)
            if answer.status_code != 202:
                self.refusals.append(f"HTTP {answer.status_code}")
                return
            job = answer.json()["job"]
            self.job_ids.add(uuid.UUID(job["id"]).hex)
            self.awaiting_dispatch += bool(job["awaiting_dispatch"])

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, range(count)))

    def jobs(self) -> list[tuple[str, str, int, int]]:
        return self.chaos.db.jobs_of(self.patient)

    def wait_for(self, predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError, sqlite3.OperationalError):
                if value := predicate():
                    return value
            time.sleep(0.2)
        raise AssertionError(f"{self.row.scenario}: timed out after {timeout_s} s: {what}")

    def repaired(self) -> None:
        self.repaired_at = time.monotonic()

    def finish(self, timeout_s: float = 150) -> Row:
        """Wait until every submitted job has finished (or time runs out); fill in the row."""
        if self.repaired_at is None:
            self.repaired()
        assert self.repaired_at is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._all_finished():
            time.sleep(0.5)
        self.row.recover_s = time.monotonic() - self.repaired_at
        self.health.stop()
        jobs = self.jobs()
        done = {job for job, status, _, predictions in jobs if status == "succeeded"}
        self.row.submitted = len(self.job_ids)
        self.row.finished = len(done & self.job_ids)
        self.row.lost = self.row.submitted - self.row.finished
        # A result recorded twice, or a job the site made that no caller was told of.
        extra_results = sum(max(0, predictions - 1) for *_, predictions in jobs)
        orphans = len({job for job, *_ in jobs} - self.job_ids)
        self.row.duplicated = extra_results + orphans
        self.row.healthz_slowest_s = self.health.slowest_s
        self.row.healthz_failures = len(self.health.failures)
        self.row.healthz_down_s = self.health.down_s
        if redelivered := sum(1 for _, _, attempts, _ in jobs if attempts > 1):
            self.row.notes.append(f"{redelivered} job(s) started more than once")
        self.row.refused = len(self.refusals)
        if self.refusals:
            reasons = ", ".join(sorted(set(self.refusals)))
            self.row.notes.append(f"{self.row.refused} submit(s) refused ({reasons})")
        if self.awaiting_dispatch:
            self.row.notes.append(f"{self.awaiting_dispatch} accepted as awaiting dispatch")
        if failed := [job for job, status, *_ in jobs if status == "failed"]:
            self.row.notes.append(f"{len(failed)} failed: {self.failure_reasons(failed)}")
        if self.submit_s:
            self.row.notes.append(f"slowest submit {max(self.submit_s) * 1000:.0f} ms")
        return self.row

    def failure_reasons(self, job_ids: list[str]) -> str:
        return "; ".join(sorted({self.chaos.db.error_of(job) for job in job_ids}))[:300]

    def _all_finished(self) -> bool:
        with contextlib.suppress(psycopg.OperationalError, sqlite3.OperationalError):
            finished = {job for job, status, *_ in self.jobs() if status in ("succeeded", "failed")}
            return self.job_ids <= finished
        return False


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | submitted | finished | lost | duplicated | time to recover | "
        "/healthz under 1 s throughout | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.scenario} | {row.submitted} | {row.finished} | {row.lost} | "
            f"{row.duplicated} | {row.recover_s:.1f} s | {row.responsive_text()} | "
            f"{'; '.join(row.notes)} |"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def paused(group: int) -> Iterator[None]:
    """SIGSTOP every process of a group, and SIGCONT them afterwards whatever happens."""
    import signal

    os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(group, signal.SIGCONT)
