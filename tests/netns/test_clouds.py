"""Workers in two clouds joining the central site across real network boundaries.

Each cloud is a network namespace behind a veth pair, 80 ms from the centre (a delaying
proxy of the test's own: this kernel has no `tc netem`), reaching Redis over TLS with a
password and the site over HTTP, as docker-compose.worker.yml and the remote-workers
Kubernetes overlay do. Runs as root only (`ip netns`); skipped with the reason elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests

from tests.netns.conftest import (
    FLOWER_AUTH,
    VISIBILITY_TIMEOUT_S,
    Central,
    CloudLink,
    Service,
    wait_until,
    worker_env,
)
from tests.netns.network import link_cut

pytestmark = [pytest.mark.integration, pytest.mark.netns]
FINISHED = ("succeeded", "failed")


def round_trip_s(url: str, tries: int = 5) -> float:
    best = float("inf")
    for _ in range(tries):
        started = time.monotonic()
        requests.get(f"{url}/healthz", timeout=10).raise_for_status()
        best = min(best, time.monotonic() - started)
    return best


def finish_all(central: Central, urls: list[str], timeout_s: float) -> list[dict]:
    def all_finished() -> list[dict] | None:
        bodies = [central.job(url) for url in urls]
        return bodies if all(body["status"] in FINISHED for body in bodies) else None

    return list(wait_until(all_finished, timeout_s, f"{len(urls)} jobs to finish"))


def test_both_clouds_workers_show_in_flower_and_stack_status_with_their_labels(
    central: Central, links: dict[str, CloudLink], cloud_workers: dict[str, Service]
) -> None:
    direct = round_trip_s(central.site_url)
    via_cloud = round_trip_s(links["cloud-a"].site_url)
    print(f"\n/healthz round trip: {direct * 1000:.0f} ms direct, "
          f"{via_cloud * 1000:.0f} ms through cloud A's link")  # fmt: skip
    assert via_cloud - direct > 0.070, "the link to a cloud must add its 80 ms"

    names = {"gpu@cloud-a", "cpu@cloud-b"}

    def flower_workers() -> set[str] | None:
        answer = requests.get(f"{central.flower_url}/api/workers?refresh=1", auth=FLOWER_AUTH,
                              timeout=30)  # fmt: skip
        return names if names <= set(answer.json()) else None

    wait_until(flower_workers, 60, f"{names} in Flower")
    broker_page = requests.get(f"{central.flower_url}/broker", auth=FLOWER_AUTH, timeout=30)
    for queue in (central.env["INFERENCE_QUEUE"], central.env["CPU_QUEUE"]):
        assert queue in broker_page.text

    status = json.loads(central.manage("stack_status", "--json", "--timeout", "5"))
    assert names <= set(status["workers"])
    assert status["workers"]["gpu@cloud-a"]["queues"] == [central.env["INFERENCE_QUEUE"]]
    assert status["workers"]["cpu@cloud-b"]["queues"] == [central.env["CPU_QUEUE"]]


def test_jobs_finish_on_both_clouds(central: Central, cloud_workers: dict[str, Service]) -> None:
    urls = [central.submit(device) for device in ("gpu", "cpu", "gpu", "cpu")]
    bodies = finish_all(central, urls, timeout_s=120)

    assert [body["status"] for body in bodies] == ["succeeded"] * 4
    assert {body["worker"] for body in bodies} == {"gpu@cloud-a", "cpu@cloud-b"}


def test_a_cut_link_mid_batch_loses_no_job_and_the_worker_comes_back_by_itself(
    central: Central, links: dict[str, CloudLink], cloud_workers: dict[str, Service]
) -> None:
    cloud_a = links["cloud-a"].cloud
    batch = [central.submit("gpu") for _ in range(6)]
    wait_until(lambda: any(central.job(url)["status"] in ("running", *FINISHED) for url in batch),
               60, "cloud A to start the batch")  # fmt: skip

    with link_cut(cloud_a):
        cut_at = time.monotonic()
        # Cloud B keeps working while A is unreachable.
        other = [central.submit("cpu") for _ in range(2)]
        assert [b["status"] for b in finish_all(central, other, 60)] == ["succeeded"] * 2
        # Longer than the visibility timeout: the broker gives A's jobs back meanwhile.
        time.sleep(max(0.0, VISIBILITY_TIMEOUT_S + 5 - (time.monotonic() - cut_at)))
    restored_at = time.monotonic()

    bodies = finish_all(central, batch, timeout_s=180)
    recovery_s = time.monotonic() - restored_at
    print(f"\nlink cut for {restored_at - cut_at:.0f} s; the batch of {len(batch)} finished "
          f"{recovery_s:.0f} s after the link came back")  # fmt: skip

    assert [body["status"] for body in bodies] == ["succeeded"] * len(batch)
    assert cloud_workers["cloud-a"].process.poll() is None, "the worker must ride out the cut"
    predictions = central.predictions_per_job()
    for body in bodies:
        assert predictions[body["id"]] == 1, f"job {body['id']} recorded {predictions[body['id']]}x"
    # A job after the cut is served by cloud A again: it reconnected by itself.
    after = finish_all(central, [central.submit("gpu")], timeout_s=60)
    assert after[0]["status"] == "succeeded" and after[0]["worker"] == "gpu@cloud-a"


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ("ca", "certificate"),
        ("password", "refused the password"),
    ],
)
def test_a_worker_with_a_wrong_ca_or_password_refuses_to_start(
    central: Central, links: dict[str, CloudLink], broken: str, expected: str
) -> None:
    link = links["cloud-b"]
    env = worker_env(link, central, WORKER_ROLE="cpu")
    if broken == "ca":
        env["BROKER_TLS_CA_FILE"] = str(central.certs.other_ca)
    else:
        env["CELERY_BROKER_URL"] = link.broker_url.replace(":netns-redis-password@", ":wrong@")
    result = subprocess.run(
        link.cloud.command([sys.executable, "-m", "workers", "--check"]), env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert expected in output, output
    assert "netns-redis-password" not in output, "the password must never be printed"


def test_a_model_promoted_at_the_centre_reaches_both_clouds_in_one_step(
    central: Central, cloud_workers: dict[str, Service]
) -> None:
    central.manage("model_release", "status", "--wait", "60")  # both serve tiny-a
    promoted_at = time.monotonic()
    central.manage("model_release", "promote", "tiny-b")
    central.manage("model_release", "status", "--wait", "120")
    reach_s = time.monotonic() - promoted_at
    print(f"\ntiny-b reached both clouds {reach_s:.1f} s after its promotion "
          "(workers ask every 2 s here, 30 s by default)")  # fmt: skip

    bodies = finish_all(central, [central.submit("gpu"), central.submit("cpu")], 60)
    assert [body["status"] for body in bodies] == ["succeeded"] * 2, bodies
    assert [body["result"]["model_version"] for body in bodies] == ["tiny-b", "tiny-b"]

    central.manage("model_release", "rollback")
    central.manage("model_release", "status", "--wait", "120")
    after = finish_all(central, [central.submit("gpu")], 60)
    assert after[0]["status"] == "succeeded", after
    assert after[0]["result"]["model_version"] == "tiny-a"
