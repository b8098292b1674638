"""Site-wide response policy that applies to the API and the portal alike."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers


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
