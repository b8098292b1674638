"""A remote-control command that tells operators what a worker runs.

Loaded into the worker with `celery worker -I workers.control` (`python -m workers`
and `make run` do this). It answers from the Celery parent process, so it must
not import TensorFlow: it reads the registry's ACTIVE pointer, one small file,
which is the version every child switches to before its next task.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery.worker.control import inspect_command


@inspect_command(name="worker_info")
def worker_info(state: Any, **kwargs: Any) -> dict[str, Any]:
    """Return the worker's role, host label, queues and active model version."""
    task_consumer = state.consumer.task_consumer
    queues = [queue.name for queue in task_consumer.queues] if task_consumer else []
    return {
        "role": os.environ.get("WORKER_ROLE", ""),
        "host_label": os.environ.get("WORKER_HOST_LABEL", ""),
        "queues": queues,
        "model_version": active_model_version(),
        "model_version_at_start": os.environ.get("WORKER_MODEL_VERSION", ""),
        "model_sync": model_sync_state(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        # Must stay False for a prefork pool: TensorFlow is not fork-safe. A threads pool
        # (the batching worker) never forks and loads the model here: True is expected.
        "tensorflow_in_parent": "tensorflow" in sys.modules,
    }


def active_model_version() -> str:
    try:
        from workers import model_loader

        return str(model_loader.registry().active_version())
    except Exception as exc:  # an operator tool: report, never crash the worker
        return f"unknown ({type(exc).__name__}: {exc})"


def model_sync_state() -> dict[str, Any] | None:
    """What the site serves and why this worker differs, when it follows the site."""
    from workers import model_loader
    from workers.model_sync import last_state

    return last_state(model_loader.registry())
