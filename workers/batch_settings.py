"""How a worker batches jobs across tasks (workers.batching): the two knobs TF Serving and
Triton give their users, read from the environment and checked at start-up.

    WORKER_BATCH_SIZE=16      the most jobs one batch takes (1 to MAX_BULK_ITEMS)
    WORKER_BATCH_WAIT_MS=20   after the first job, how long to wait for more (0 to 10,000)
    WORKER_FETCH_THREADS=8    images fetched from the site in parallel per batch (1 to 64)
    WORKER_BATCHES_IN_FLIGHT=3  batches carried at once (1 to 8): while one is in the model,
                              the next is started and fetched and the one before is posted

Standard library only: the site and `python -m workers` read it without TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from workers.contracts import MAX_BULK_ITEMS
from workers.env import ConfigError, env_int

MAX_WAIT_MS = 10_000
MAX_FETCH_THREADS = 64
MAX_IN_FLIGHT = 8


@dataclass(frozen=True)
class BatchSettings:
    size: int
    wait_ms: int
    fetch_threads: int
    in_flight: int = 3

    @property
    def wait_s(self) -> float:
        return self.wait_ms / 1000

    @property
    def threads(self) -> int:
        """Celery's -c for the threads pool: a task thread waits for each job in flight."""
        return self.size * self.in_flight


def batch_settings(environ: Mapping[str, str] = os.environ) -> BatchSettings:
    """Raise ConfigError for a value out of range, so a bad knob fails at start-up."""
    size = env_int("WORKER_BATCH_SIZE", 16, minimum=1, environ=environ)
    wait_ms = env_int("WORKER_BATCH_WAIT_MS", 20, minimum=0, environ=environ)
    fetch_threads = env_int("WORKER_FETCH_THREADS", 8, minimum=1, environ=environ)
    in_flight = env_int("WORKER_BATCHES_IN_FLIGHT", 3, minimum=1, environ=environ)
    if size > MAX_BULK_ITEMS:
        raise ConfigError(
            f"WORKER_BATCH_SIZE must be at most {MAX_BULK_ITEMS} (the site's bulk limit), "
            f"got {size}"
        )
    if wait_ms > MAX_WAIT_MS:
        raise ConfigError(f"WORKER_BATCH_WAIT_MS must be at most {MAX_WAIT_MS}, got {wait_ms}")
    if fetch_threads > MAX_FETCH_THREADS:
        raise ConfigError(
            f"WORKER_FETCH_THREADS must be at most {MAX_FETCH_THREADS}, got {fetch_threads}"
        )
    if in_flight > MAX_IN_FLIGHT:
        raise ConfigError(
            f"WORKER_BATCHES_IN_FLIGHT must be at most {MAX_IN_FLIGHT}, got {in_flight}"
        )
    return BatchSettings(
        size=size, wait_ms=wait_ms, fetch_threads=fetch_threads, in_flight=in_flight
    )
