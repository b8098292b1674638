"""Workers follow the model the central site serves (MODEL_SOURCE=site).

The site is the registry's source of truth: promoting or rolling back a version there
(`manage.py model_release`) is the whole rollout. Every worker asks the site which version
it serves (every MODEL_SYNC_INTERVAL_S, 30 s by default), downloads a version it does not
hold, checks the archive's sha256 before unpacking it into its own registry
(MODEL_REGISTRY_DIR, a cache of the site's), and moves its ACTIVE pointer; its processes
switch before their next job, as after a local promotion. A worker that cannot fetch or
verify a version keeps serving the one it has, and says so: in the log, in its report to
the site (`stack_status`, `/metrics`) and in `worker_info` (Flower, `celery inspect`).

The sync runs in the Celery parent process, in a thread: it needs no TensorFlow.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import bootsteps

from ml.distribution import ArchiveError, install
from ml.errors import ModelNotFoundError
from ml.registry import ModelRegistry
from workers.model_sync_settings import sync_interval_s
from workers.web_client import SiteClient, SiteError

log = logging.getLogger(__name__)

STATE_FILE = "SYNC_STATE.json"


@dataclass(frozen=True)
class SyncState:
    worker: str
    wanted: str  # what the site serves ("" when it could not be asked)
    serving: str  # this worker's active version
    error: str  # why the two differ, "" when they do not
    checked_at: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


class ModelSync:
    def __init__(
        self, client: SiteClient, registry: ModelRegistry, worker: str, report: bool = True
    ) -> None:
        self.client = client
        self.registry = registry
        self.worker = worker
        self.report = report  # tell the site (a worker does; the start-up check does not)
        self._lock = threading.Lock()

    def check(self) -> SyncState:
        """Follow the site's version once; never raises."""
        with self._lock:
            wanted, error = "", ""
            try:
                release = self.client.active_model()
                wanted = release.version
                if wanted not in {info.version for info in self.registry.versions()}:
                    self._fetch(release.version, release.sha256)
                if self._active() != wanted:
                    self.registry.promote(wanted)
                    log.info("model %s from the site is now active", wanted)
            except (SiteError, ArchiveError, ModelNotFoundError, OSError, ValueError) as exc:
                error = str(exc)
                log.warning("model sync: keeping %s: %s", self._active() or "no model", error)
            state = SyncState(self.worker, wanted, self._active(), error, _now())
            self._save(state)
            if self.report:
                self._report(state)
            return state

    def _report(self, state: SyncState) -> None:
        try:
            self.client.report_model_state(state.to_json())
        except SiteError as exc:
            log.warning("model sync: could not report to the site: %s", exc)

    def _fetch(self, version: str, sha256: str) -> None:
        self.registry.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.registry.root, prefix=".download-") as folder:
            archive = Path(folder) / "model.tar.gz"
            log.info("model sync: downloading %s", version)
            self.client.download_model(version, archive)
            install(self.registry, archive, version, sha256)

    def _active(self) -> str:
        try:
            return self.registry.active_version()
        except ModelNotFoundError:
            return ""

    def _save(self, state: SyncState) -> None:
        path = self.registry.root / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as handle:
            json.dump(state.to_json(), handle)
        os.replace(handle.name, path)


def last_state(registry: ModelRegistry) -> dict[str, Any] | None:
    """The last sync's outcome, for worker_info; None when this worker does not sync."""
    try:
        return dict(json.loads((registry.root / STATE_FILE).read_text()))
    except (FileNotFoundError, ValueError):
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ModelSyncStep(bootsteps.StartStopStep):
    """Runs ModelSync every MODEL_SYNC_INTERVAL_S in a thread of the worker's parent."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        from workers.model_loader import registry

        sync = ModelSync(SiteClient.from_environment(), registry(), parent.hostname)
        self.thread = repeat_in_thread(sync.check, sync_interval_s(), self.stopping)

    def stop(self, parent: Any) -> None:
        self.stopping.set()

    # Celery merges what every step returns here; its type stubs say None.
    def info(self, parent: Any) -> dict[str, Any]:  # type: ignore[override]
        """Joins `celery inspect stats`, which Flower shows on the worker's page."""
        from workers.model_loader import registry

        return {"model_sync": last_state(registry())}


def repeat_in_thread(
    action: Callable[[], object], interval_s: float, stopping: threading.Event
) -> threading.Thread:
    def loop() -> None:
        while not stopping.is_set():
            started = time.monotonic()
            action()
            stopping.wait(max(0.0, interval_s - (time.monotonic() - started)))

    thread = threading.Thread(target=loop, name="model-sync", daemon=True)
    thread.start()
    return thread
