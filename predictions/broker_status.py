"""The broker's state as last seen by the sweeper, so that no page waits on the broker.

`sweep_jobs --loop` calls `refresh()` every BROKER_STATUS_INTERVAL seconds; the
dashboard reads `latest()`, one row from the database, whatever the broker does.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from predictions import broker
from predictions.models import BrokerStatus

_ROW = 1


def refresh() -> BrokerStatus:
    """Ask the broker for its queue depths and the workers answering; store and return that."""
    queues = sorted({settings.INFERENCE_QUEUE, settings.CPU_QUEUE})
    seen: dict[str, object] = {"reachable": True, "error": ""}
    try:
        seen["queue_depths"] = broker.queue_depths(queues)
        seen["workers"] = sorted(broker.worker_queues(timeout_s=settings.READYZ_WORKER_TIMEOUT))
    except broker.BrokerUnavailable as exc:
        seen = {"reachable": False, "error": str(exc)[:500], "queue_depths": {}, "workers": []}
    status, _ = BrokerStatus.objects.update_or_create(
        pk=_ROW, defaults={"checked_at": timezone.now(), **seen}
    )
    return status


def latest() -> BrokerStatus | None:
    """Return the last stored picture of the broker, or None when none was taken yet."""
    return BrokerStatus.objects.filter(pk=_ROW).first()


def is_stale(status: BrokerStatus) -> bool:
    """Whether the picture is older than a few refreshes: the sweeper may not be running."""
    age_s = (timezone.now() - status.checked_at).total_seconds()
    return age_s > 3 * settings.BROKER_STATUS_INTERVAL + 10
