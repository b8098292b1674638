"""Batch jobs across tasks inside one worker process (the threads pool).

Every job is still its own broker message and its own task, so Flower, redelivery and
the site's sweeper keep working per job. Each task's thread hands its job to the
process's `Batcher` and waits on a future. One collector thread takes up to `size` jobs,
waiting at most `wait_s` after the first for more (with one job in the queue it runs
within the wait), and runs them as one batch (`BatchRunner`), up to `in_flight` batches at
once: one request to start them all, their images fetched in parallel, one `explain_many`
call (one forward pass that also yields the Grad-CAM maps), one request to post every
outcome. Then each future gets its own job's
outcome and each task returns, so its message is acknowledged only then (acks_late): a
worker killed mid-batch loses no job, the broker hands every message back.

An item's failure is its own: a bad image fails its job, a result the site refuses
(4xx) is that job's "refused", a transient site error makes those jobs' tasks retry.
Nothing here imports Celery or TensorFlow: the site client and the engine come in as
arguments, so the unit tests drive it with fakes.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ml.errors import InvalidImageError, NotBrainMRIError
from workers.contracts import (
    ContractError,
    FailureCode,
    FailureReport,
    PredictionRequest,
    PredictionResult,
)
from workers.web_client import SiteError, StartAnswer

log = logging.getLogger(__name__)


class Stage(StrEnum):
    """Where a job is, so a task that runs out of time knows what to report."""

    QUEUED = "queued"  # waiting for the collector (cancelled if its task gives up)
    SITE = "site"  # starting, fetching or posting: a stall here is no answer, retry
    MODEL = "model"  # in the model: out of time here is the job's answer (TIMEOUT)


@dataclass(eq=False)
class Ticket:
    """One job handed to the batcher; `future` gets the outcome for the task's log, or an error."""

    job_id: str
    contract_version: int
    future: Future[str] = field(default_factory=Future)
    stage: Stage = Stage.QUEUED


class BulkSite(Protocol):
    """What a batch needs from the site (`workers.web_client.SiteClient`)."""

    def start_many(
        self, job_ids: Sequence[str], worker: str
    ) -> dict[str, StartAnswer | SiteError]: ...

    def fetch_image(self, job_id: str) -> bytes: ...

    def post_outcomes(
        self, results: Sequence[PredictionResult], failures: Sequence[FailureReport]
    ) -> dict[str, bool | SiteError]: ...


class Explainer(Protocol):
    """What a batch needs from the model (`ml.inference.InferenceEngine`)."""

    def explain_many(self, images: Sequence[bytes]) -> list[Any]: ...


# While waiting for more jobs, how often to ask whether any are still on their way.
POLL_S = 0.002


