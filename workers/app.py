"""The Celery application. Workers run `celery -A workers.app worker`; the site sends by name."""

from __future__ import annotations

from celery import Celery

from workers.config import celery_settings

# `include` is imported only by a worker process, so the site never loads TensorFlow.
app = Celery("mri", include=["workers.tasks"])
app.conf.update(celery_settings())
