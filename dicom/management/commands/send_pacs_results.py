from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from dicom import delivery


class Command(BaseCommand):
    help = (
        "Send finished studies' results (a DICOM SR and a heat-map Secondary Capture) to "
        "each organisation's PACS, retrying failures with backoff (docs/pacs.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep sending")
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between rounds")

    def handle(self, *args: Any, loop: bool, interval: float, **options: Any) -> None:
        while True:
            sent, failed = delivery.deliver_due()
            if sent or failed or not loop:
                self.stdout.write(f"pacs: {sent} sent, {failed} not sent")
            if not loop:
                return
            time.sleep(interval)
            # A long-lived loop must not keep a connection the database has dropped.
            close_old_connections()
