"""Faults the stack must survive, on real processes: no job lost, none recorded twice, and
/healthz answering in under a second throughout (except while the site itself is dead).

Each test adds its row to the table printed at the end of the run (tests/chaos/conftest.py).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.chaos.conftest import FAULT_JOBS, LOAD
from tests.chaos.harness import ChaosStack, Row, Scenario, paused

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.integration]


def assert_kept_every_job(row: Row) -> None:
    assert row.submitted > 0, row
    assert row.lost == 0, row
    assert row.duplicated == 0, row


def assert_stayed_responsive(row: Row) -> None:
    assert row.responsive, row.responsive_text()


def started_running(scenario: Scenario) -> bool:
    """Whether a worker has started a job and others still wait: the moment to strike."""
    jobs = scenario.jobs()
    started = any(attempts > 0 for _, _, attempts, _ in jobs)
    return started and any(status in ("queued", "running") for _, status, *_ in jobs)


def kill_service(chaos: ChaosStack, scenario: Scenario, name: str) -> None:
    """SIGKILL every process of a `make run` service and wait for the launcher's restart."""
    killed = chaos.stack.service_pids()[name]
    os.killpg(killed, signal.SIGKILL)
    scenario.repaired()  # `make run` restarts it; recovery is counted from the kill
    restarted = lambda: chaos.stack.service_pids()[name] != killed  # noqa: E731
    scenario.wait_for(restarted, 60, f"make run to restart {name}")


def batch_in_flight(scenario: Scenario) -> bool:
    """Whether several jobs run at once (a batch the worker took) and others still wait."""
    jobs = scenario.jobs()
    running = sum(1 for _, status, *_ in jobs if status == "running")
    return running >= 2 and any(status in ("queued", "running") for _, status, *_ in jobs)


def test_the_worker_process_killed_mid_batch(chaos: ChaosStack, record: list[Row]) -> None:
    # The batching worker is one process (threads pool): there is no pool child to kill, as
    # there was with prefork. Its process dies with a whole batch started and unanswered;
    # `make run` restarts it and the broker hands every unacknowledged message back.
    scenario = Scenario(chaos, "worker SIGKILL mid-batch (the one batching process)")
    scenario.submit(FAULT_JOBS)
    scenario.wait_for(lambda: batch_in_flight(scenario), 60, "a batch of jobs to start")
    kill_service(chaos, scenario, "worker")
    record.append(row := scenario.finish())
    assert_kept_every_job(row)
    assert_stayed_responsive(row)


def test_the_whole_worker_killed_mid_task(chaos: ChaosStack, record: list[Row]) -> None:
    scenario = Scenario(chaos, "whole worker SIGKILL (restarted by make run)")
    scenario.submit(FAULT_JOBS)
    scenario.wait_for(lambda: started_running(scenario), 60, "a job to start")
    kill_service(chaos, scenario, "worker")
    record.append(row := scenario.finish())
    assert_kept_every_job(row)
    assert_stayed_responsive(row)


def test_redis_stopped_and_started_again(chaos: ChaosStack, record: list[Row]) -> None:
    scenario = Scenario(chaos, "Redis stopped (SIGTERM), started again with its data")
    scenario.submit(FAULT_JOBS // 2)
    chaos.redis.stop()
    scenario.submit(FAULT_JOBS - FAULT_JOBS // 2)
    time.sleep(3)
    chaos.redis.start()
    scenario.repaired()
    record.append(row := scenario.finish())
    assert_kept_every_job(row)
    assert_stayed_responsive(row)
    assert scenario.awaiting_dispatch > 0, "a submit during the outage must say it waits"


def test_redis_frozen(chaos: ChaosStack, record: list[Row]) -> None:
    scenario = Scenario(chaos, "Redis frozen (SIGSTOP for 8 s)")
    scenario.submit(FAULT_JOBS // 2)
    chaos.redis.freeze()
    frozen_at = time.monotonic()
    try:
        scenario.submit(FAULT_JOBS - FAULT_JOBS // 2)
        time.sleep(max(0.0, 8 - (time.monotonic() - frozen_at)))
    finally:
        chaos.redis.thaw()
    scenario.repaired()
    record.append(row := scenario.finish())
    assert_kept_every_job(row)
    assert_stayed_responsive(row)
    assert row.refused == 0, "a frozen broker must not cost a submission"


def test_redis_data_lost(chaos: ChaosStack, record: list[Row]) -> None:
    scenario = Scenario(chaos, "Redis data lost (SIGKILL, restarted empty)")
    with paused(chaos.worker_group()):  # so the messages are still in Redis when it goes
        scenario.submit(FAULT_JOBS)
        chaos.redis.wipe()
        chaos.redis.start()
    scenario.repaired()
    record.append(row := scenario.finish())
    assert_kept_every_job(row)
    assert_stayed_responsive(row)


def test_the_site_killed_while_workers_post_results(chaos: ChaosStack, record: list[Row]) -> None:
    scenario = Scenario(chaos, "site SIGKILL during post-back (restarted by make run)")
    scenario.submit(FAULT_JOBS)
    scenario.wait_for(
        lambda: any(status == "succeeded" for _, status, *_ in scenario.jobs()),
        60,
        "the first result to be posted",
    )
    kill_service(chaos, scenario, "web")
    record.append(row := scenario.finish())
    row.notes.append("/healthz down while the site was dead, by design")
    assert_kept_every_job(row)
    assert row.healthz_down_s < 30, row.responsive_text()


def test_the_database_cut(chaos: ChaosStack, record: list[Row]) -> None:
    if chaos.db.proxy is None:
        pytest.skip("needs PostgreSQL (DATABASE_URL) to put a proxy of ours in front of")
    scenario = Scenario(chaos, "database cut for 6 s (connections reset, refused)")
    scenario.submit(FAULT_JOBS // 2)
    chaos.db.proxy.cut()
    try:
        scenario.submit(FAULT_JOBS - FAULT_JOBS // 2)
        time.sleep(6)
    finally:
        chaos.db.proxy.restore()
    scenario.repaired()
    record.append(row := scenario.finish())
    assert_kept_every_job(row)
    assert_stayed_responsive(row)
    assert row.refused > 0, "a submit without the database must be refused, not accepted"


def test_a_load_of_submissions(chaos: ChaosStack, record: list[Row]) -> None:
    scenario = Scenario(chaos, f"load: {LOAD} submissions, 8 at a time")
    started = time.monotonic()
    scenario.submit(LOAD, threads=8)
    submitted_in = time.monotonic() - started
    scenario.repaired_at = started
    record.append(row := scenario.finish(timeout_s=600))
    total = time.monotonic() - started
    row.notes.append(f"submitted in {submitted_in:.0f} s, {row.finished / total:.1f} jobs/s")
    assert_kept_every_job(row)
    assert row.refused == 0
    assert_stayed_responsive(row)
