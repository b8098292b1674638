"""How a worker batches jobs across tasks (workers.batching): the two knobs TF Serving and
Triton give their users, read from the environment and checked at start-up.

    WORKER_BATCH_SIZE=16      the most jobs one batch takes (1 to MAX_BULK_ITEMS)
    WORKER_BATCH_WAIT_MS=20   after the first job, how long to wait for more (0 to 10,000)
    WORKER_FETCH_THREADS=8    images fetched from the site in parallel per batch (1 to 64)

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


@dataclass(frozen=True)
class BatchSettings:
    size: int
    wait_ms: int
    fetch_threads: int

    @property
    def wait_s(self) -> float:
        return self.wait_ms / 1000


def batch_settings(environ: Mapping[str, str] = os.environ) -> BatchSettings:
    """Raise ConfigError for a value out of range, so a bad knob fails at start-up."""
    size = env_int("WORKER_BATCH_SIZE", 16, minimum=1, environ=environ)
    wait_ms = env_int("WORKER_BATCH_WAIT_MS", 20, minimum=0, environ=environ)
    fetch_threads = env_int("WORKER_FETCH_THREADS", 8, minimum=1, environ=environ)
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
    return BatchSettings(size=size, wait_ms=wait_ms, fetch_threads=fetch_threads)
