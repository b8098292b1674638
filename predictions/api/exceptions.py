"""The API's exception handler: DRF's, plus a JSON 503 when the database is unreachable."""

from __future__ import annotations

import logging
from typing import Any

from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class DatabaseUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Database unavailable: try again shortly."
    default_code = "database_unavailable"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Return DRF's response for `exc`, a 503 for a lost database, or None (a 500) otherwise.

    API clients parse JSON, so an outage must not reach them as Django's HTML 500 page.
    """
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The traceback still goes to the logs: only the client's answer changes.
        logger.error("Database unavailable during an API request", exc_info=exc)
        exc = DatabaseUnavailable()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, DatabaseUnavailable):
        response["Retry-After"] = "30"
    return response
