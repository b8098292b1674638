#!/usr/bin/env python
"""Benchmark the whole pipeline: the baseline's and this checkout's, side by side in one run.

Each measurement starts the real stack afresh (`make run`'s launcher in a temporary folder,
with a private Redis): jobs are submitted over the HTTP API, queued in Redis, classified by
the worker, posted back, and polled. For each pipeline it measures
  - sequential single-job latency (submit -> succeeded; median and p90), one worker process;
  - a burst of --jobs jobs (default 1,000) with one worker process, then with two: jobs/s;
  - the worker processes' resident memory (peak, summed),
  - whether every job was recorded exactly once (none lost, none twice), and
  - what the site alone accepts with the workers stopped (--ceiling-jobs): the most any
    worker could be given on this machine.
The baseline is the commit the throughput issue started from (BASELINE_COMMIT), extracted
with `git archive` into a temporary folder and run with this virtual environment.
The last line is `pipeline speed-up: N.Nx`: this checkout's burst rate with one worker
process over the baseline's.

The scans are synthetic JPEGs unless --data names data folders: then both pipelines get the
same real slices, the validation parts the active model kept out (`make bench` does this
when ../shared/datasets is there). A cascade's cost depends on the slices (it runs its
other passes only where its first network is unsure), and synthetic images are not what
it was trained for: it escalates most of them.

    python scripts/bench_pipeline.py [--jobs 1000] [--latency-jobs 20] [--workers 1 2]
                                     [--baseline REV] [--only baseline|new] [--data DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.images import jpeg_bytes  # noqa: E402
from tests.stack import RunningStack, processes_in_groups  # noqa: E402
from webapp.local_redis import free_port, start_redis  # noqa: E402

# main before the batching worker: one task, three HTTP round trips and one forward pass
# (batch size one, four passes of the ensemble) and one Grad-CAM per job.
BASELINE_COMMIT = "5ac7dcd"
SUBMITTERS = 4  # concurrent API clients during a burst, as several hospitals would be
# Both pipelines run with the API's rate limits off: the benchmark measures the pipeline.
STACK_ENV = {"API_THROTTLE_USER": "off", "API_THROTTLE_IP": "off"}
# A real slice the model's guard refuses fails with this code: a finished job, not a lost one.
REFUSED = "not_brain_mri"


@dataclass(frozen=True)
class Pipeline:
    name: str
    root: Path

    def worker_env(self, processes: int) -> dict[str, str]:
        """How each launcher is told to run `processes` model-running worker processes."""
        if self.name == "baseline":
            return {"WORKER_CONCURRENCY": str(processes)}  # prefork children, one job each
        return {"WORKER_PROCESSES": str(processes)}


@dataclass
class Burst:
    jobs: int
    seconds: float
    succeeded: int
    refused: int  # failed as "not a brain MRI slice" (real slices only; the baseline has no guard)
    failed: int
    recorded_once: int
    recorded_twice: int
    redelivered: int
    worker_processes: int
    worker_peak_rss_mib: float
    submitted_after: float  # seconds until the last submission was answered

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds

    @property
    def intact(self) -> bool:
        each_finished = self.succeeded + self.refused == self.jobs
        return each_finished and self.succeeded == self.recorded_once and not self.recorded_twice


def main() -> None:
    args = parse_args()
    images = scans(args, args.jobs + args.latency_jobs + 1)
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        pipelines = [
            Pipeline("baseline", checkout(args.baseline, Path(scratch) / "baseline")),
            Pipeline("new", ROOT),
        ]
        pipelines = [p for p in pipelines if args.only in (None, p.name)]
        latencies: dict[str, list[float]] = {}
        bursts: dict[tuple[str, int], Burst] = {}
        ceilings: dict[str, float] = {}
        # Interleaved (baseline, new, baseline, new): drift on a shared machine hits both alike.
        for processes in args.workers:
            for pipeline in pipelines:
                var_dir = Path(scratch) / f"{pipeline.name}-{processes}"
                with running_stack(pipeline, processes, var_dir) as (stack, session, patient):
                    if processes == args.workers[0]:
                        latencies[pipeline.name] = [
                            latency(session, stack.site_url, patient, image)
                            for image in images[1 : args.latency_jobs + 1]
                        ]
                        print_latency(pipeline.name, latencies[pipeline.name])
                    burst_images = images[args.latency_jobs + 1 :]
                    bursts[pipeline.name, processes] = burst(
                        stack, session, patient, burst_images, var_dir, pipeline.root
                    )
                    print_burst(pipeline.name, processes, bursts[pipeline.name, processes])
                    if processes == args.workers[0] and args.ceiling_jobs:
                        ceilings[pipeline.name] = submission_ceiling(
                            stack, session, patient, burst_images[: args.ceiling_jobs]
                        )
                        print(f"[{pipeline.name}] the site alone (workers stopped) accepts "
                              f"{ceilings[pipeline.name]:.1f} jobs/s", flush=True)  # fmt: skip
        print_summary(pipelines, args.workers, latencies, bursts, ceilings)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in each burst")
    parser.add_argument("--latency-jobs", type=int, default=20, help="sequential jobs")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="worker process counts to measure the burst with",
    )
    parser.add_argument(
        "--ceiling-jobs",
        type=int,
        default=300,
        help="jobs submitted with the workers stopped, to measure what the site alone accepts "
        "(0: skip)",
    )
    parser.add_argument("--size", type=int, default=512, help="synthetic image side, pixels")
    parser.add_argument(
        "--data", type=Path, nargs="*", default=[],
        help="data folders: submit their validation slices instead of synthetic scans",
    )  # fmt: skip
    parser.add_argument("--baseline", default=BASELINE_COMMIT, help="the baseline's git revision")
    parser.add_argument("--only", choices=["baseline", "new"], help="measure one pipeline")
    return parser.parse_args()


def scans(args: argparse.Namespace, count: int) -> list[bytes]:
    """`count` encoded scans: the data folders' validation slices in turn, or synthetic."""
    if not args.data:
        print(f"scans: synthetic {args.size} px JPEGs", flush=True)
        return [jpeg_bytes(args.size, seed) for seed in range(count)]
    from ml.registry import METADATA_FILE, ModelRegistry
    from ml.sources import held_out_files

    active = ModelRegistry(ROOT / "models").active_path()
    metadata = json.loads((active / METADATA_FILE).read_text())
    folders = [held_out_files(folder, metadata) for folder in args.data]
    interleaved = [path for group in zip_longest(*folders) for path in group if path]
    print(f"scans: {len(interleaved)} validation slices of {', '.join(map(str, args.data))}, "
          f"in turn", flush=True)  # fmt: skip
    return [interleaved[index % len(interleaved)].read_bytes() for index in range(count)]


