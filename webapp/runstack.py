"""Run the whole stack on one machine: `python -m webapp.runstack` (what `make run` calls).

Web server, a Celery worker, Flower and the job sweeper, on embedded defaults:
SQLite under var/, the shipped model, and a private Redis when `REDIS_URL` is not
set and nothing listens on 6379. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from webapp.local_redis import port_is_open, start_redis
from workers.config import cpu_queue, inference_queue

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("VAR_DIR") or ROOT / "var")
WEB_PORT = int(os.environ.get("WEB_PORT", "8000"))
FLOWER_PORT = int(os.environ.get("FLOWER_PORT", "5555"))


def main() -> int:
    VAR.mkdir(exist_ok=True)
    env = stack_environment()
    children: list[subprocess.Popen[bytes]] = []
    try:
        if redis := redis_for(env):
            children.append(redis)
        prepare_database(env)
        children += start_services(env)
        print_banner(env)
        return supervise(children)
    finally:
        stop(children)


def stack_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("SECRET_KEY", local_secret("secret_key"))
    env.setdefault("WORKER_SECRET", local_secret("worker_secret"))
    env.setdefault("FLOWER_BASIC_AUTH", f"admin:{local_secret('flower_password')}")
    env.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1")
    env.setdefault("SITE_URL", f"http://127.0.0.1:{WEB_PORT}")
    env.setdefault("FLOWER_URL", f"http://127.0.0.1:{FLOWER_PORT}")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def local_secret(name: str) -> str:
    """Generate a secret once and keep it under var/, so restarts keep sessions and logins."""
    path = VAR / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def redis_for(env: dict[str, str]) -> subprocess.Popen[bytes] | None:
    if env.get("REDIS_URL") or env.get("CELERY_BROKER_URL"):
        say(f"broker: {env.get('CELERY_BROKER_URL') or env['REDIS_URL']} (configured)")
        return None
    env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    if port_is_open(6379):
        say("broker: the Redis already running on 127.0.0.1:6379")
        return None
    say("broker: starting a private Redis on 127.0.0.1:6379 (nothing kept on disk)")
    return start_redis(6379, VAR / "redis.log")


def prepare_database(env: dict[str, str]) -> None:
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True)
    collect = [*manage, "collectstatic", "--noinput", "-v", "0"]
    subprocess.run(collect, env=env, cwd=ROOT, check=True)
    demo = subprocess.run(
        [*manage, "create_demo"], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    env["DEMO_LOGIN"] = demo.stdout.strip()


def start_services(env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    python = sys.executable
    concurrency = env.get("WORKER_CONCURRENCY", "1")
    commands = {
        "web": [python, "-m", "gunicorn", "webapp.wsgi", "-b", f"127.0.0.1:{WEB_PORT}",
                "--workers", "2", "--threads", "4", "--access-logfile", "-"],
        # One local worker serves both queues, so GPU and CPU jobs both run on a laptop.
        "worker": [python, "-m", "celery", "-A", "workers.app", "worker", "-l", "INFO",
                   "-I", "workers.control", "-Q", ",".join(local_queues(env)),
                   "-c", concurrency, "-n", f"cpu@{env.get('WORKER_HOST_LABEL', '%h')}"],
        "flower": flower_command(FLOWER_PORT, VAR / "flower.db"),
        "sweeper": [python, "manage.py", "sweep_jobs", "--loop", "--interval", "30"],
    }  # fmt: skip
    return [subprocess.Popen(command, env=env, cwd=ROOT) for command in commands.values()]


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


def supervise(children: list[subprocess.Popen[bytes]]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    dead = next(child for child in children if child.poll() is not None)
    say(f"{dead.args[:4]} exited with {dead.returncode}; stopping the stack")
    return 1


def stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in reversed(children):
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


def say(message: str) -> None:
    print(f"[runstack] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
