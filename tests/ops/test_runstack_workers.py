"""How `make run`'s launcher sets up its local workers (webapp/runstack.py), not started."""

from __future__ import annotations

from unittest import mock

import pytest

from webapp.runstack import local_worker_pool, model_threads


@pytest.mark.parametrize(
    ("cores", "processes", "threads"), [(2, 1, 2), (2, 2, 1), (16, 3, 5), (1, 4, 1)]
)
def test_the_workers_share_the_cores_out_for_their_models(
    cores: int, processes: int, threads: int
) -> None:
    with mock.patch("os.cpu_count", return_value=cores):
        assert model_threads(processes) == threads


def test_a_batching_worker_gets_a_thread_per_job_in_flight() -> None:
    env = {"WORKER_BATCH_SIZE": "8", "WORKER_BATCHES_IN_FLIGHT": "2"}
    assert local_worker_pool(env) == ("threads", 16)
    assert local_worker_pool({"WORKER_POOL": "prefork", "WORKER_CONCURRENCY": "3"}) == (
        "prefork",
        3,
    )
