"""Celery configuration read from the environment, shared by the site and every worker.

Both sides must agree on the broker, serialisation and queue names, so there is
exactly one place that decides them. Standard library only: the web process
imports this without pulling in TensorFlow.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from workers.env import ConfigError, env_choice, env_int, env_str

__all__ = ["ConfigError", "broker_url", "celery_settings", "pick_queue", "queue_for_device"]

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "inference"
DEFAULT_CPU_QUEUE = "inference-cpu"
DEVICES = ("gpu", "cpu")


def broker_url(environ: Mapping[str, str] = os.environ) -> str:
    url = environ.get("CELERY_BROKER_URL") or environ.get("REDIS_URL") or DEFAULT_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"the broker URL must start with redis://, rediss:// or unix://, got {url!r}"
        )
    return url


def masked_url(url: str) -> str:
    """Return `url` with its password replaced, for logs and error messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def inference_queue(environ: Mapping[str, str] = os.environ) -> str:
    """Return the GPU queue: the one jobs go to unless CPU is asked for."""
    return env_str("INFERENCE_QUEUE", DEFAULT_QUEUE, environ)


def cpu_queue(environ: Mapping[str, str] = os.environ) -> str:
    return env_str("CPU_QUEUE", DEFAULT_CPU_QUEUE, environ)


def default_device(environ: Mapping[str, str] = os.environ) -> str:
    """Return where jobs run when a request does not say: `gpu` (default) or `cpu`."""
    return env_choice("DEFAULT_DEVICE", DEVICES, "gpu", environ)


def queue_for_device(device: str, environ: Mapping[str, str] = os.environ) -> str:
    return pick_queue(device, inference_queue(environ), cpu_queue(environ))


def pick_queue(device: str, gpu_queue: str, cpu_queue: str) -> str:
    """Return the queue jobs for `device` go to: the one rule the site and workers share."""
    if device not in DEVICES:
        raise ConfigError(f"device must be gpu or cpu, got {device!r}")
    return cpu_queue if device == "cpu" else gpu_queue


def _broker_ssl(environ: Mapping[str, str], url: str) -> dict[str, Any] | None:
    """TLS options for a `rediss://` broker, e.g. a central Redis reached from another cloud."""
    if not url.startswith("rediss://"):
        return None
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if ca_file := environ.get("BROKER_TLS_CA_FILE"):
        options["ssl_ca_certs"] = ca_file
    if cert_file := environ.get("BROKER_TLS_CERT_FILE"):
        options["ssl_certfile"] = cert_file
        options["ssl_keyfile"] = environ.get("BROKER_TLS_KEY_FILE", "")
    return options


def celery_settings(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Return Celery settings (lower-case names) for this process's environment."""
    url = broker_url(environ)
    hard_limit = env_int("TASK_TIME_LIMIT", 120, minimum=1, environ=environ)
    soft_limit = env_int(
        "TASK_SOFT_TIME_LIMIT", max(1, hard_limit - 20), minimum=1, environ=environ
    )
    # A message a dead worker held comes back after the visibility timeout. It
    # must exceed the longest task (or the task runs twice in parallel), but a
    # job must not wait Redis's default hour either.
    visibility_timeout = env_int(
        "BROKER_VISIBILITY_TIMEOUT", 2 * hard_limit + 60, minimum=1, environ=environ
    )
    if visibility_timeout <= hard_limit:
        raise ConfigError(
            f"BROKER_VISIBILITY_TIMEOUT ({visibility_timeout}s) must exceed "
            f"TASK_TIME_LIMIT ({hard_limit}s), or running tasks are delivered twice"
        )
    restore_interval = env_int("BROKER_RESTORE_INTERVAL", 10, minimum=1, environ=environ)
    # A link between clouds can fail without closing the TCP connection (a cut, a NAT or
    # firewall timeout). Without a socket timeout a publish (a retry, an event) on such a
    # connection waits forever; with it the command fails and kombu reconnects, which
    # succeeds as soon as the link is back. It must exceed BRPOP's 1 s server-side wait.
    socket_timeout = env_int("WORKER_BROKER_SOCKET_TIMEOUT", 10, minimum=5, environ=environ)
    settings: dict[str, Any] = {
        "broker_url": url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": restore_interval,
            # Scan for expired messages on every sweep, so restore_interval alone sets the delay.
            "unacked_restore_throttle": 1,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_timeout,
            "socket_keepalive": True,
        },
        # The job row in the site's database is the source of truth, not a result backend.
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": queue_for_device(default_device(environ), environ),
        # A crashed worker must not lose a scan: acknowledge only after the task ends,
        # and hand a task whose process died back to the queue.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": hard_limit,
        "task_soft_time_limit": soft_limit,
        # Flower sees every task only with these events on.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # Each child loads the model right after the fork; allow it more than the 4 s default.
        "worker_proc_alive_timeout": env_int(
            "WORKER_PROC_ALIVE_TIMEOUT", 120, minimum=1, environ=environ
        ),
    }
    if tls := _broker_ssl(environ, url):
        settings["broker_use_ssl"] = tls
    return settings
