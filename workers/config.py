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

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "inference"
DEFAULT_CPU_QUEUE = "inference-cpu"
DEVICES = ("gpu", "cpu")


class ConfigError(ValueError):
    """A worker or broker variable is missing or malformed."""


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "")
    if not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


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
    return environ.get("INFERENCE_QUEUE", "").strip() or DEFAULT_QUEUE


def cpu_queue(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get("CPU_QUEUE", "").strip() or DEFAULT_CPU_QUEUE


def default_device(environ: Mapping[str, str] = os.environ) -> str:
    """Return where jobs run when a request does not say: `gpu` (default) or `cpu`."""
    device = environ.get("DEFAULT_DEVICE", "").strip().lower() or "gpu"
    if device not in DEVICES:
        raise ConfigError(f"DEFAULT_DEVICE must be gpu or cpu, got {device!r}")
    return device


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
    hard_limit = _int(environ, "TASK_TIME_LIMIT", 120)
    soft_limit = _int(environ, "TASK_SOFT_TIME_LIMIT", max(1, hard_limit - 20))
    # A message a dead worker held comes back after the visibility timeout. It
    # must exceed the longest task (or the task runs twice in parallel), but a
    # job must not wait Redis's default hour either.
    visibility_timeout = _int(environ, "BROKER_VISIBILITY_TIMEOUT", 2 * hard_limit + 60)
    if visibility_timeout <= hard_limit:
        raise ConfigError(
            f"BROKER_VISIBILITY_TIMEOUT ({visibility_timeout}s) must exceed "
            f"TASK_TIME_LIMIT ({hard_limit}s), or running tasks are delivered twice"
        )
    restore_interval = _int(environ, "BROKER_RESTORE_INTERVAL", 10)
    settings: dict[str, Any] = {
        "broker_url": url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": restore_interval,
            # Scan for expired messages on every sweep, so restore_interval alone sets the delay.
            "unacked_restore_throttle": 1,
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
        "worker_proc_alive_timeout": _int(environ, "WORKER_PROC_ALIVE_TIMEOUT", 120),
    }
    if tls := _broker_ssl(environ, url):
        settings["broker_use_ssl"] = tls
    return settings
