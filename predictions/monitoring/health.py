"""Readiness checks: the database, the broker, and a worker serving the default queue.

Each check returns a `Check` instead of raising, so /readyz can name every
dependency that is down in one answer. Error texts never carry a password.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections

from predictions import broker
from webapp.celery import app
from workers.config import masked_url


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


def check_broker() -> Check:
    try:
        broker.ping()
    except broker.BrokerUnavailable as exc:
        return Check(ok=False, error=f"{masked_url(app.conf.broker_url)}: {exc}")
    return Check(ok=True)


def check_workers() -> Check:
    queue = broker.queue_for()
    serving = [
        worker
        for worker, queues in broker.worker_queues(settings.READYZ_WORKER_TIMEOUT).items()
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
