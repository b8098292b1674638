"""Run the whole stack on one machine: `python -m webapp.runstack` (what `make run` calls).

Web server, a Celery worker, Flower, the job sweeper and the PACS sender, on embedded defaults:
SQLite under var/, the shipped model, and a private Redis when `REDIS_URL` is not
set and nothing listens on 6379.

Each service runs in a process group of its own, so a terminal's Ctrl-C reaches only
this launcher, never gunicorn's workers directly: a gthread worker that gets a second
signal while it shuts its thread pool down deadlocks (CPython issue #121649). On Ctrl-C
or SIGTERM the launcher sends one SIGTERM to each service's main process, waits
`RUNSTACK_GRACE_S` (15 s), then SIGKILLs whatever is left in the service's group. A
service that exits on its own is restarted with back-off; one that keeps exiting soon
after it starts stops the whole stack. If the launcher itself dies (even by SIGKILL),
`webapp.stack_watchdog`, a process of its own that this launcher keeps informed,
stops every service the same way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from webapp.local_redis import RedisUnavailable, port_is_open, start_redis
from workers.batch_settings import batch_settings
from workers.config import cpu_queue, inference_queue
from workers.env import ConfigError, env_choice, env_float, env_int, env_str

ROOT = Path(__file__).resolve().parent.parent
try:
    VAR = Path(env_str("VAR_DIR") or ROOT / "var")
    WEB_PORT = env_int("WEB_PORT", 8000, minimum=1)
    FLOWER_PORT = env_int("FLOWER_PORT", 5555, minimum=1)
    GRACE_S = env_float("RUNSTACK_GRACE_S", 15.0, minimum=0.0)
    # Local worker processes; the benchmark measures one and two.
    WORKER_PROCESSES = env_int("WORKER_PROCESSES", 1, minimum=1)
except ConfigError as exc:
    sys.exit(f"[runstack] {exc}")
FIRST_DELAY_S, MAX_DELAY_S = 1.0, 30.0
# A run shorter than this is a crash on start-up; this many in a row and we give up.
STABLE_S, MAX_QUICK_EXITS = 60.0, 5


def main() -> int:
    signals = Signals()
    WATCHDOG.start()
    VAR.mkdir(exist_ok=True)
    env = stack_environment()
    services: list[Service] = []
    try:
        return run(env, services, signals)
    except subprocess.CalledProcessError:
        if signals.received is None:
            raise
        return 0  # Ctrl-C stopped a preparation step, which is in our process group.
    finally:
        stop(services, signals)


def run(env: dict[str, str], services: list[Service], signals: Signals) -> int:
    try:
        local_worker_pool(env)
    except ConfigError as exc:
        say(f"configuration: {exc}")
        return 2
    if redis := redis_service(env):
        redis.start()
        services.append(redis)
    prepare_database(env)
    for service in app_services(env):
        if signals.received is not None:
            return 0
        service.start()
        services.append(service)
    print_banner(env)
    return supervise(services, signals)


class Signals:
    """Treat SIGINT and SIGTERM alike; count them rather than raise, so no stop is cut short."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.count = 0
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signum
        self.count += 1