class Batcher:
    """Collect tickets into batches of at most `size`, waiting at most `wait_s` for more.

    `held`, when given, says how many jobs the worker holds (messages it has received and
    not finished). Once every one of them is in the batch, more waiting only adds latency,
    so the batch runs at once: a lone job waits for nothing, while under load the jobs
    that arrive during a batch make the next one fuller.

    Up to `in_flight` batches run at once, each on its own thread: a batch spends much of
    its time waiting on the site (starting its jobs, fetching images, posting outcomes),
    and meanwhile the next one can be in the model. The collector gathers the next batch
    only once a slot is free, so jobs that arrive while every slot is busy fill it.

    `run_batch` must resolve every ticket's future; any it leaves unresolved (or all of
    them, if it raises) get the error, so no task ever waits forever.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Ticket]], None],
        size: int,
        wait_s: float,
        held: Callable[[], int] | None = None,
        in_flight: int = 1,
    ) -> None:
        if size < 1 or wait_s < 0 or in_flight < 1:
            raise ValueError(
                f"a batch needs size >= 1, wait >= 0 and in_flight >= 1, "
                f"got {size}, {wait_s}, {in_flight}"
            )
        self.run_batch = run_batch
        self.size = size
        self.wait_s = wait_s
        self.held = held
        self.in_flight = in_flight
        self._queue: queue.Queue[Ticket] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._slots = threading.Semaphore(in_flight)
        self._running_jobs = 0  # tickets in batches that run now, for `_all_held_in`

    def submit(self, job_id: str, contract_version: int) -> Ticket:
        ticket = Ticket(job_id, contract_version)
        self._ensure_collector()
        self._queue.put(ticket)
        return ticket

    def _ensure_collector(self) -> None:
        # Started on first use, in the process that uses it: a thread does not survive a fork.
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._slots = threading.Semaphore(self.in_flight)
                runners = ThreadPoolExecutor(self.in_flight, thread_name_prefix="batch")
                self._thread = threading.Thread(
                    target=self._loop, args=(runners,), name="batcher", daemon=True
                )
                self._thread.start()

    def _loop(self, runners: ThreadPoolExecutor) -> None:
        while True:
            self._slots.acquire()
            batch = self.collect()
            self._count_running(len(batch))
            runners.submit(self._run_in_slot, batch)

    def _run_in_slot(self, batch: list[Ticket]) -> None:
        try:
            self.run_now(batch)
        finally:
            self._count_running(-len(batch))
            self._slots.release()

    def _count_running(self, change: int) -> None:
        with self._lock:
            self._running_jobs += change

    def collect(self, block: bool = True) -> list[Ticket]:
        """Return the next batch: the first waiting ticket and whatever joins it in time."""
        batch: list[Ticket] = []
        while not batch:
            try:
                first = self._queue.get(block=block)
            except queue.Empty:
                return []
            if first.future.set_running_or_notify_cancel():
                batch.append(first)
        deadline = time.monotonic() + self.wait_s
        while len(batch) < self.size:
            remaining = deadline - time.monotonic()
            if remaining > 0 and self._queue.empty() and self._all_held_in(batch):
                break
            try:
                if remaining <= 0:
                    # After the wait, still take what is already queued: it costs no latency.
                    ticket = self._queue.get_nowait()
                else:
                    ticket = self._queue.get(
                        timeout=min(remaining, POLL_S) if self.held else remaining
                    )
            except queue.Empty:
                if remaining > 0:
                    continue
                break
            if ticket.future.set_running_or_notify_cancel():
                batch.append(ticket)
        return batch

    def _all_held_in(self, batch: list[Ticket]) -> bool:
        """Whether every job the worker holds, but those of running batches, is in `batch`."""
        return self.held is not None and self.held() - self._running_jobs <= len(batch)

    def run_now(self, batch: list[Ticket]) -> None:
        """Run one batch; afterwards every ticket in it is resolved, whatever happened."""
        if not batch:
            return
        error: BaseException = RuntimeError("the batch ended without an outcome for this job")
        try:
            self.run_batch(batch)
        except Exception as exc:
            log.exception("a batch of %d job(s) failed", len(batch))
            error = exc
        for ticket in batch:
            if not ticket.future.done():
                ticket.future.set_exception(error)


class BatchRunner:
    """Carry a batch of jobs from start to recorded outcomes; resolve each ticket with its own."""

    def __init__(
        self,
        site: BulkSite,
        engine: Callable[[], Explainer],
        worker: str,
        fetch_threads: int = 8,
    ) -> None:
        self.site = site
        self.engine = engine  # called once per batch: a promoted model is picked up between
        self.worker = worker
        self._fetch_pool = ThreadPoolExecutor(max_workers=fetch_threads, thread_name_prefix="fetch")

    def __call__(self, tickets: list[Ticket]) -> None:
        jobs: dict[str, list[Ticket]] = {}
        for ticket in tickets:  # a job queued twice (redelivery, the sweeper) runs once
            ticket.stage = Stage.SITE
            jobs.setdefault(ticket.job_id, []).append(ticket)
        outbox = Outbox(self.worker)
        valid = [job_id for job_id, group in jobs.items() if self._accepts(group[0], outbox)]
        started = self._start(valid, jobs)
        images = self._fetch(started, jobs)
        if images:
            self._classify(images, jobs, outbox)
        self._post(outbox, jobs)

    def _accepts(self, ticket: Ticket, outbox: Outbox) -> bool:
        try:
            PredictionRequest.from_task_kwargs(ticket.job_id, ticket.contract_version)
        except ContractError as exc:
            outbox.fail(ticket.job_id, FailureCode.CONTRACT, str(exc), "failed")
            return False
        return True

    def _start(self, job_ids: list[str], jobs: dict[str, list[Ticket]]) -> list[str]:
        if not job_ids:
            return []
        try:
            answers = self.site.start_many(job_ids, self.worker)
        except SiteError as exc:
            _resolve_error(job_ids, jobs, exc)
            return []
        proceed = []
        for job_id in job_ids:
            answer = answers.get(job_id, SiteError(f"no answer for {job_id}", permanent=False))
            if isinstance(answer, SiteError):
                _resolve_error([job_id], jobs, answer)
            elif not answer.proceed:
                _resolve(job_id, jobs, "already finished")
            else:
                proceed.append(job_id)
        return proceed

    def _fetch(self, job_ids: list[str], jobs: dict[str, list[Ticket]]) -> dict[str, bytes]:
        def fetch(job_id: str) -> bytes | SiteError:
            try:
                return self.site.fetch_image(job_id)
            except SiteError as exc:
                return exc

        images = {}
        for job_id, image in zip(job_ids, self._fetch_pool.map(fetch, job_ids), strict=True):
            if isinstance(image, SiteError):
                _resolve_error([job_id], jobs, image)
            else:
                images[job_id] = image
        return images

    def _classify(
        self, images: dict[str, bytes], jobs: dict[str, list[Ticket]], outbox: Outbox
    ) -> None:
        for job_id in images:
            _set_stage(jobs[job_id], Stage.MODEL)
        outcomes = self.engine().explain_many(list(images.values()))
        for job_id, outcome in zip(images, outcomes, strict=True):
            _set_stage(jobs[job_id], Stage.SITE)
            outbox.add(job_id, outcome)

    def _post(self, outbox: Outbox, jobs: dict[str, list[Ticket]]) -> None:
        if not outbox.results and not outbox.failures:
            return
        try:
            recorded = self.site.post_outcomes(outbox.results, outbox.failures)
        except SiteError as exc:
            recorded = {job_id: exc for job_id in outbox.outcomes}
        for job_id, outcome in outbox.outcomes.items():
            answer = recorded.get(job_id, SiteError(f"no answer for {job_id}", permanent=False))
            if isinstance(answer, SiteError):
                _resolve_error([job_id], jobs, answer)
            else:
                _resolve(job_id, jobs, outcome)


class Outbox:
    """The reports of one batch, and what each task says once its report is taken."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.results: list[PredictionResult] = []
        self.failures: list[FailureReport] = []
        self.outcomes: dict[str, str] = {}

    def add(self, job_id: str, outcome: Any) -> None:
        """Add what `explain_many` said about one image."""
        if isinstance(outcome, InvalidImageError):
            reason = f"The image cannot be classified: {outcome}"
            self.fail(job_id, FailureCode.INVALID_IMAGE, reason, "failed")
        elif isinstance(outcome, NotBrainMRIError):
            # An answer, not a fault: the model says the image is outside what it classifies.
            self.fail(job_id, FailureCode.NOT_BRAIN_MRI, str(outcome), "not a brain MRI")
        else:
            classification, explanation = outcome
            self.results.append(result_of(job_id, classification, explanation, self.worker))
            self.outcomes[job_id] = "succeeded"

    def fail(self, job_id: str, code: FailureCode, reason: str, outcome: str) -> None:
        self.failures.append(FailureReport(job_id, code, reason, self.worker))
        self.outcomes[job_id] = outcome


def result_of(job_id: str, classification: Any, explanation: Any, worker: str) -> PredictionResult:
    """The report of a classified scan (`classification`, `explanation` from `ml.inference`)."""
    return PredictionResult(
        job_id=job_id,
        label=classification.label,
        probabilities=classification.probabilities,
        model_version=classification.model_version,
        inference_ms=classification.inference_ms,
        worker=worker,
        needs_review=classification.needs_review,
        heatmap_png=explanation.layer_png,
    )


def _set_stage(tickets: list[Ticket], stage: Stage) -> None:
    for ticket in tickets:
        ticket.stage = stage


def _resolve(job_id: str, jobs: dict[str, list[Ticket]], outcome: str) -> None:
    for ticket in jobs[job_id]:
        if not ticket.future.done():
            ticket.future.set_result(outcome)


def _resolve_error(job_ids: list[str], jobs: dict[str, list[Ticket]], error: SiteError) -> None:
    for job_id in job_ids:
        for ticket in jobs[job_id]:
            if not ticket.future.done():
                ticket.future.set_exception(error)
