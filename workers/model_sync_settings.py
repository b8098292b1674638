"""Whether a worker follows the site's model, and how often it asks (workers.model_sync)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from workers.env import env_choice, env_float

SOURCES = ("local", "site")


def follows_site(environ: Mapping[str, str] = os.environ) -> bool:
    """MODEL_SOURCE=site: the site decides the version; local (default): MODEL_REGISTRY_DIR does."""
    return env_choice("MODEL_SOURCE", SOURCES, "local", environ) == "site"


def sync_interval_s(environ: Mapping[str, str] = os.environ) -> float:
    return env_float("MODEL_SYNC_INTERVAL_S", 30.0, minimum=1.0, environ=environ)
