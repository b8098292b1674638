"""Unit tests of batch assembly and of one batch's decisions: the site and the model are mocked."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any
from unittest import mock

import numpy as np
import pytest
from celery.exceptions import Retry

from ml.errors import InvalidImageError, NotBrainMRIError
from ml.inference import Classification, Explanation, InferenceEngine
from ml.preprocessing import Geometry
from workers import tasks
from workers.batching import Batcher, BatchRunner, Ticket
from workers.contracts import FailureCode, FailureReport, PredictionResult
from workers.web_client import SiteClient, SiteError, StartAnswer

IDS = [f"5b0c43aa-1111-4222-8333-44445555000{i}" for i in range(6)]
PROBABILITIES = {"glioma": 0.1, "meningioma": 0.1, "no_tumor": 0.1, "pituitary": 0.7}
EXPLANATION = Explanation(
    np.zeros((4, 4), np.float32), Geometry((4, 4), (4, 4), (0, 0, 4, 4), 4, (0, 0)), b"\x89PNG"
)


def classified(image: bytes) -> tuple[Classification, Explanation]:
    label = image.decode()  # the fake images name the label the fake model gives them
    return Classification(label, PROBABILITIES, "m-3", 2.0, needs_review=False), EXPLANATION


@pytest.fixture
def site() -> Any:
    site = mock.create_autospec(SiteClient, instance=True)
    site.start_many.side_effect = lambda ids, worker: {
        job_id: StartAnswer(proceed=True, attempt=1) for job_id in ids
    }
    site.fetch_image.return_value = b"pituitary"
    site.post_outcomes.side_effect = lambda results, failures: {
        item.job_id: True for item in [*results, *failures]
    }
    return site


@pytest.fixture
def engine() -> Any:
    engine = mock.create_autospec(InferenceEngine, instance=True)
    engine.explain_many.side_effect = lambda images: [classified(image) for image in images]
    return engine


@pytest.fixture
def runner(site: Any, engine: Any) -> BatchRunner:
    return BatchRunner(site, lambda: engine, "cpu@a", fetch_threads=4)


def tickets(*job_ids: str, version: int = 2) -> list[Ticket]:
    return [Ticket(job_id, version) for job_id in job_ids]


def outcomes(batch: list[Ticket]) -> list[object]:
    return [t.future.exception(timeout=0) or t.future.result(timeout=0) for t in batch]


def posted(site: Any) -> tuple[list[PredictionResult], list[FailureReport]]:
    site.post_outcomes.assert_called_once()
    results, failures = site.post_outcomes.call_args.args
    return list(results), list(failures)


# Batch assembly


def test_a_batch_takes_at_most_the_batch_size() -> None:
    batcher = Batcher(mock.Mock(), size=3, wait_s=0)
    for job_id in IDS[:5]:
        batcher._queue.put(Ticket(job_id, 2))
    assert [t.job_id for t in batcher.collect()] == IDS[:3]
    assert [t.job_id for t in batcher.collect()] == IDS[3:5]
    assert batcher.collect(block=False) == []


def test_a_batch_waits_for_more_at_most_the_wait_after_the_first_job() -> None:
    batcher = Batcher(mock.Mock(), size=10, wait_s=0.3)
    batcher._queue.put(Ticket(IDS[0], 2))
    threading.Timer(0.1, lambda: batcher._queue.put(Ticket(IDS[1], 2))).start()
    threading.Timer(0.6, lambda: batcher._queue.put(Ticket(IDS[2], 2))).start()
    started = time.monotonic()
    batch = batcher.collect()
    waited = time.monotonic() - started
    assert [t.job_id for t in batch] == IDS[:2]  # the late one waits for the next batch
    assert 0.25 <= waited < 0.55
    assert [t.job_id for t in batcher.collect()] == [IDS[2]]


def test_a_full_batch_does_not_wait() -> None:
    batcher = Batcher(mock.Mock(), size=2, wait_s=5)
    batcher._queue.put(Ticket(IDS[0], 2))
    batcher._queue.put(Ticket(IDS[1], 2))
    started = time.monotonic()
    assert len(batcher.collect()) == 2
    assert time.monotonic() - started < 0.5


def test_one_job_alone_runs_within_the_wait(runner: BatchRunner, site: Any) -> None:
    batcher = Batcher(runner, size=16, wait_s=0.05)
    started = time.monotonic()
    ticket = batcher.submit(IDS[0], 2)
    assert ticket.future.result(timeout=5) == "succeeded"
    assert time.monotonic() - started < 0.05 + 0.5
    site.start_many.assert_called_once_with([IDS[0]], "cpu@a")


def test_jobs_submitted_together_run_as_one_batch(
    runner: BatchRunner, site: Any, engine: Any
) -> None:
    batcher = Batcher(runner, size=4, wait_s=0.2)
    submitted = [batcher.submit(job_id, 2) for job_id in IDS[:4]]
    assert [t.future.result(timeout=5) for t in submitted] == ["succeeded"] * 4
    site.start_many.assert_called_once_with(IDS[:4], "cpu@a")
    engine.explain_many.assert_called_once_with([b"pituitary"] * 4)
    assert [r.job_id for r in posted(site)[0]] == IDS[:4]


def test_a_cancelled_job_is_left_out_of_the_batch() -> None:
    batcher = Batcher(mock.Mock(), size=4, wait_s=0)
    first, second = Ticket(IDS[0], 2), Ticket(IDS[1], 2)
    first.future.cancel()  # its task gave up waiting
    batcher._queue.put(first)
    batcher._queue.put(second)
    assert batcher.collect() == [second]


def test_a_batch_that_raises_fails_every_job_and_leaves_none_waiting() -> None:
    batch = tickets(*IDS[:3])
    Batcher(mock.Mock(side_effect=MemoryError("out of memory")), 4, 0).run_now(batch)
    assert all(isinstance(o, MemoryError) for o in outcomes(batch))


def test_a_batch_that_forgets_a_job_fails_it_rather_than_leave_it_waiting() -> None:
    batch = tickets(*IDS[:2])
    Batcher(lambda b: b[0].future.set_result("succeeded"), 4, 0).run_now(batch)
    assert outcomes(batch)[0] == "succeeded"
    assert isinstance(outcomes(batch)[1], RuntimeError)


@pytest.mark.parametrize(("size", "wait_s", "in_flight"), [(0, 0.0, 1), (1, -1.0, 1), (1, 0, 0)])
def test_a_batcher_refuses_impossible_limits(size: int, wait_s: float, in_flight: int) -> None:
    with pytest.raises(ValueError, match="size >= 1"):
        Batcher(mock.Mock(), size, wait_s, in_flight=in_flight)


def _gated_batches(gate: threading.Event, started: list[list[str]]) -> Any:
    """A batch runner that records each batch's jobs, then waits for `gate` to finish them."""

    def run(batch: list[Ticket]) -> None:
        started.append([t.job_id for t in batch])
        gate.wait(5)
        for ticket in batch:
            ticket.future.set_result("succeeded")

    return run


