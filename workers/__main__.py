"""Start a worker from environment variables alone: `python -m workers`.

    WORKER_ROLE=gpu|cpu          gpu (default): one process per GPU; cpu: prefork pool
    WORKER_HOST_LABEL=aws-eu-1   where it runs; the worker is named <role>@<label>
    WORKER_QUEUES=a,b            default: the role's queue (INFERENCE_QUEUE or CPU_QUEUE)
    WORKER_CONCURRENCY=1         processes, each with its own copy of the model (prefork)
    WORKER_POOL=threads|prefork|solo
                                 default threads for gpu, prefork for cpu. threads: one
                                 process batching jobs across tasks, WORKER_BATCH_SIZE x
                                 WORKER_BATCHES_IN_FLIGHT threads (workers.batching);
                                 prefork, solo: one job at a time
    WORKER_BATCH_SIZE=16, WORKER_BATCH_WAIT_MS=20, WORKER_BATCHES_IN_FLIGHT=3
                                 (threads pool: workers.batch_settings)
    CELERY_BROKER_URL, BROKER_TLS_CA_FILE, SITE_URL, WORKER_SECRET, MODEL_REGISTRY_DIR

It checks the broker, the site and the model first (see `workers.preflight`),
then replaces itself with `celery -A workers.app worker ...`. Exit status 2 means
a malformed variable, 1 a failed check. `--check` runs the checks and stops.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from workers.batch_settings import batch_settings
from workers.config import DEVICES, celery_settings, queue_for_device
from workers.env import ConfigError, env_choice, env_int, env_list, env_str
from workers.preflight import Passed, PreflightError, run_checks

POOLS = ("prefork", "solo", "threads")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class WorkerOptions:
    role: str
    host_label: str
    queues: tuple[str, ...]
    concurrency: int
    pool: str
    loglevel: str
    batch_threads: int = 1

    @property
    def pool_size(self) -> int:
        """Celery's -c: threads of the one batching process, or processes of a prefork pool."""
        return self.batch_threads if self.pool == "threads" else self.concurrency

    @property
    def name(self) -> str:
        return f"{self.role}@{self.host_label}"

    def celery_argv(self) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "workers.app", "worker",
            "-I", "workers.control",
            "-n", self.name,
            "-Q", ",".join(self.queues),
            "-P", self.pool,
            "-c", str(self.pool_size),
            "-l", self.loglevel,
        ]  # fmt: skip


def options_from(environ: Mapping[str, str]) -> WorkerOptions:
    role = env_choice("WORKER_ROLE", DEVICES, "gpu", environ)
    label = env_str("WORKER_HOST_LABEL", socket.gethostname(), environ)
    if not _LABEL.match(label):
        raise ConfigError(f"WORKER_HOST_LABEL may hold letters, digits, . _ - only, got {label!r}")
    queues = tuple(env_list("WORKER_QUEUES", environ=environ))
    # A GPU worker is one process per card: batching across tasks is how it fills the card.
    pool = env_choice("WORKER_POOL", POOLS, "threads" if role == "gpu" else "prefork", environ)
    concurrency = env_int("WORKER_CONCURRENCY", 1, minimum=1, environ=environ)
    if role == "gpu" and concurrency > 1:
        raise ConfigError(
            "a GPU worker runs one process per GPU: set WORKER_CONCURRENCY=1 and start one "
            "worker per GPU, each with its own CUDA_VISIBLE_DEVICES and WORKER_HOST_LABEL"
        )
    if pool == "threads" and concurrency > 1:
        raise ConfigError(
            "WORKER_POOL=threads is one process that batches jobs (WORKER_BATCH_SIZE x "
            "WORKER_BATCHES_IN_FLIGHT threads): "
            "set WORKER_CONCURRENCY=1 and start more workers for more processes"
        )
    return WorkerOptions(
        role=role,
        host_label=label,
        queues=queues or (queue_for_device(role, environ),),
        concurrency=concurrency,
        pool=pool,
        loglevel=env_str("WORKER_LOGLEVEL", "INFO", environ),
        batch_threads=batch_settings(environ).threads,
    )


def prepare_environment(environ: MutableMapping[str, str], options: WorkerOptions) -> None:
    """Set what the worker's processes inherit: role, label, and how TensorFlow sees GPUs."""
    environ["WORKER_ROLE"] = options.role
    environ["WORKER_HOST_LABEL"] = options.host_label
    if options.role == "gpu":
        # Memory growth, so TensorFlow does not take the whole card up front.
        environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    else:
        # A CPU worker on a GPU host must leave the cards to the GPU workers.
        environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="run the checks, then exit")
    parser.add_argument("--skip-model-check", action="store_true", help="do not load the model")
    args = parser.parse_args(argv)
    environ = os.environ
    try:
        celery_settings(environ)
        options = options_from(environ)
    except ConfigError as exc:
        say(f"configuration: {exc}")
        return 2
    prepare_environment(environ, options)
    started = time.monotonic()
    try:
        run_checks(environ, model=not args.skip_model_check, report=report)
    except PreflightError as exc:
        say(f"FAILED {exc}")
        return 1
    say(f"all checks passed in {time.monotonic() - started:.1f} s")
    if args.check:
        return 0
    argv_out = options.celery_argv()
    say(f"starting {options.name} on {','.join(options.queues)}: {' '.join(argv_out[1:])}")
    os.execve(sys.executable, argv_out, dict(environ))  # noqa: S606 (argv, no shell)
    return 0  # not reached


def report(passed: Passed) -> None:
    say(f"ok {passed.check}: {passed.detail} ({passed.seconds:.1f} s)")
    if passed.check == "model":
        # Shown by the worker_info control command (workers.control).
        os.environ["WORKER_MODEL_VERSION"] = passed.version


def say(message: str) -> None:
    print(f"[workers] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
