"""Promote or roll back the model every worker serves, from the central site.

    manage.py model_release list                 versions in the site's registry, * = active
    manage.py model_release promote VERSION      serve VERSION everywhere
    manage.py model_release rollback             undo the last promotion everywhere
    manage.py model_release status [--wait S]    which workers serve the active version

Workers with MODEL_SOURCE=site fetch the new version within MODEL_SYNC_INTERVAL_S, check
its sha256 and switch before their next job (workers/model_sync.py). `status --wait S`
waits up to S seconds for all of them and exits 1 if some are still behind.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml.errors import ModelNotFoundError
from predictions.model_releases import Rollout, active_release, release_of, rollout, site_registry


class Command(BaseCommand):
    help = "Promote or roll back the model served by every worker that follows the site."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="versions in the site's registry")
        promote = actions.add_parser("promote", help="serve a version everywhere")
        promote.add_argument("version")
        actions.add_parser("rollback", help="undo the last promotion everywhere")
        status = actions.add_parser("status", help="which workers serve the active version")
        status.add_argument("--wait", type=float, default=0.0, help="seconds to wait for all")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        registry = site_registry()
        try:
            if action == "list":
                for info in registry.versions():
                    self.stdout.write(f"{'*' if info.active else ' '} {info.version}")
            elif action == "promote":
                release = release_of(options["version"])  # packed first: workers can fetch it
                registry.promote(release.version)
                self.stdout.write(f"promoted {release.version} (sha256 {release.sha256})")
            elif action == "rollback":
                version = registry.rollback()
                release = active_release()
                self.stdout.write(f"rolled back to {version} (sha256 {release.sha256})")
            else:
                self.report(wait_for_rollout(options["wait"]))
        except ModelNotFoundError as exc:
            raise CommandError(str(exc)) from exc

    def report(self, state: Rollout) -> None:
        self.stdout.write(f"active: {state.active}")
        for worker in state.current + state.behind:
            note = f"  ({worker.error})" if worker.error else ""
            stamp = worker.reported_at.isoformat(timespec="seconds")
            self.stdout.write(f"  {worker.worker}: {worker.serving or '-'} at {stamp}{note}")
        if not state.complete:
            raise CommandError(f"{len(state.behind)} worker(s) not serving {state.active}")


def wait_for_rollout(wait_s: float) -> Rollout:
    deadline = time.monotonic() + wait_s
    while not (state := rollout()).complete and time.monotonic() < deadline:
        time.sleep(1.0)
    return state