def checkout(revision: str, folder: Path) -> Path:
    """Extract `revision` of this repository into `folder` (no .git: nothing to clean up)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


@contextmanager
def running_stack(
    pipeline: Pipeline, processes: int, var_dir: Path
) -> Iterator[tuple[RunningStack, requests.Session, str]]:
    """A fresh stack of `pipeline` with its own Redis and database; its API session and a
    patient; the first job already done, so no measurement includes loading the model."""
    redis_port = free_port()
    var_dir.mkdir(parents=True)
    redis = start_redis(redis_port, var_dir / "bench-redis.log")
    env = {
        **STACK_ENV,
        **pipeline.worker_env(processes),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "PYTHONPATH": str(pipeline.root),
    }
    stack = RunningStack(var_dir, extra_env=env, root=pipeline.root)
    try:
        stack.wait_ready(timeout_s=300)
        session = requests.Session()
        session.headers["Authorization"] = f"Token {stack.banner_value('api token')}"
        patient = session.post(
            f"{stack.site_url}/api/v1/patients/",
            json={"external_id": f"BENCH-{time.time_ns()}"},
            timeout=30,
        )
        patient.raise_for_status()
        patient_id = str(patient.json()["id"])
        wait_finished(session, submit(session, stack.site_url, patient_id, jpeg_bytes(256, 10**6)))
        yield stack, session, patient_id
    finally:
        stack.close()
        redis.kill()
        redis.wait()


def submit(session: requests.Session, site: str, patient: str, image: bytes) -> str:
    response = session.post(
        f"{site}/api/v1/scans/",
        files={"image": ("b.jpg", image, "image/jpeg")},
        data={"patient": patient, "allow_duplicate": "true"},
        timeout=60,
    )
    response.raise_for_status()
    return str(response.json()["job"]["url"])


def latency(session: requests.Session, site: str, patient: str, image: bytes) -> float:
    start = time.perf_counter()
    wait_finished(session, submit(session, site, patient, image))
    return time.perf_counter() - start


def wait_finished(session: requests.Session, url: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = session.get(url, timeout=30).json()
        status = job["status"]
        if status == "succeeded":
            return
        if status == "failed":
            if job.get("failure_code") == REFUSED:
                return  # a real outcome: the model's guard refused the scan
            raise RuntimeError(f"{url} failed")
        time.sleep(0.01)
    raise TimeoutError(url)


def burst(
    stack: RunningStack,
    session: requests.Session,
    patient: str,
    images: list[bytes],
    var_dir: Path,
    root: Path,
) -> Burst:
    """Submit every image at once (SUBMITTERS clients) and wait until all jobs are finished."""
    before = count_jobs(session, stack.site_url, patient)
    peak_rss: dict[int, float] = {}
    start = time.perf_counter()
    with ThreadPoolExecutor(SUBMITTERS) as pool:
        submitted = pool.map(lambda image: submit(session, stack.site_url, patient, image), images)
        urls = list(submitted)
    submitted_after = time.perf_counter() - start
    deadline = time.monotonic() + max(900.0, 2.0 * len(images))
    while True:
        counts = count_jobs(session, stack.site_url, patient)
        finished = counts["succeeded"] + counts["failed"] - before["succeeded"] - before["failed"]
        sample_worker_rss(stack, peak_rss)
        if finished >= len(urls) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    seconds = time.perf_counter() - start
    job_ids = [url.rstrip("/").rsplit("/", 1)[1] for url in urls]
    recorded = predictions_per_job(var_dir, root, job_ids)
    return Burst(
        jobs=len(urls),
        seconds=seconds,
        succeeded=counts["succeeded"] - before["succeeded"],
        refused=recorded["refused"],
        failed=counts["failed"] - before["failed"] - recorded["refused"],
        recorded_once=sum(1 for n in recorded["predictions"].values() if n == 1),
        recorded_twice=sum(1 for n in recorded["predictions"].values() if n > 1),
        redelivered=recorded["redelivered"],
        worker_processes=len(peak_rss),
        worker_peak_rss_mib=sum(peak_rss.values()),
        submitted_after=submitted_after,
    )


def count_jobs(session: requests.Session, site: str, patient: str) -> dict[str, int]:
    """Jobs of `patient` by status, from the API's filtered list (its `count`)."""
    counts = {}
    for status in ("succeeded", "failed"):
        answer = session.get(
            f"{site}/api/v1/jobs/", params={"patient": patient, "status": status}, timeout=30
        )
        answer.raise_for_status()
        counts[status] = int(answer.json()["count"])
    return counts


