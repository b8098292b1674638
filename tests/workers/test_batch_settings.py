from __future__ import annotations

import pytest

from workers.batch_settings import BatchSettings, batch_settings
from workers.contracts import MAX_BULK_ITEMS
from workers.env import ConfigError


def test_defaults() -> None:
    assert batch_settings({}) == BatchSettings(size=16, wait_ms=20, fetch_threads=8, in_flight=3)
    assert batch_settings({}).wait_s == pytest.approx(0.02)
    assert batch_settings({}).threads == 48


def test_values_from_the_environment() -> None:
    environ = {
        "WORKER_BATCH_SIZE": "64",
        "WORKER_BATCH_WAIT_MS": "0",
        "WORKER_FETCH_THREADS": "2",
        "WORKER_BATCHES_IN_FLIGHT": "1",
    }
    expected = BatchSettings(size=64, wait_ms=0, fetch_threads=2, in_flight=1)
    assert batch_settings(environ) == expected
    assert expected.threads == 64


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"WORKER_BATCH_SIZE": "0"}, "WORKER_BATCH_SIZE"),
        ({"WORKER_BATCH_SIZE": "sixteen"}, "WORKER_BATCH_SIZE"),
        ({"WORKER_BATCH_SIZE": str(MAX_BULK_ITEMS + 1)}, f"at most {MAX_BULK_ITEMS}"),
        ({"WORKER_BATCH_WAIT_MS": "-1"}, "WORKER_BATCH_WAIT_MS"),
        ({"WORKER_BATCH_WAIT_MS": "20.5"}, "WORKER_BATCH_WAIT_MS"),
        ({"WORKER_BATCH_WAIT_MS": "10001"}, "at most 10000"),
        ({"WORKER_FETCH_THREADS": "0"}, "WORKER_FETCH_THREADS"),
        ({"WORKER_FETCH_THREADS": "65"}, "at most 64"),
        ({"WORKER_BATCHES_IN_FLIGHT": "0"}, "WORKER_BATCHES_IN_FLIGHT"),
        ({"WORKER_BATCHES_IN_FLIGHT": "9"}, "at most 8"),
    ],
)
def test_bad_values_fail_at_start_up(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        batch_settings(environ)
