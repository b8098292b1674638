from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from predictions import reviews
from predictions.models import Organisation


class Command(BaseCommand):
    help = (
        "Write every reviewed scan into class folders (glioma/ meningioma/ no_tumor/ "
        "pituitary/) under --out, the layout `python -m ml train --data DIR` reads."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, type=Path, help="folder to write into")
        parser.add_argument("--organisation", help="only this organisation's scans (by name)")

    def handle(self, *args: Any, out: Path, organisation: str | None, **options: Any) -> None:
        clinic = None
        if organisation is not None:
            clinic = Organisation.objects.filter(name=organisation).first()
            if clinic is None:
                raise CommandError(f"no organisation named {organisation!r}")
        count = reviews.export_to_directory(out, clinic)
        self.stdout.write(f"exported {count} reviewed scan(s) to {out}")