def _wait_until(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_batches_in_flight_run_at_once_and_no_more() -> None:
    gate, started = threading.Event(), []
    batcher = Batcher(_gated_batches(gate, started), size=2, wait_s=0, in_flight=2)
    submitted = [batcher.submit(job_id, 2) for job_id in IDS[:6]]
    _wait_until(lambda: len(started) == 2)  # two batches run while neither has finished
    time.sleep(0.2)
    assert len(started) == 2  # the third waits for a free slot
    gate.set()
    assert [t.future.result(timeout=5) for t in submitted] == ["succeeded"] * 6
    assert sorted(job for batch in started for job in batch) == sorted(IDS[:6])
    assert all(len(batch) <= 2 for batch in started)


def test_jobs_that_arrive_while_every_slot_is_busy_fill_the_next_batch() -> None:
    gate, started = threading.Event(), []
    batcher = Batcher(_gated_batches(gate, started), size=4, wait_s=0, in_flight=1)
    first = batcher.submit(IDS[0], 2)
    _wait_until(lambda: len(started) == 1)
    later = [batcher.submit(job_id, 2) for job_id in IDS[1:5]]
    gate.set()
    assert [t.future.result(timeout=5) for t in [first, *later]] == ["succeeded"] * 5
    assert started == [[IDS[0]], IDS[1:5]]


def test_jobs_of_running_batches_do_not_keep_the_next_one_waiting() -> None:
    """`held` counts the jobs in running batches too; the next batch must not wait for them."""
    gate, started = threading.Event(), []
    held = [0]
    batcher = Batcher(
        _gated_batches(gate, started), 16, wait_s=5, held=lambda: held[0], in_flight=2
    )
    held[0] = 1
    first = batcher.submit(IDS[0], 2)
    _wait_until(lambda: len(started) == 1)
    held[0] = 2
    began = time.monotonic()
    second = batcher.submit(IDS[1], 2)
    _wait_until(lambda: len(started) == 2)
    assert time.monotonic() - began < 1.0  # not the 5 s wait
    gate.set()
    assert [first.future.result(timeout=5), second.future.result(timeout=5)] == ["succeeded"] * 2


# One batch


def test_each_job_gets_its_own_result(runner: BatchRunner, site: Any, engine: Any) -> None:
    site.fetch_image.side_effect = lambda job_id: {IDS[0]: b"glioma", IDS[1]: b"no_tumor"}[job_id]
    batch = tickets(IDS[0], IDS[1])
    runner(batch)
    assert outcomes(batch) == ["succeeded", "succeeded"]
    results, failures = posted(site)
    assert [(r.job_id, r.label, r.worker, r.heatmap_png) for r in results] == [
        (IDS[0], "glioma", "cpu@a", b"\x89PNG"),
        (IDS[1], "no_tumor", "cpu@a", b"\x89PNG"),
    ]
    assert failures == []


def test_one_bad_image_fails_only_its_own_job(runner: BatchRunner, site: Any, engine: Any) -> None:
    def explain_many(images: Sequence[bytes]) -> list[object]:
        return [InvalidImageError("truncated or corrupt image") if image == b"bad" else
                NotBrainMRIError("a photograph") if image == b"photo" else classified(image)
                for image in images]  # fmt: skip

    engine.explain_many.side_effect = explain_many
    images = {IDS[0]: b"glioma", IDS[1]: b"bad", IDS[2]: b"photo", IDS[3]: b"pituitary"}
    site.fetch_image.side_effect = images.__getitem__
    batch = tickets(*IDS[:4])
    runner(batch)
    assert outcomes(batch) == ["succeeded", "failed", "not a brain MRI", "succeeded"]
    results, failures = posted(site)
    assert [r.job_id for r in results] == [IDS[0], IDS[3]]
    assert failures == [
        FailureReport(IDS[1], FailureCode.INVALID_IMAGE,
                      "The image cannot be classified: truncated or corrupt image", "cpu@a"),
        FailureReport(IDS[2], FailureCode.NOT_BRAIN_MRI, "a photograph", "cpu@a"),
    ]  # fmt: skip


def test_a_result_the_site_refuses_does_not_block_the_others(
    runner: BatchRunner, site: Any
) -> None:
    refusal = SiteError("outcome: label must be the most probable class", permanent=True)
    site.post_outcomes.side_effect = lambda results, failures: {
        IDS[0]: True, IDS[1]: refusal, IDS[2]: False  # False: another worker recorded it first
    }  # fmt: skip
    batch = tickets(*IDS[:3])
    runner(batch)
    assert outcomes(batch) == ["succeeded", refusal, "succeeded"]
    with mock.patch.object(tasks, "site_client", return_value=site):
        assert tasks.refused_or_retry(IDS[1], refusal) == "refused"


def test_a_site_that_cannot_be_reached_to_start_makes_every_job_retry(
    runner: BatchRunner, site: Any, engine: Any
) -> None:
    down = SiteError("connection refused", permanent=False)
    site.start_many.side_effect = down
    batch = tickets(*IDS[:3])
    runner(batch)
    assert outcomes(batch) == [down] * 3
    engine.explain_many.assert_not_called()
    site.post_outcomes.assert_not_called()


def test_a_failed_download_retries_that_job_only(
    runner: BatchRunner, site: Any, engine: Any
) -> None:
    stalled = SiteError("read timed out", permanent=False)

    def fetch(job_id: str) -> bytes:
        if job_id == IDS[1]:
            raise stalled
        return b"glioma"

    site.fetch_image.side_effect = fetch
    batch = tickets(*IDS[:3])
    runner(batch)
    assert outcomes(batch) == ["succeeded", stalled, "succeeded"]
    engine.explain_many.assert_called_once_with([b"glioma", b"glioma"])


def test_a_failed_post_makes_its_jobs_retry(runner: BatchRunner, site: Any) -> None:
    down = SiteError("HTTP 503", permanent=False, status_code=503)
    site.post_outcomes.side_effect = down
    batch = tickets(*IDS[:2])
    runner(batch)
    assert outcomes(batch) == [down, down]


def test_start_answers_per_job(runner: BatchRunner, site: Any, engine: Any) -> None:
    unknown = SiteError("start: no such job", permanent=True, status_code=404)
    site.start_many.side_effect = lambda ids, worker: {
        IDS[0]: StartAnswer(proceed=False, attempt=0), IDS[1]: unknown,
        IDS[2]: StartAnswer(proceed=True, attempt=2),
    }  # fmt: skip
    batch = tickets(*IDS[:3])
    runner(batch)
    assert outcomes(batch) == ["already finished", unknown, "succeeded"]
    site.fetch_image.assert_called_once_with(IDS[2])


def test_a_job_queued_twice_in_one_batch_runs_once(
    runner: BatchRunner, site: Any, engine: Any
) -> None:
    batch = tickets(IDS[0], IDS[0], IDS[1])
    runner(batch)
    assert outcomes(batch) == ["succeeded"] * 3
    site.start_many.assert_called_once_with([IDS[0], IDS[1]], "cpu@a")
    assert [r.job_id for r in posted(site)[0]] == [IDS[0], IDS[1]]


def test_a_message_of_another_contract_version_fails_its_job(
    runner: BatchRunner, site: Any
) -> None:
    batch = [Ticket(IDS[0], 7), Ticket(IDS[1], 2)]
    runner(batch)
    assert outcomes(batch) == ["failed", "succeeded"]
    site.start_many.assert_called_once_with([IDS[1]], "cpu@a")
    _, failures = posted(site)
    assert failures[0].failure_code == FailureCode.CONTRACT
    assert "contract version 7" in failures[0].reason


def test_the_engine_is_asked_for_once_per_batch_so_a_promoted_model_is_used_next(
    site: Any, engine: Any
) -> None:
    current = mock.Mock(return_value=engine)
    runner = BatchRunner(site, current, "cpu@a")
    runner(tickets(IDS[0]))
    runner(tickets(IDS[1], IDS[2]))
    assert current.call_count == 2


# The task, waiting on its ticket


@pytest.fixture
def short_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(tasks.predict_scan.app.conf, "task_soft_time_limit", 0.3)
    yield


def run_task(batcher: Batcher, site: Any) -> str:
    with (
        mock.patch.object(tasks, "_batcher", batcher),
        mock.patch.object(tasks, "site_client", return_value=site),
        mock.patch.object(tasks.predict_scan, "retry", side_effect=Retry()) as retry,
    ):
        try:
            return str(tasks.predict_scan.run(job_id=IDS[0], contract_version=2))
        except Retry:
            raise RetryAsked(retry.call_args.kwargs["exc"]) from None


class RetryAsked(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def test_the_task_returns_its_jobs_outcome(runner: BatchRunner, site: Any) -> None:
    assert run_task(Batcher(runner, 4, 0), site) == "succeeded"


def test_the_task_retries_a_transient_site_error(runner: BatchRunner, site: Any) -> None:
    site.start_many.side_effect = SiteError("connection refused", permanent=False)
    with pytest.raises(RetryAsked) as asked:
        run_task(Batcher(runner, 4, 0), site)
    assert asked.value.cause is site.start_many.side_effect


def test_a_job_over_its_time_in_the_model_fails_with_timeout(
    runner: BatchRunner, site: Any, engine: Any, short_limit: None
) -> None:
    release = threading.Event()
    engine.explain_many.side_effect = lambda images: release.wait(5) and []
    try:
        assert run_task(Batcher(runner, 4, 0), site) == "failed"
    finally:
        release.set()
    report = site.post_failure.call_args.args[0]
    assert (report.job_id, report.failure_code) == (IDS[0], FailureCode.TIMEOUT)


def test_a_job_over_its_time_waiting_for_the_site_is_retried(
    runner: BatchRunner, site: Any, short_limit: None
) -> None:
    release = threading.Event()
    site.fetch_image.side_effect = lambda job_id: release.wait(5) and b"glioma"
    try:
        with pytest.raises(RetryAsked) as asked:
            run_task(Batcher(runner, 4, 0), site)
    finally:
        release.set()
    assert isinstance(asked.value.cause, SiteError) and not asked.value.cause.permanent
    site.post_failure.assert_not_called()


def test_a_job_no_batch_took_in_time_is_retried_and_never_runs(
    site: Any, short_limit: None
) -> None:
    busy = threading.Event()
    batcher = Batcher(lambda batch: busy.wait(5), size=1, wait_s=0)
    blocker = batcher.submit(IDS[5], 2)  # occupies the collector
    try:
        with pytest.raises(RetryAsked) as asked:
            run_task(batcher, site)
        assert isinstance(asked.value.cause, tasks.WorkerBusy)
    finally:
        busy.set()
    blocker.future.exception(timeout=5)
    assert batcher.collect(block=False) == []  # the cancelled ticket is skipped
    site.post_failure.assert_not_called()


def test_a_lone_job_the_worker_holds_waits_for_nothing() -> None:
    batcher = Batcher(mock.Mock(), size=16, wait_s=5, held=lambda: 1)
    batcher._queue.put(Ticket(IDS[0], 2))
    started = time.monotonic()
    assert len(batcher.collect()) == 1
    assert time.monotonic() - started < 0.5


def test_the_batch_waits_for_jobs_the_worker_holds_but_has_not_handed_over_yet() -> None:
    held = [3]
    batcher = Batcher(mock.Mock(), size=16, wait_s=5, held=lambda: held[0])
    batcher._queue.put(Ticket(IDS[0], 2))
    threading.Timer(0.1, lambda: batcher._queue.put(Ticket(IDS[1], 2))).start()
    threading.Timer(0.2, lambda: batcher._queue.put(Ticket(IDS[2], 2))).start()
    started = time.monotonic()
    assert [t.job_id for t in batcher.collect()] == IDS[:3]
    assert 0.15 < time.monotonic() - started < 1.0  # not the whole 5 s wait


def test_jobs_held_counts_the_workers_reserved_messages() -> None:
    from celery.worker import state

    request = mock.Mock()
    state.task_reserved(request)
    try:
        assert tasks.jobs_held() >= 1
    finally:
        state.task_ready(request)
