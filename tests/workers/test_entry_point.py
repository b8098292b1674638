"""`python -m workers`: options from the environment, and fail-fast checks run for real.

Each case runs the entry point as a subprocess with a bad environment and reads
its exit status and its one-line message, as an operator (or an orchestrator) would.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.entry_point import run_entry_point
from webapp.local_redis import free_port, port_is_open, redis_executable
from workers.__main__ import options_from, prepare_environment
from workers.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def password_redis() -> Iterator[str]:
    """A Redis of this module's own that demands a password."""
    port = free_port()
    process = subprocess.Popen(
        [redis_executable(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--requirepass", "right-password"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not port_is_open(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def test_names_the_worker_after_its_role_and_host() -> None:
    options = options_from({"WORKER_ROLE": "cpu", "WORKER_HOST_LABEL": "aws-eu-1"})
    assert options.name == "cpu@aws-eu-1"
    assert options.queues == ("inference-cpu",)
    argv = options.celery_argv()
    assert argv[1:6] == ["-m", "celery", "-A", "workers.app", "worker"]
    assert argv[argv.index("-n") : argv.index("-n") + 2] == ["-n", "cpu@aws-eu-1"]
    assert "workers.control" in argv


def test_a_gpu_worker_is_one_process_on_its_queue_with_memory_growth() -> None:
    env = {"WORKER_HOST_LABEL": "onprem-3", "INFERENCE_QUEUE": "a100"}
    options = options_from(env)
    assert (options.name, options.queues, options.concurrency) == ("gpu@onprem-3", ("a100",), 1)
    prepare_environment(env, options)
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert "CUDA_VISIBLE_DEVICES" not in env  # the operator's choice of card is kept


def test_a_cpu_worker_hides_the_gpus() -> None:
    env = {"WORKER_ROLE": "cpu", "WORKER_QUEUES": "inference-cpu, inference"}
    options = options_from(env)
    assert options.queues == ("inference-cpu", "inference")
    prepare_environment(env, options)
    assert env["CUDA_VISIBLE_DEVICES"] == "-1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKER_ROLE": "tpu"}, "WORKER_ROLE must be one of gpu, cpu"),
        ({"WORKER_ROLE": "gpu", "WORKER_CONCURRENCY": "4"}, "one process per GPU"),
        ({"WORKER_CONCURRENCY": "zero"}, "WORKER_CONCURRENCY must be an integer"),
        ({"WORKER_POOL": "eventlet"}, "WORKER_POOL must be one of"),
        ({"WORKER_HOST_LABEL": "my host@cloud"}, "WORKER_HOST_LABEL may hold"),
    ],
)
def test_refuses_malformed_worker_options(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        options_from(env)


def test_a_malformed_broker_url_exits_2_naming_it() -> None:
    done = run_entry_point(CELERY_BROKER_URL="amqp://guest@rabbit//")
    assert done.returncode == 2
    assert "configuration: the broker URL must start with redis://" in done.stderr


def test_an_unreachable_broker_fails_fast() -> None:
    started = time.monotonic()
    done = run_entry_point(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 1
    assert "FAILED broker: cannot reach redis://127.0.0.1:" in done.stderr
    assert time.monotonic() - started < 20


def test_a_wrong_broker_password_is_named_and_not_printed(password_redis: str) -> None:
    done = run_entry_point(CELERY_BROKER_URL=f"redis://:wrong-password@{password_redis}/0")
    assert done.returncode == 1
    assert "FAILED broker: redis://:***@127.0.0.1" in done.stderr
    assert "refused the password" in done.stderr
    assert "wrong-password" not in done.stderr


def test_a_tls_url_against_a_plain_port_says_so(password_redis: str) -> None:
    done = run_entry_point(CELERY_BROKER_URL=f"rediss://:right-password@{password_redis}/0")
    assert done.returncode == 1
    assert "FAILED broker: cannot reach rediss://:***@" in done.stderr
    assert "TLS" in done.stderr


def test_an_unreachable_site_fails_after_the_broker_passes(password_redis: str) -> None:
    done = run_entry_point(
        CELERY_BROKER_URL=f"redis://:right-password@{password_redis}/0",
        SITE_URL=f"http://127.0.0.1:{free_port()}",
        WORKER_SECRET="secret",
    )
    assert done.returncode == 1
    assert "ok broker: Redis" in done.stderr
    assert "FAILED site: cannot reach http://127.0.0.1:" in done.stderr


def test_a_missing_site_url_is_named(password_redis: str) -> None:
    done = run_entry_point(CELERY_BROKER_URL=f"redis://:right-password@{password_redis}/0")
    assert done.returncode == 1
    assert "FAILED site: SITE_URL must be an http(s) URL" in done.stderr


def test_the_model_version_comes_from_the_checks_version_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from workers.__main__ import report
    from workers.preflight import Passed

    monkeypatch.delenv("WORKER_MODEL_VERSION", raising=False)
    report(Passed("model", "the model loads (a sentence worded any way)", 1.5, "ens-2026"))
    assert os.environ["WORKER_MODEL_VERSION"] == "ens-2026"
    assert "ok model" in capsys.readouterr().err


def test_a_gpu_worker_batches_in_one_process_with_a_thread_per_job_in_flight() -> None:
    options = options_from({"WORKER_BATCH_SIZE": "32", "WORKER_BATCHES_IN_FLIGHT": "2"})
    assert (options.pool, options.concurrency, options.pool_size) == ("threads", 1, 64)
    argv = options.celery_argv()
    assert argv[argv.index("-P") + 1] == "threads"
    assert argv[argv.index("-c") + 1] == "64"


def test_a_cpu_worker_keeps_its_prefork_processes_unless_told_to_batch() -> None:
    options = options_from({"WORKER_ROLE": "cpu", "WORKER_CONCURRENCY": "2"})
    assert (options.pool, options.pool_size) == ("prefork", 2)
    batching = options_from({"WORKER_ROLE": "cpu", "WORKER_POOL": "threads"})
    assert (batching.pool, batching.pool_size) == ("threads", 16 * 3)  # 3 batches in flight


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKER_ROLE": "cpu", "WORKER_POOL": "threads", "WORKER_CONCURRENCY": "2"},
         "start more workers"),
        ({"WORKER_BATCH_SIZE": "0"}, "WORKER_BATCH_SIZE"),
        ({"WORKER_BATCH_WAIT_MS": "soon"}, "WORKER_BATCH_WAIT_MS"),
    ],
)  # fmt: skip
def test_refuses_malformed_batching_options(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        options_from(env)
