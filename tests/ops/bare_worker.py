"""A Celery app with the project's broker settings but not its task module.

Readiness and Flower only need a live worker that answers remote control on a
queue; this one runs without the `ml` package (and TensorFlow), so those tests
run on any machine. The full worker is exercised in tests/integration/.
"""

from __future__ import annotations

from celery import Celery

from workers.config import celery_settings

app = Celery("mri")
app.conf.update(celery_settings())
