"""The Celery app Flower loads: the workers' settings without their task module.

`celery -A workers.app` imports `workers.tasks` (and the ML stack) in every
command; Flower only watches events and asks workers over the broker, so it
runs from this app and needs neither TensorFlow nor the model.
"""

from __future__ import annotations

from celery import Celery

from workers.config import celery_settings, cpu_queue, inference_queue

app = Celery("mri")
app.conf.update(celery_settings())


def configured_queues() -> set[str]:
    """Every queue a job can be sent to, whether or not a worker consumes it now."""
    return {inference_queue(), cpu_queue()}


def _list_every_queue() -> None:
    """Flower's Broker page and queue API list only the queues online workers consume, so a
    queue filling up with no worker on it (the one that most needs watching) is missing.
    Add the configured ones to that list."""
    try:
        from flower.views import BaseHandler
    except ImportError:  # imported outside Flower (tests of the settings)
        return
    workers_queues = BaseHandler.get_active_queue_names

    def every_queue_name(handler: BaseHandler) -> list[str]:
        return sorted(set(workers_queues(handler)) | configured_queues())

    BaseHandler.get_active_queue_names = every_queue_name


_list_every_queue()
