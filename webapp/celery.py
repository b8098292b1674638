"""The site's handle on the Celery application: it sends tasks by name and inspects workers."""

from __future__ import annotations

from workers.app import app

__all__ = ["app"]
