"""A running worker follows the registry: a promotion takes effect at the next job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import poll_until_finished, submit

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


# threads: the batching worker picks the new model up between batches.
@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_worker_switches_model_after_a_promotion_without_restarting(
    site: str, caller: Any, start_worker: Any, tmp_path: Path, pool: str
) -> None:
    from ml.testing import make_tiny_registry

    registry = make_tiny_registry(tmp_path / "models", ("tiny-old", "tiny-new"))
    registry.promote("tiny-old")
    worker = start_worker(
        pool=pool, threads=4 if pool == "threads" else 1, MODEL_REGISTRY_DIR=str(registry.root)
    )

    first = poll_until_finished(caller[0], submit(site, caller)["url"], timeout_s=60)
    registry.promote("tiny-new")
    second = poll_until_finished(caller[0], submit(site, caller)["url"], timeout_s=60)
    registry.rollback()
    third = poll_until_finished(caller[0], submit(site, caller)["url"], timeout_s=60)

    versions = [body["result"]["model_version"] for body in (first, second, third)]
    assert versions == ["tiny-old", "tiny-new", "tiny-old"]
    assert worker.process.poll() is None  # the same worker process served all three
