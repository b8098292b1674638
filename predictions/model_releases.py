"""The site as the model registry's source of truth for every worker, wherever it runs.

The site's own registry (MODEL_REGISTRY_DIR) decides the version served; promoting or
rolling back there is the rollout. Workers that follow the site (MODEL_SOURCE=site) fetch
the active version's archive over the internal API, check its sha256 and report back what
they serve (workers/model_sync.py). `ml.registry` and `ml.distribution` are standard
library only: the site packs and lists versions without importing TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from ml.distribution import PackedModel, pack
from ml.registry import ModelRegistry
from predictions.models import WorkerModelState


def site_registry() -> ModelRegistry:
    """MODEL_REGISTRY_DIR (default: the repository's models/), read as the workers read it."""
    return ModelRegistry()


def archive_dir() -> Path:
    return Path(settings.VAR_DIR) / "model-archives"


def active_release() -> PackedModel:
    """The version the site serves, packed (once) for download. Raises ModelNotFoundError."""
    registry = site_registry()
    return pack(registry, registry.active_version(), archive_dir())


def release_of(version: str) -> PackedModel:
    return pack(site_registry(), version, archive_dir())


@dataclass(frozen=True)
class Rollout:
    """How far the active version has reached the workers that follow the site."""

    active: str
    current: list[WorkerModelState]
    behind: list[WorkerModelState]

    @property
    def complete(self) -> bool:
        return not self.behind


def rollout() -> Rollout:
    active = site_registry().active_version()
    states = list(WorkerModelState.objects.all())
    current = [state for state in states if state.serving == active]
    return Rollout(active, current, [state for state in states if state.serving != active])
