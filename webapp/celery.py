"""The site's handle on the Celery application: it sends tasks by name and inspects workers.

The site's connections to the broker get short time limits (BROKER_CONNECT_TIMEOUT,
BROKER_SOCKET_TIMEOUT, 1 s): a request must never wait long on the broker. A worker's are
longer (WORKER_BROKER_SOCKET_TIMEOUT, 10 s, in workers.config), as its long-lived consumer
also has kombu's own health checks.
"""

from __future__ import annotations

from django.conf import settings

from workers.app import app

app.conf.broker_connection_timeout = settings.BROKER_CONNECT_TIMEOUT
app.conf.broker_transport_options = {
    **app.conf.broker_transport_options,
    "socket_connect_timeout": settings.BROKER_CONNECT_TIMEOUT,
    "socket_timeout": settings.BROKER_SOCKET_TIMEOUT,
}

__all__ = ["app"]
