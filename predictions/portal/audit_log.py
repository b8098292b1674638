"""The organisation's audit log for its staff: a filterable, paginated page and a CSV export.

Open to users holding `predictions.view_auditevent` (a superuser, or staff given the
permission or a group holding it), and only ever their own organisation's events.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

import django_filters
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from predictions import audit
from predictions.models import AuditEvent
from predictions.portal.views import _organisation

EVENTS_PER_PAGE = 50
CSV_COLUMNS = [
    "created",
    "username",
    "action",
    "outcome",
    "object_type",
    "object_id",
    "patient",
    "ip_address",
    "user_agent",
    "detail",
]


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.ChoiceFilter(choices=AuditEvent.Action.choices, empty_label="Any")
    outcome = django_filters.ChoiceFilter(choices=AuditEvent.Outcome.choices, empty_label="Any")
    username = django_filters.CharFilter(lookup_expr="iexact", label="User")
    patient = django_filters.UUIDFilter(label="Patient id")
    since = django_filters.DateFilter(field_name="created", lookup_expr="date__gte", label="From")
    until = django_filters.DateFilter(field_name="created", lookup_expr="date__lte", label="To")

    class Meta:
        model = AuditEvent
        fields = ["action", "outcome", "username", "patient", "since", "until"]


@login_required
@permission_required("predictions.view_auditevent", raise_exception=True)
@require_GET
def audit_log(request: HttpRequest) -> HttpResponseBase:
    events = AuditEventFilter(request.GET, queryset=audit.visible_events(_organisation(request)))
    if request.GET.get("format") == "csv":
        return _csv(request, events.qs)
    page = Paginator(events.qs, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"filter": events, "page": page, "query": query.urlencode()}
    return render(request, "predictions/audit_log.html", context)


def _csv(request: HttpRequest, events: QuerySet[AuditEvent]) -> StreamingHttpResponse:
    """Stream the filtered events as CSV; exporting the log is itself an audited event."""
    audit.record(request, AuditEvent.Action.EXPORT_AUDIT_LOG, detail=request.GET.urlencode())
    name = f"audit-log-{timezone.localdate():%Y%m%d}.csv"
    return StreamingHttpResponse(
        _csv_lines(events),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(events: QuerySet[AuditEvent]) -> Iterator[Any]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events.iterator():
        row = [getattr(event, column) for column in CSV_COLUMNS]
        row[0] = event.created.isoformat()
        yield writer.writerow(["" if value is None else _safe(str(value)) for value in row])


def _safe(value: str) -> str:
    """Keep a spreadsheet from running a cell as a formula (user agents are the caller's)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value
