"""/healthz, /readyz and /metrics: plain Django views outside the API's auth and throttling."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from predictions.monitoring import health, metrics

LOOPBACK = {"127.0.0.1", "::1"}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving; touches nothing else, so a restart never cascades."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 or 503 with each check's ok; errors and worker names only to operators."""
    ready, checks = health.readiness()
    failed = [name for name, check in checks.items() if not check["ok"]]
    if not _may_see_details(request):
        # Worker host names and the database's or broker's address help an attacker map us.
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    body = {"status": "ready" if ready else "not ready", "failed": failed, "checks": checks}
    return JsonResponse(body, status=200 if ready else 503)


def _may_see_details(request: HttpRequest) -> bool:
    """Return whether the caller may scrape /metrics or is signed-in staff."""
    if _metrics_denied(request) is None:
        return True
    try:
        # Reads the session from the database, which may be the very thing that is down.
        return bool(request.user.is_authenticated and request.user.is_staff)
    except DatabaseError:
        return False


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if denied := _metrics_denied(request):
        return denied
    return HttpResponse(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)


def _metrics_denied(request: HttpRequest) -> HttpResponse | None:
    """Require the bearer METRICS_TOKEN; without one set, only direct loopback callers pass."""
    token = settings.METRICS_TOKEN
    if not token:
        direct = "HTTP_X_FORWARDED_FOR" not in request.META
        if direct and request.META.get("REMOTE_ADDR") in LOOPBACK:
            return None
        return HttpResponse("Set METRICS_TOKEN to scrape from another host.\n", status=403)
    given = request.headers.get("Authorization", "")
    if not given.startswith("Bearer "):
        response = HttpResponse("A bearer token is required.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not hmac.compare_digest(given.removeprefix("Bearer ").encode(), token.encode()):
        return HttpResponse("Wrong token.\n", status=403)
    return None