def predictions_per_job(var_dir: Path, root: Path, job_ids: list[str]) -> dict:
    """Ask the stack's database (not the API) how often each job's result was recorded."""
    code = (
        "import json, sys; from django.db.models import Count; from predictions.models import Job; "
        "ids = json.load(sys.stdin); jobs = Job.objects.filter(public_id__in=ids)"
        ".annotate(n=Count('prediction')); print(json.dumps({'predictions': "
        "{str(j.public_id): j.n for j in jobs}, 'redelivered': sum(j.attempts > 1 for j in jobs), "
        f"'refused': sum(getattr(j, 'failure_code', '') == {REFUSED!r} for j in jobs)}}))"
    )
    # The secrets `make run`'s launcher generated and keeps in its folder.
    secrets = {name.upper(): (var_dir / name).read_text().strip()
               for name in ("secret_key", "worker_secret")}  # fmt: skip
    env = {**os.environ, "VAR_DIR": str(var_dir), "PYTHONPATH": str(root), **secrets}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=root,
        env=env,
        input=json.dumps(job_ids),
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(f"could not count the recorded results:\n{result.stderr[-3000:]}")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    for job_id in job_ids:
        found["predictions"].setdefault(job_id, 0)
    return dict(found)


def submission_ceiling(
    stack: RunningStack, session: requests.Session, patient: str, images: list[bytes]
) -> float:
    """Jobs/s the site accepts with every worker process stopped (SIGSTOP): the most any
    worker could be given on this machine. The jobs wait in Redis; the stack is closed next."""
    workers = worker_pids(stack)
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(SUBMITTERS) as pool:
            list(pool.map(lambda image: submit(session, stack.site_url, patient, image), images))
        return len(images) / (time.perf_counter() - start)
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)


