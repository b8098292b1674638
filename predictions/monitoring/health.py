"""Readiness checks: the database, the broker, and a worker serving the default queue.

Each check returns a `Check` instead of raising, so /readyz can name every
dependency that is down in one answer. Error texts never carry a password.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.db import connections

from webapp.celery import app
from workers.config import masked_url

BROKER_TIMEOUT_S = 2.0


@dataclass
class Check:
    ok: bool
    error: str = ""
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["seconds"] = round(self.seconds, 3)
        return {key: value for key, value in body.items() if value or key in ("ok", "seconds")}


def timed(check: Callable[[], Check]) -> Check:
    started = time.monotonic()
    try:
        result = check()
    except Exception as exc:
        result = Check(ok=False, error=f"{type(exc).__name__}: {exc}")
    result.seconds = time.monotonic() - started
    return result


def check_database() -> Check:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
    return Check(ok=True)


def broker_client() -> redis.Redis:
    """A Redis client on the Celery broker, with the same TLS options and short timeouts."""
    tls = app.conf.broker_use_ssl or {}
    return redis.Redis.from_url(
        app.conf.broker_url,
        socket_connect_timeout=BROKER_TIMEOUT_S,
        socket_timeout=BROKER_TIMEOUT_S,
        **tls,
    )


def check_broker() -> Check:
    client = broker_client()
    try:
        client.ping()
    except redis.RedisError as exc:
        return Check(ok=False, error=f"{masked_url(app.conf.broker_url)}: {exc}")
    finally:
        client.close()
    return Check(ok=True)


def default_queue() -> str:
    return settings.CPU_QUEUE if settings.DEFAULT_DEVICE == "cpu" else settings.INFERENCE_QUEUE


def workers_by_queue(timeout_s: float) -> dict[str, list[str]]:
    """Ask every worker which queues it consumes; return worker name -> queue names."""
    replies = app.control.inspect(timeout=timeout_s).active_queues() or {}
    return {worker: [queue["name"] for queue in queues] for worker, queues in replies.items()}


def check_workers() -> Check:
    queue = default_queue()
    serving = [
        worker
        for worker, queues in workers_by_queue(settings.READYZ_WORKER_TIMEOUT).items()
        if queue in queues
    ]
    if not serving:
        return Check(ok=False, error=f"no worker answered for queue {queue!r}")
    return Check(ok=True, detail={"queue": queue, "workers": sorted(serving)})


def readiness() -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run every check; return (ready, body). Workers are not asked when the broker is down."""
    checks = {"database": timed(check_database), "broker": timed(check_broker)}
    if not checks["broker"].ok:
        checks["workers"] = Check(ok=False, error="not checked: the broker is down")
    else:
        checks["workers"] = timed(check_workers)
    required = ["database", "broker"] + (["workers"] if settings.READYZ_REQUIRE_WORKER else [])
    ready = all(checks[name].ok for name in required)
    return ready, {name: check.as_json() for name, check in checks.items()}