class Watchdog:
    """The launcher's end of the pipe to `webapp.stack_watchdog`: which groups to stop."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        # A session of its own, so neither a Ctrl-C nor the launcher's death reaches it.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "webapp.stack_watchdog", str(GRACE_S)],
            cwd=ROOT, stdin=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        say(f"watchdog pid {self.process.pid}")

    def watch(self, pgid: int) -> None:
        self._tell(f"+{pgid}")

    def forget(self, pgid: int) -> None:
        self._tell(f"-{pgid}")

    def _tell(self, line: str) -> None:
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.write(line + "\n")
                self.process.stdin.flush()


WATCHDOG = Watchdog()


@dataclass
class Service:
    """One service: its command, its current process, and its record of restarts."""

    name: str
    launch: Callable[[], subprocess.Popen[bytes]]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    delay_s: float = FIRST_DELAY_S
    quick_exits: int = 0

    def start(self) -> None:
        self.process = self.launch()
        WATCHDOG.watch(self.process.pid)
        self.started_at, self.restart_at = time.monotonic(), None
        say(f"started {self.name} (pid {self.process.pid})")

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def has_exited(self) -> bool:
        """Whether the main process has exited; leaves it unreaped, so its group id stays ours."""
        assert self.process is not None
        if self.process.returncode is not None:
            return True
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self.process.pid, flags) is not None

    def terminate(self) -> None:
        """One SIGTERM to the main process only; it stops its own children (gunicorn's workers)."""
        assert self.process is not None
        # os.kill, not Popen.send_signal: that reaps an exited process, freeing its group id.
        os.kill(self.process.pid, signal.SIGTERM)

    def kill_group(self) -> int:
        """SIGKILL whatever is left in the service's process group, reap it, return its code."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        code = self.process.wait()
        if not wait_group_gone(self.process.pid, timeout_s=10):
            say(f"{self.name}: processes of group {self.process.pid} outlived SIGKILL")
        else:
            WATCHDOG.forget(self.process.pid)
        return code

    def schedule_restart(self, code: int, now: float) -> bool:
        """Plan the next start after an exit; False when it keeps exiting right after starting."""
        if now - self.started_at >= STABLE_S:
            self.quick_exits, self.delay_s = 0, FIRST_DELAY_S
        self.quick_exits += 1
        if self.quick_exits >= MAX_QUICK_EXITS:
            say(f"{self.name} exited with code {code}, {self.quick_exits} times in a row within "
                f"{STABLE_S:g} s of starting; giving up and stopping the stack")  # fmt: skip
            return False
        say(f"{self.name} exited with code {code}; restarting in {self.delay_s:g} s")
        self.restart_at = now + self.delay_s
        self.delay_s = min(self.delay_s * 2, MAX_DELAY_S)
        return True


def wait_group_gone(pgid: int, timeout_s: float) -> bool:
    """Wait until no process is left in group `pgid`, so its ports are free for a restart."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def stack_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("SECRET_KEY", local_secret("secret_key"))
    env.setdefault("WORKER_SECRET", local_secret("worker_secret"))
    env.setdefault("FLOWER_BASIC_AUTH", f"admin:{local_secret('flower_password')}")
    env.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1")
    env.setdefault("SITE_URL", f"http://127.0.0.1:{WEB_PORT}")
    env.setdefault("FLOWER_URL", f"http://127.0.0.1:{FLOWER_PORT}")
    env.setdefault("TF_INTRA_OP_THREADS", str(model_threads(WORKER_PROCESSES)))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def model_threads(worker_processes: int) -> int:
    """Threads each local worker's model may use: the cores shared out between the workers.
    Each would otherwise take every core (LiteRT's and TensorFlow's default), and on two
    cores two workers ran slower than one (make bench: 23.3 against 28.9 jobs/s)."""
    return max(1, (os.cpu_count() or 1) // worker_processes)


def local_secret(name: str) -> str:
    """Generate a secret once and keep it under var/, so restarts keep sessions and logins."""
    path = VAR / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def redis_service(env: dict[str, str]) -> Service | None:
    if env.get("REDIS_URL") or env.get("CELERY_BROKER_URL"):
        say(f"broker: {env.get('CELERY_BROKER_URL') or env['REDIS_URL']} (configured)")
        return None
    env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    if port_is_open(6379):
        say("broker: the Redis already running on 127.0.0.1:6379")
        return None
    say("broker: starting a private Redis on 127.0.0.1:6379 (nothing kept on disk)")
    return Service("redis", lambda: start_redis(6379, VAR / "redis.log", own_session=True))


def prepare_database(env: dict[str, str]) -> None:
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True)
    collect = [*manage, "collectstatic", "--noinput", "-v", "0"]
    subprocess.run(collect, env=env, cwd=ROOT, check=True)
    demo = subprocess.run(
        [*manage, "create_demo"], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    env["DEMO_LOGIN"] = demo.stdout.strip()


def app_services(env: dict[str, str]) -> list[Service]:
    python = sys.executable
    commands = {
        "web": [python, "-m", "gunicorn", "webapp.wsgi", "-b", f"127.0.0.1:{WEB_PORT}",
                "--workers", "2", "--threads", "4", "--access-logfile", "-"],
        **worker_commands(env),
        "flower": flower_command(FLOWER_PORT, VAR / "flower.db"),
        "sweeper": [python, "manage.py", "sweep_jobs", "--loop"],
        # Sends finished DICOM studies' results to each organisation's PACS (docs/pacs.md).
        "pacs-sender": [python, "manage.py", "send_pacs_results", "--loop", "--interval", "5"],
    }  # fmt: skip
    return [Service(name, launcher(command, env)) for name, command in commands.items()]


def local_worker_pool(env: dict[str, str]) -> tuple[str, int]:
    """(pool, -c): threads batching WORKER_BATCH_SIZE jobs, WORKER_BATCHES_IN_FLIGHT batches at
    once, by default; WORKER_POOL=prefork
    runs WORKER_CONCURRENCY processes, one job at a time each."""
    pool = env_choice("WORKER_POOL", ("threads", "prefork", "solo"), "threads", env)
    if pool == "threads":
        return pool, batch_settings(env).threads
    return pool, env_int("WORKER_CONCURRENCY", 1, minimum=1, environ=env)


def worker_commands(env: dict[str, str]) -> dict[str, list[str]]:
    """WORKER_PROCESSES local workers (default one), each serving both queues, so GPU and
    CPU jobs both run on a laptop. At a lower CPU priority (nice 10): loading or running
    the model must not starve the web server of the same machine (its /healthz must
    answer within a second). The threads pool (default) batches jobs across tasks in each
    worker process (workers.batching)."""
    pool, pool_size = local_worker_pool(env)
    label = env.get("WORKER_HOST_LABEL", "%h")
    commands = {}
    for number in range(1, WORKER_PROCESSES + 1):
        suffix = "" if number == 1 else f"-{number}"
        commands[f"worker{suffix}"] = [
            "nice", "-n", "10", sys.executable, "-m", "celery", "-A", "workers.app", "worker",
            "-l", "INFO", "-I", "workers.control", "-Q", ",".join(local_queues(env)),
            "-P", pool, "-c", str(pool_size), "-n", f"cpu{suffix}@{label}",
        ]  # fmt: skip
    return commands


def launcher(command: list[str], env: dict[str, str]) -> Callable[[], subprocess.Popen[bytes]]:
    # A session of its own: a terminal's Ctrl-C to our group must not reach the service.
    return lambda: subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)


def flower_command(port: int, db: Path) -> list[str]:
    """Flower on the loopback only; FLOWER_BASIC_AUTH, persistence: workers/flowerconfig.py."""
    return [sys.executable, "-m", "celery", "-A", "workers.flower_app", "flower",
            "--conf=workers/flowerconfig.py", "--address=127.0.0.1", f"--port={port}",
            f"--db={db}"]  # fmt: skip


def local_queues(env: dict[str, str]) -> list[str]:
    return [inference_queue(env), cpu_queue(env)]


def print_banner(env: dict[str, str]) -> None:
    user, password = env["FLOWER_BASIC_AUTH"].split(":", 1)
    say(
        "\n"
        f"  site and portal  {env['SITE_URL']}/\n"
        f"  API              {env['SITE_URL']}/api/v1/   (docs: {env['SITE_URL']}/api/docs/)\n"
        f"  Flower           {env['FLOWER_URL']}/   (user {user}, password {password})\n"
        + "".join(f"  {line}\n" for line in env["DEMO_LOGIN"].splitlines())
        + "  Ctrl-C stops everything.\n"
    )


def supervise(services: list[Service], signals: Signals) -> int:
    """Restart services that exit until a signal arrives; 1 if one keeps failing."""
    while signals.received is None:
        if not all(check(service) for service in services):
            return 1
        time.sleep(0.2)
    return 0


def check(service: Service) -> bool:
    """Reap an exited service and plan its restart, or start it when due; False: give up."""
    now = time.monotonic()
    if service.restart_at is None:
        return not service.has_exited() or service.schedule_restart(service.kill_group(), now)
    if now >= service.restart_at:
        try:
            service.start()
        except RedisUnavailable as exc:  # a failed start counts as a quick exit
            say(str(exc))
            service.started_at = now
            return service.schedule_restart(-1, now)
    return True


def stop(services: list[Service], signals: Signals) -> None:
    """Stop the app services, then Redis last, so the worker can still hand back its tasks."""
    running = [service for service in reversed(services) if service.running()]
    stop_together([s for s in running if s.name != "redis"], signals)
    stop_together([s for s in running if s.name == "redis"], signals)
    if running:
        say("stopped")


def stop_together(services: list[Service], signals: Signals) -> None:
    """SIGTERM each, wait up to GRACE_S (cut short by another Ctrl-C), then SIGKILL the rest."""
    signals_before = signals.count
    for service in services:
        service.terminate()
    deadline = time.monotonic() + GRACE_S
    while not all(service.has_exited() for service in services):
        if time.monotonic() > deadline or signals.count > signals_before:
            break
        time.sleep(0.1)
    for service in services:
        if not service.has_exited():
            say(f"{service.name} is still running; killing its process group")
        service.kill_group()


def say(message: str) -> None:
    print(f"[runstack] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