def worker_pids(stack: RunningStack) -> list[int]:
    """The stack's Celery worker processes (not Flower, which is `workers.flower_app`)."""
    return [
        pid
        for pid, command in processes_in_groups(stack.all_service_groups()).items()
        if "celery" in command and "worker" in command.split()
    ]


def sample_worker_rss(stack: RunningStack, peak: dict[int, float]) -> None:
    """Keep each worker process's peak resident memory (VmHWM, MiB) seen so far."""
    for pid in worker_pids(stack):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM"):
                peak[pid] = max(peak.get(pid, 0.0), int(line.split()[1]) / 1024)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_latency(name: str, values: list[float]) -> None:
    print(
        f"[{name}] latency over {len(values)} sequential jobs: "
        f"median {statistics.median(values) * 1000:.0f} ms, "
        f"p90 {quantile(values, 0.9) * 1000:.0f} ms",
        flush=True,
    )


def print_burst(name: str, processes: int, result: Burst) -> None:
    verdict = "none lost, none twice" if result.intact else "JOBS LOST OR RECORDED TWICE"
    print(
        f"[{name}] burst of {result.jobs} jobs, {processes} worker process(es): "
        f"{result.seconds:.1f} s, {result.rate:.1f} jobs/s (all submitted after "
        f"{result.submitted_after:.1f} s); succeeded {result.succeeded}, refused as not a "
        f"brain MRI slice {result.refused}, failed {result.failed}, recorded once "
        f"{result.recorded_once}, twice "
        f"{result.recorded_twice}, redelivered {result.redelivered} ({verdict}); "
        f"{result.worker_processes} celery worker processes, peak RSS "
        f"{result.worker_peak_rss_mib:.0f} MiB",
        flush=True,
    )


def print_summary(
    pipelines: list[Pipeline],
    workers: list[int],
    latencies: dict[str, list[float]],
    bursts: dict[tuple[str, int], Burst],
    ceilings: dict[str, float],
) -> None:
    print(
        "\n| pipeline | worker processes | jobs/s | latency median | latency p90 | "
        "worker peak RSS | jobs intact |\n|---|---|---|---|---|---|---|"
    )
    for processes in workers:
        for pipeline in pipelines:
            result = bursts[pipeline.name, processes]
            times = latencies.get(pipeline.name, [])
            median = f"{statistics.median(times) * 1000:.0f} ms" if times else "-"
            p90 = f"{quantile(times, 0.9) * 1000:.0f} ms" if times else "-"
            print(
                f"| {pipeline.name} | {processes} | {result.rate:.1f} | {median} | {p90} | "
                f"{result.worker_peak_rss_mib:.0f} MiB | {'yes' if result.intact else 'NO'} |"
            )
    for name, rate in ceilings.items():
        print(f"\n[{name}] site alone, workers stopped: {rate:.1f} jobs/s accepted", end="")
    intact = all(result.intact for result in bursts.values())
    print(f"\n\njobs lost or recorded twice: {'none' if intact else 'SOME (see above)'}")
    first = workers[0]
    if ("baseline", first) in bursts and ("new", first) in bursts:
        speed_up = bursts["new", first].rate / bursts["baseline", first].rate
        print(f"pipeline speed-up: {speed_up:.1f}x")
    if not intact:
        sys.exit(1)


if __name__ == "__main__":
    main()
