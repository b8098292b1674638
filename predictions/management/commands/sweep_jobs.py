from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections

from predictions import broker_status, dispatch, jobs
from predictions.api.authentication import delete_expired_tokens
from predictions.security import delete_expired_counters

log = logging.getLogger(__name__)


@dataclass
class Every:
    """Run `action` every `interval_s` seconds; an error is logged and tried again next time."""

    interval_s: float
    action: Callable[[], None]
    due: float = 0.0

    def run_if_due(self, now: float) -> None:
        if now < self.due:
            return
        self.due = now + self.interval_s
        try:
            self.action()
        except DatabaseError:
            # The database is down or was cut: the loop must outlive it, not crash.
            log.exception("%s failed; trying again in %g s", self.action.__name__, self.interval_s)
            close_old_connections()


class Command(BaseCommand):
    help = (
        "Send jobs that waited for an unreachable broker, queue stale jobs again (queued or "
        "running past JOB_QUEUED_TIMEOUT / JOB_RUNNING_TIMEOUT) and fail those out of "
        "attempts, so no job hangs, and delete expired API tokens and security counters; "
        "with --loop, also store the broker's status for the dashboard."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep sweeping")
        parser.add_argument(
            "--interval", type=float, default=settings.JOB_SWEEP_INTERVAL,
            help="seconds between sweeps for stale jobs (default JOB_SWEEP_INTERVAL)",
        )  # fmt: skip

    def handle(self, *args: Any, loop: bool, interval: float, **options: Any) -> None:
        if not loop:
            self.dispatch_waiting()
            self.sweep(always_report=True)
            return
        schedule = [
            Every(settings.JOB_DISPATCH_INTERVAL, self.dispatch_waiting),
            Every(interval, self.sweep),
            Every(settings.BROKER_STATUS_INTERVAL, self.refresh_broker_status),
        ]
        while True:
            for task in schedule:
                task.run_if_due(time.monotonic())
            time.sleep(max(0.0, min(task.due for task in schedule) - time.monotonic()))
            # A long-lived loop must not keep a connection the database has dropped.
            close_old_connections()

    def dispatch_waiting(self) -> None:
        if sent := dispatch.send_waiting():
            self.stdout.write(f"dispatch: {sent} sent after waiting for the broker")

    def refresh_broker_status(self) -> None:
        broker_status.refresh()

    def sweep(self, always_report: bool = False) -> None:
        requeued, failed = jobs.sweep()
        if requeued or failed or always_report:
            self.stdout.write(f"sweep: {requeued} requeued, {failed} failed")
        # Authentication leaves a user's expired tokens other than the one presented.
        if expired := delete_expired_tokens():
            self.stdout.write(f"sweep: {expired} expired API token(s) deleted")
        if expired := delete_expired_counters():
            self.stdout.write(f"sweep: {expired} expired security counter(s) deleted")
