"""Brute-force defences shared by the portal, the admin, the API and the worker endpoints.

Passwords are counted by django-axes (in the database, so every web process sees every
failure); API tokens and worker secrets by `AuthFailureLimit`, and API traffic by the
throttles below, in the `security` cache (a database table by default, for the same
reason). All limits come from settings (docs/operations.md, "Brute force").
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connections, router
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.connection import ConnectionProxy
from rest_framework.exceptions import Throttled
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

if TYPE_CHECKING:
    # DRF loads the throttles named in its settings while `rest_framework.views` imports.
    from rest_framework.request import Request
    from rest_framework.views import APIView

SECURITY_CACHE = "security"


def client_ip(request: HttpRequest | Request) -> str:
    """Return the caller's address: REMOTE_ADDR, or what the trusted proxies in front saw.

    Each of the TRUSTED_PROXY_COUNT proxies appends the address it received the request
    from to X-Forwarded-For, so the one they vouch for is that many entries from the end;
    anything further left was written by the client and proves nothing.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if proxies and forwarded:
        return forwarded[-min(proxies, len(forwarded))]
    return str(request.META.get("REMOTE_ADDR", ""))


class LoginLockoutBackend(AxesStandaloneBackend):
    """Axes' lockout check for logins over HTTP; `authenticate()` without a request passes.

    Only requests can be brute-forced; management commands and the shell call
    `authenticate()` without one, which plain axes refuses outright.
    """

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is not None:
            super().authenticate(request, *args, **kwargs)  # raises when locked out


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any
) -> HttpResponse:
    """Answer a locked-out login with 429, the wait in Retry-After and on the page."""
    retry_after = int(settings.AXES_COOLOFF_TIME.total_seconds())
    context = {"minutes": max(1, round(retry_after / 60))}
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(retry_after)
    return response


class AuthFailureLimit:
    """Refuse an address that failed `limit` times within `window_s`; count its failures.

    One fixed window per address and scope: the first failure opens it, and the
    address is refused until it ends.
    """

    def __init__(self, scope: str, limit: int, window_s: int) -> None:
        self.scope, self.limit, self.window_s = scope, limit, window_s

    def check(self, request: Request) -> None:
        """Raise `Throttled` (429 with Retry-After) if the caller's address is over the limit."""
        failures, window_end = self._state(request)
        if failures >= self.limit:
            wait = max(1, int(window_end - time.time()))
            # DRF adds "Expected available in <wait> seconds." and the Retry-After header.
            raise Throttled(
                wait, detail="Too many failed authentication attempts from your address."
            )

    def record_failure(self, request: Request) -> None:
        failures, window_end = self._state(request)
        now = time.time()
        if failures == 0:
            window_end = now + self.window_s
        timeout = max(1, int(window_end - now))
        caches[SECURITY_CACHE].set(self._key(request), (failures + 1, window_end), timeout)

    def _state(self, request: Request) -> tuple[int, float]:
        failures, window_end = caches[SECURITY_CACHE].get(self._key(request), (0, 0.0))
        if window_end < time.time():
            return 0, 0.0
        return int(failures), float(window_end)

    def _key(self, request: Request) -> str:
        return f"auth-failures:{self.scope}:{client_ip(request)}"


def delete_expired_counters() -> int:
    """Delete the security cache's expired entries; return how many.

    Django removes them only when the table passes MAX_ENTRIES, which settings put out of
    reach so that live counters are never culled; the sweeper calls this instead.
    """
    cache = caches[SECURITY_CACHE]
    if not isinstance(cache, DatabaseCache):
        return 0  # Other backends expire entries themselves.
    connection = connections[router.db_for_write(cache.cache_model_class)]
    location: str = settings.CACHES[SECURITY_CACHE]["LOCATION"]  # type: ignore[index]
    table = connection.ops.quote_name(location)
    expires = connection.ops.quote_name("expires")
    now = connection.ops.adapt_datetimefield_value(timezone.now().replace(microsecond=0))
    with connection.cursor() as cursor:
        # Quoted names from settings, the value a parameter: Django's own _cull does the same.
        cursor.execute(f"DELETE FROM {table} WHERE {expires} < %s", [now])  # noqa: S608
        return int(cursor.rowcount)


def token_failure_limit() -> AuthFailureLimit:
    return AuthFailureLimit(
        "api-token", settings.AUTH_FAILURE_LIMIT, settings.AUTH_FAILURE_WINDOW_S
    )


def worker_failure_limit() -> AuthFailureLimit:
    return AuthFailureLimit(
        "worker-secret", settings.WORKER_AUTH_FAILURE_LIMIT, settings.AUTH_FAILURE_WINDOW_S
    )


class _SecurityCacheThrottle(SimpleRateThrottle):
    cache = ConnectionProxy(caches, SECURITY_CACHE)  # type: ignore[assignment]

    def get_rate(self) -> str | None:
        # Read per request, not once at import (DRF's default), so settings can change it.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(str(self.scope))
        return str(rate) if rate else None

    def get_ident(self, request: Request) -> str:
        return client_ip(request)


class ApiUserThrottle(_SecurityCacheThrottle):
    """API requests per signed-in user (API_THROTTLE_USER), whatever address they come from."""

    scope = "user"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None  # Anonymous callers are counted by address alone.
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class ApiAddressThrottle(_SecurityCacheThrottle):
    """API requests per client address (API_THROTTLE_IP), signed in or not."""

    scope = "ip"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
