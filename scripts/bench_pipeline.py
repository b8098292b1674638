#!/usr/bin/env python
"""Benchmark the whole pipeline: submit over the API, wait for the result, measure.

Prints the end-to-end latency (submit -> succeeded, median and p90 of N sequential
jobs), the throughput of a burst of jobs, and the resident memory of the local
Celery worker processes. Without --site it starts its own stack (`webapp.runstack`)
in a temporary folder, with the shipped model, and stops it afterwards.

    python scripts/bench_pipeline.py [--site URL --token TOKEN] [--n 20] [--burst 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.images import jpeg_bytes
from tests.stack import RunningStack


def main() -> None:
    args = parse_args()
    if args.site:
        run(args.site, args.token, args)
        return
    with tempfile.TemporaryDirectory() as var_dir:
        stack = RunningStack(Path(var_dir))
        try:
            stack.wait_ready()
            run(stack.site_url, stack.banner_value("api token"), args)
        finally:
            stack.interrupt()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", help="a running site; default: start a local stack")
    parser.add_argument("--token", help="API token for --site")
    parser.add_argument("--n", type=int, default=20, help="sequential jobs for latency")
    parser.add_argument("--burst", type=int, default=40, help="jobs submitted at once")
    parser.add_argument("--size", type=int, default=512, help="synthetic image side, pixels")
    return parser.parse_args()


def run(site: str, token: str, args: argparse.Namespace) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    api = f"{site.rstrip('/')}/api/v1"
    patient = session.post(
        f"{api}/patients/", json={"external_id": f"BENCH-{time.time_ns()}"}, timeout=10
    ).json()["id"]
    images = [jpeg_bytes(args.size, seed) for seed in range(max(args.n, args.burst))]
    # Warm-up, awaited: the worker's child may still be loading the model after "ready".
    wait_finished(session, submit(session, api, patient, images[0]))
    latencies = [latency(session, api, patient, images[i]) for i in range(args.n)]
    print(f"end-to-end latency over {args.n} sequential jobs: "
          f"median {statistics.median(latencies) * 1000:.0f} ms, "
          f"p90 {quantile(latencies, 0.9) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")  # fmt: skip
    start = time.perf_counter()
    urls = [submit(session, api, patient, images[i]) for i in range(args.burst)]
    for url in urls:
        wait_finished(session, url)
    elapsed = time.perf_counter() - start
    print(f"burst of {args.burst} jobs: {elapsed:.1f} s, {args.burst / elapsed:.1f} jobs/s")
    for pid, rss_mib, command in worker_memory():
        print(f"worker process {pid}: RSS {rss_mib:.0f} MiB  ({command})")


def submit(session: requests.Session, api: str, patient: str, image: bytes) -> str:
    response = session.post(
        f"{api}/scans/", files={"image": ("b.jpg", image, "image/jpeg")},
        data={"patient": patient}, timeout=30,
    )  # fmt: skip
    response.raise_for_status()
    return str(response.json()["job"]["url"])


def latency(session: requests.Session, api: str, patient: str, image: bytes) -> float:
    start = time.perf_counter()
    wait_finished(session, submit(session, api, patient, image))
    return time.perf_counter() - start


def wait_finished(session: requests.Session, url: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = session.get(url, timeout=10).json()["status"]
        if status == "succeeded":
            return
        if status == "failed":
            raise RuntimeError(f"{url} failed")
        time.sleep(0.02)
    raise TimeoutError(url)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def worker_memory() -> list[tuple[int, float, str]]:
    """RSS of local Celery worker processes, read from /proc (Linux)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            arguments = (proc / "cmdline").read_bytes().decode().split("\0")
            status = (proc / "status").read_text()
        except OSError:
            continue
        command = " ".join(arguments)
        if "celery" in command and "worker" in arguments:  # not Flower, whose app is workers.*
            rss_kib = int(next(line for line in status.splitlines() if line.startswith("VmRSS"))
                          .split()[1])  # fmt: skip
            found.append((int(proc.name), rss_kib / 1024, command.strip()[:80]))
    return found


if __name__ == "__main__":
    main()
