"""The Celery app Flower loads: the workers' settings without their task module.

`celery -A workers.app` imports `workers.tasks` (and the ML stack) in every
command; Flower only watches events and asks workers over the broker, so it
runs from this app and needs neither TensorFlow nor the model.
"""

from __future__ import annotations

from celery import Celery

from workers.config import celery_settings

app = Celery("mri")
app.conf.update(celery_settings())
