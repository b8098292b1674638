"""What the dashboard asks the broker: queue length and workers online.

The dashboard must render when Redis is down, so every call gives up after about
a second and returns None ("unavailable") instead of retrying or raising.
"""

from __future__ import annotations

import logging

from webapp.celery import app

log = logging.getLogger(__name__)

# One connection attempt, one second: a dashboard is no place to wait for a broker.
_FAIL_FAST = {"max_retries": 0}
_TIMEOUT_S = 1.0


def queue_length(queue: str) -> int | None:
    """Return how many tasks wait in `queue`, or None when the broker cannot be asked."""
    try:
        with app.connection_for_read(
            transport_options=_FAIL_FAST, connect_timeout=_TIMEOUT_S
        ) as conn:
            return int(conn.default_channel.client.llen(queue))
    except Exception:
        log.warning("queue length unavailable", exc_info=True)
        return None


def workers_online() -> list[str] | None:
    """Return the names of workers answering a ping, or None when the broker is unreachable."""
    try:
        with app.connection_for_write(
            transport_options=_FAIL_FAST, connect_timeout=_TIMEOUT_S
        ) as conn:
            replies = app.control.inspect(timeout=_TIMEOUT_S, connection=conn).ping()
    except Exception:
        log.warning("worker ping unavailable", exc_info=True)
        return None
    return sorted(replies or {})
