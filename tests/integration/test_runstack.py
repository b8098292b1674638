"""`make run`'s launcher: the whole stack comes up, classifies a scan and stops on Ctrl-C."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from tests.images import jpeg_bytes
from tests.integration.conftest import wait_for
from tests.stack import RunningStack
from workers.config import broker_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(tmp_path: Path) -> RunningStack:
    if not (ROOT / "models" / "ACTIVE").exists():
        pytest.skip("no shipped model in models/ yet")
    env = {"REDIS_URL": broker_url(), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "INFERENCE_QUEUE": f"runstack-{os.getpid()}"}  # fmt: skip
    running = RunningStack(tmp_path / "var", env)
    try:
        running.wait_ready()
    except RuntimeError:
        running.interrupt()
        raise
    return running


def test_the_stack_classifies_a_scan_with_the_shipped_model_and_stops_on_ctrl_c(
    stack: RunningStack,
) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {stack.banner_value('api token')}"
    api = f"{stack.site_url}/api/v1"
    patient = session.post(f"{api}/patients/", json={"external_id": "MRN-1"}, timeout=10).json()
    submitted = session.post(
        f"{api}/scans/", files={"image": ("s.jpg", jpeg_bytes(256), "image/jpeg")},
        data={"patient": patient["id"]}, timeout=30,
    )  # fmt: skip
    assert submitted.status_code == 202, submitted.text

    def finished() -> dict[str, object] | None:
        body = session.get(submitted.json()["job"]["url"], timeout=10).json()
        return body if body["status"] in ("succeeded", "failed") else None

    body = wait_for(finished, 120, "the job to finish")
    active = (ROOT / "models" / "ACTIVE").read_text().strip()
    assert body["status"] == "succeeded", body
    assert body["result"]["model_version"] == active

    assert stack.interrupt() == 0
    with pytest.raises(ProcessLookupError):
        os.killpg(stack.process.pid, 0)  # nothing of the stack is left running
