"""Everything the site asks the broker: queue depths, the workers online, where a device's jobs go.

One module, so the dashboard, /metrics, /readyz and `stack_status` give the same
answers. Every call fails fast (one connection attempt, BROKER_CONNECT_TIMEOUT to
connect, BROKER_SOCKET_TIMEOUT or the caller's `timeout_s` for an answer) and raises
`BrokerUnavailable`, so a page can say "unavailable" instead of hanging.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict, cast

import redis
from django.conf import settings
from kombu.transport.redis import PRIORITY_STEPS, Channel

from predictions.models import Job
from webapp.celery import app
from workers.config import pick_queue


def _fail_fast(reply_wait_s: float) -> dict[str, float]:
    """Transport options for an inspection: one connection attempt, reads that outlast the
    wait for replies (kombu polls for them with a 1 s BRPOP), then the usual time limit."""
    return {"max_retries": 0, "socket_timeout": reply_wait_s + settings.BROKER_SOCKET_TIMEOUT}


class BrokerUnavailable(Exception):
    """The broker (or the workers behind it) could not be asked; the message says why."""


class WorkerInfo(TypedDict, total=False):
    """What `workers.control.worker_info` answers (older workers do not answer at all)."""

    role: str
    host_label: str
    queues: list[str]
    model_version: str
    model_version_at_start: str


def queue_for(device: str | None = None) -> str:
    """Return the queue for `device` (gpu or cpu); None means the site's DEFAULT_DEVICE."""
    return pick_queue(
        device or settings.DEFAULT_DEVICE, settings.INFERENCE_QUEUE, settings.CPU_QUEUE
    )


def known_queues() -> list[str]:
    """The configured queues plus any queue an unfinished job still waits on."""
    configured = {settings.INFERENCE_QUEUE, settings.CPU_QUEUE}
    waiting = Job.objects.unfinished().values_list("queue", flat=True).distinct()
    return sorted(configured | set(waiting[:50]))


def client(timeout_s: float | None = None) -> redis.Redis:
    """A Redis client on the Celery broker, with the same TLS options and short timeouts."""
    tls = app.conf.broker_use_ssl or {}
    return redis.Redis.from_url(
        app.conf.broker_url,
        socket_connect_timeout=settings.BROKER_CONNECT_TIMEOUT,
        socket_timeout=timeout_s or settings.BROKER_SOCKET_TIMEOUT,
        **tls,
    )


def ping(timeout_s: float | None = None) -> None:
    """Return when the broker answers a PING; raise BrokerUnavailable otherwise."""
    connection = client(timeout_s)
    try:
        connection.ping()
    except redis.RedisError as exc:
        raise BrokerUnavailable(str(exc)) from exc
    finally:
        connection.close()


def _priority_lists(queue: str) -> list[str]:
    # kombu's Redis transport keeps a queue's prioritised messages in extra lists.
    return [queue if step == 0 else f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS]


def queue_depths(queues: Iterable[str], timeout_s: float | None = None) -> dict[str, int]:
    """Return the messages waiting in each queue, counting every priority list."""
    queues = list(queues)
    connection = client(timeout_s)
    try:
        with connection.pipeline(transaction=False) as pipe:
            for queue in queues:
                for name in _priority_lists(queue):
                    pipe.llen(name)
            lengths = pipe.execute()
    except redis.RedisError as exc:
        raise BrokerUnavailable(str(exc)) from exc
    finally:
        connection.close()
    step = len(PRIORITY_STEPS)
    return {queue: sum(lengths[i * step : (i + 1) * step]) for i, queue in enumerate(queues)}


def worker_queues(timeout_s: float | None = None) -> dict[str, list[str]]:
    """Ask every worker which queues it consumes; return worker name -> queue names."""
    wait_s = timeout_s or settings.BROKER_SOCKET_TIMEOUT
    try:
        with app.connection_for_write(
            transport_options=_fail_fast(wait_s), connect_timeout=settings.BROKER_CONNECT_TIMEOUT
        ) as connection:
            replies = app.control.inspect(timeout=wait_s, connection=connection).active_queues()
    except Exception as exc:  # kombu raises many kinds for an unreachable broker
        raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return {
        worker: [queue["name"] for queue in queues] for worker, queues in (replies or {}).items()
    }


def worker_infos(timeout_s: float | None = None) -> dict[str, WorkerInfo]:
    """Return each worker's `worker_info` answer (role, queues, model version) by name."""
    wait_s = timeout_s or settings.BROKER_SOCKET_TIMEOUT
    try:
        with app.connection_for_write(
            transport_options=_fail_fast(wait_s), connect_timeout=settings.BROKER_CONNECT_TIMEOUT
        ) as connection:
            answers = app.control.broadcast(
                "worker_info", reply=True, timeout=wait_s, connection=connection
            )
    except Exception as exc:  # kombu raises many kinds for an unreachable broker
        raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return {
        name: cast(WorkerInfo, reply)
        for answer in answers or []
        for name, reply in answer.items()
        if isinstance(reply, dict)
    }
