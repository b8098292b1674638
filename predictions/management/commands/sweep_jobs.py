from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from predictions import jobs


class Command(BaseCommand):
    help = (
        "Queue stale jobs again (queued or running past JOB_QUEUED_TIMEOUT / "
        "JOB_RUNNING_TIMEOUT) and fail those out of attempts, so no job hangs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep sweeping")
        parser.add_argument("--interval", type=float, default=30.0, help="seconds between sweeps")

    def handle(self, *args: Any, loop: bool, interval: float, **options: Any) -> None:
        while True:
            requeued, failed = jobs.sweep()
            if requeued or failed or not loop:
                self.stdout.write(f"sweep: {requeued} requeued, {failed} failed")
            if not loop:
                return
            time.sleep(interval)
            # A long-lived loop must not keep a connection the database has dropped.
            close_old_connections()
