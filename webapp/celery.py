"""The site's handle on the Celery application: it sends tasks by name and inspects workers.

The site's connections to the broker get time limits (BROKER_CONNECT_TIMEOUT,
BROKER_SOCKET_TIMEOUT) that the workers' do not: a request must never wait long on
the broker, while a worker's long-lived consumer has kombu's own health checks.
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
