from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from ml.errors import ModelNotFoundError
from predictions import broker
from predictions.model_releases import rollout
from predictions.models import Job


class Command(BaseCommand):
    help = "Print queue depths, the workers online (queues, model version) and stuck jobs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stuck-after", type=float, default=float(settings.JOB_QUEUED_TIMEOUT),
            help="seconds a job may stay queued or running before it counts as stuck",
        )  # fmt: skip
        parser.add_argument(
            "--timeout", type=float, default=2.0, help="seconds to wait for workers"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON document")

    def handle(self, *args: Any, stuck_after: float, timeout: float, **options: Any) -> None:
        status = {
            "queues": self.queues(),
            "workers": self.workers(timeout),
            "stuck_jobs": self.stuck_jobs(stuck_after),
            "model_rollout": model_rollout(),
        }
        if options["json"]:
            self.stdout.write(json.dumps(status, indent=2))
        else:
            self.stdout.write(render(status, stuck_after))

    def queues(self) -> dict[str, int | str]:
        queues = broker.known_queues()
        try:
            return dict(broker.queue_depths(queues))
        except broker.BrokerUnavailable as exc:
            return dict.fromkeys(queues, f"broker unreachable: {exc}")

    def workers(self, timeout: float) -> dict[str, dict[str, Any]]:
        """Ask every worker for its queues and, if it runs workers.control, its model."""
        try:
            queues = broker.worker_queues(timeout)
            info = broker.worker_infos(timeout)
        except broker.BrokerUnavailable as exc:
            return {"(broker)": {"error": str(exc)}}
        return {
            name: {"queues": worker_queues, "model_version": _model_version(info.get(name))}
            for name, worker_queues in sorted(queues.items())
        }

    def stuck_jobs(self, stuck_after: float) -> list[dict[str, Any]]:
        now = timezone.now()
        stuck_for = timedelta(seconds=stuck_after)
        stuck = Job.objects.stale(queued_for=stuck_for, running_for=stuck_for, now=now)
        return [
            {
                "job": str(job.public_id),
                "status": job.status,
                "queue": job.queue,
                "worker": job.worker,
                "attempts": job.attempts,
                "age_s": round((now - job.created).total_seconds()),
            }
            for job in stuck.order_by("created")[:100]
        ]


def model_rollout() -> dict[str, Any]:
    """The site's active version and what each worker following it last reported."""
    try:
        state = rollout()
    except ModelNotFoundError as exc:
        return {"active": None, "error": str(exc), "workers": {}}
    return {
        "active": state.active,
        "workers": {
            worker.worker: {
                "serving": worker.serving, "wanted": worker.wanted, "error": worker.error,
                "reported_at": worker.reported_at.isoformat(timespec="seconds"),
            }
            for worker in state.current + state.behind
        },
    }  # fmt: skip


def _model_version(info: broker.WorkerInfo | None) -> str:
    if info is None:
        return "unknown (worker has no worker_info command)"
    return info.get("model_version") or "unknown"


def render(status: dict[str, Any], stuck_after: float) -> str:
    lines = ["Queues (messages waiting):"]
    lines += [f"  {queue:<30} {depth}" for queue, depth in status["queues"].items()]
    lines.append(f"Workers online: {len(status['workers'])}")
    for name, worker in status["workers"].items():
        if "error" in worker:
            lines.append(f"  {name}: {worker['error']}")
            continue
        queues = ",".join(worker["queues"])
        lines.append(f"  {name:<30} queues={queues} model={worker['model_version']}")
    rollout_state = status["model_rollout"]
    lines.append(f"Model served by the site: {rollout_state['active'] or '-'}")
    for name, worker in rollout_state["workers"].items():
        note = f" ({worker['error']})" if worker["error"] else ""
        lines.append(f"  {name:<30} serving={worker['serving'] or '-'}{note}")
    stuck = status["stuck_jobs"]
    lines.append(f"Jobs stuck longer than {stuck_after:.0f} s: {len(stuck)}")
    lines += [
        f"  {job['job']} {job['status']:<8} queue={job['queue']} worker={job['worker'] or '-'} "
        f"attempts={job['attempts']} age={job['age_s']}s"
        for job in stuck
    ]
    return "\n".join(lines)
