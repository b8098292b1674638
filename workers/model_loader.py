"""One inference engine per worker process, following the registry's active model.

TensorFlow is not fork-safe, so nothing here runs in the Celery parent: the
engine loads in each child after the fork and is reused for every task. Between
tasks the child compares the registry's active version (one small file read)
with what it holds and loads the new model when an operator promotes one.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ml.registry import ModelRegistry, default_registry_root

if TYPE_CHECKING:
    from ml.inference import InferenceEngine

log = logging.getLogger(__name__)

_lock = threading.Lock()
_engine: InferenceEngine | None = None


def registry() -> ModelRegistry:
    return ModelRegistry(default_registry_root())


def current_engine() -> InferenceEngine:
    """Return the engine for the active model, loading it on first use or after a promotion."""
    global _engine
    active_version = registry().active_version()
    with _lock:
        if _engine is None or _engine.version != active_version:
            _engine = _load(registry().path_of(active_version))
        return _engine


def _load(path: Path) -> InferenceEngine:
    from ml.inference import InferenceEngine, configure_tensorflow

    configure_tensorflow()
    log.info("loading model %s", path)
    engine = InferenceEngine.load(path)
    log.info("model %s ready", engine.version)
    return engine
