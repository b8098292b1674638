"""Site-wide response policy that applies to the API and the portal alike."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from predictions.models import organisation_of


class NoStoreMiddleware:
    """Mark every dynamic response `Cache-Control: no-store` unless the view chose a policy.

    Pages, JSON and images carry patient data, and a browser's or proxy's cache outlives
    the session that fetched them. Static files never reach this (WhiteNoise answers them
    earlier in MIDDLEWARE), so they stay cacheable.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response


class OrganisationTimeZoneMiddleware:
    """Show every time in the caller's organisation's zone (the site's TIME_ZONE by default).

    Pages and live rows are rendered by the same templates on the server, so they agree;
    "today" on the dashboard starts at midnight in that zone.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        try:
            organisation = organisation_of(getattr(request, "user", None))
        except DatabaseError:
            # No database, no session: the view answers that (a 503), not this middleware.
            organisation = None
        if organisation is not None and organisation.time_zone:
            timezone.activate(zoneinfo.ZoneInfo(organisation.time_zone))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
