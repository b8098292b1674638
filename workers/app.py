"""The Celery application. Workers run `celery -A workers.app worker`; the site sends by name."""

from __future__ import annotations

from celery import Celery

from workers.config import celery_settings
from workers.model_sync_settings import follows_site

# `include` is imported only by a worker process, so the site never loads TensorFlow.
# No fixups: Celery would set up Django in the worker whenever DJANGO_SETTINGS_MODULE
# happens to be set, and workers must run without the site's settings or database.
app = Celery("mri", include=["workers.tasks"], fixups=[])
app.conf.update(celery_settings())

# By name: the site imports this module and must not import the sync (it loads `ml`).
if follows_site():
    app.steps["worker"].add("workers.model_sync:ModelSyncStep")
