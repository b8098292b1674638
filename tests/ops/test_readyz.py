"""/healthz and /readyz with each dependency taken down in turn.

Each probe runs in a fresh process configured from the environment, as a
deployment is: its own Redis (started, then stopped), a real worker process,
a SQLite file, or a PostgreSQL URL on a port where nothing listens.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.ops.conftest import probe_readyz
from webapp.local_redis import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def deployment(own_redis: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    return {
        "REDIS_URL": own_redis["url"],
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "INFERENCE_QUEUE": f"ready-{uuid.uuid4().hex[:8]}",
        "READYZ_WORKER_TIMEOUT": "1.0",
    }


def test_healthz_answers_without_touching_the_database() -> None:
    # No `db` fixture: pytest-django fails any query, so this proves none is made.
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_ready_when_database_broker_and_a_worker_for_the_default_queue_are_up(
    deployment: dict[str, str], bare_worker: Any
) -> None:
    name = bare_worker(deployment["REDIS_URL"], deployment["INFERENCE_QUEUE"], "gpu@ready-test")
    status, body = probe_readyz(**deployment)
    assert status == 200, body
    assert body["status"] == "ready" and body["failed"] == []
    assert body["checks"]["workers"]["detail"]["workers"] == [name]


def test_a_worker_on_another_queue_does_not_count(
    deployment: dict[str, str], bare_worker: Any
) -> None:
    bare_worker(deployment["REDIS_URL"], "some-other-queue", "cpu@elsewhere")
    status, body = probe_readyz(**deployment)
    assert status == 503
    assert body["failed"] == ["workers"]
    assert deployment["INFERENCE_QUEUE"] in body["checks"]["workers"]["error"]
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]


def test_names_the_broker_when_redis_is_stopped(
    deployment: dict[str, str], own_redis: dict[str, Any]
) -> None:
    own_redis["process"].terminate()
    own_redis["process"].wait(timeout=10)
    status, body = probe_readyz(**deployment)
    assert status == 503
    assert body["failed"] == ["broker", "workers"]
    assert "Connection refused" in body["checks"]["broker"]["error"]
    assert body["checks"]["workers"]["error"] == "not checked: the broker is down"
    assert body["checks"]["database"]["ok"]


def test_names_the_database_when_it_is_unreachable(
    deployment: dict[str, str], bare_worker: Any
) -> None:
    bare_worker(deployment["REDIS_URL"], deployment["INFERENCE_QUEUE"], "gpu@db-test")
    dead = f"postgres://postgres:secret-pw@127.0.0.1:{free_port()}/mri"
    status, body = probe_readyz(**{**deployment, "DATABASE_URL": dead})
    assert status == 503
    assert body["failed"] == ["database"]
    assert "OperationalError" in body["checks"]["database"]["error"]
    assert "secret-pw" not in str(body)


def test_workers_can_be_left_out_of_readiness(deployment: dict[str, str]) -> None:
    status, body = probe_readyz(**deployment, READYZ_REQUIRE_WORKER="false")
    assert status == 200
    assert body["failed"] == ["workers"]  # still reported, no longer required
