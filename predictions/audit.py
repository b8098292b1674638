"""The audit trail: who looked at, downloaded, exported or changed patient data, and who
logged in, out or failed to, with when and from where.

Views call `record(request, action, obj)` once the access has happened; logins come in
through Django's auth signals and axes' lockout signal (connected in `apps.py`).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest
from rest_framework.request import Request

from predictions.models import (
    AuditEvent,
    Job,
    Organisation,
    Patient,
    Prediction,
    Review,
    Scan,
    organisation_of,
)
from predictions.security import client_ip

Action = AuditEvent.Action
Outcome = AuditEvent.Outcome
AuditedObject = Patient | Scan | Job | Prediction | Review


def record(
    request: HttpRequest | Request,
    action: str,
    obj: AuditedObject | None = None,
    *,
    outcome: str = Outcome.SUCCESS,
    detail: str = "",
    user: Any = None,
    object_id: str = "",
) -> AuditEvent:
    """Store one audit event for `request`; `obj` gives the object, its patient and clinic.

    `user` defaults to the request's; `object_id` names an object the caller could not
    see (a denied lookup). Costs one INSERT, plus a query when `obj` is a job whose scan
    is not loaded.
    """
    # None: the request's user; False: nobody (a failed login for an unknown name).
    user = user if user is not None else getattr(request, "user", None)
    signed_in = bool(getattr(user, "is_authenticated", False))
    event = AuditEvent(
        user=user if signed_in else None,
        username=user.get_username() if signed_in else "",
        organisation=organisation_of(user),
        action=action,
        outcome=outcome,
        detail=detail[:300],
        ip_address=client_ip(request) or None,
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        object_id=object_id,
    )
    if obj is not None:
        _describe(event, obj)
    event.save()
    return event


def _describe(event: AuditEvent, obj: AuditedObject) -> None:
    """Fill in the object's type and public id, its patient and its organisation."""
    job = obj.job if isinstance(obj, Prediction | Review) else obj
    patient = _patient_of(job)
    event.object_type = type(job).__name__.lower()
    event.object_id = str(job.public_id)
    event.patient = patient.public_id
    event.organisation_id = patient.organisation_id


def _patient_of(obj: Patient | Scan | Job) -> Patient:
    if isinstance(obj, Patient):
        return obj
    if isinstance(obj, Scan):
        return obj.patient
    return obj.scan.patient


def on_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None:
        record(request, Action.LOGIN, user=user)


def on_logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None and user is not None:
        record(request, Action.LOGOUT, user=user)


def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """Record a wrong password (or a locked-out try) under the user it named, if one exists."""
    if request is None:
        return
    tried = str(credentials.get(get_user_model().USERNAME_FIELD, ""))[:150]
    _record_for_username(request, Action.LOGIN_FAILED, tried, Outcome.FAILED)


def on_locked_out(
    sender: Any, request: HttpRequest | None, username: str | None, **kwargs: Any
) -> None:
    if request is not None:
        _record_for_username(request, Action.LOCKED_OUT, username or "", Outcome.DENIED)


def _record_for_username(request: HttpRequest, action: str, tried: str, outcome: str) -> None:
    """Record under the named account when it exists, so its clinic's staff see the event."""
    user = get_user_model().objects.filter(username=tried).select_related("membership").first()
    # An unknown name belongs to no clinic: such events are for superusers, in the admin.
    record(request, action, outcome=outcome, user=user or False, detail=f"user name: {tried}")


def visible_events(organisation: Organisation) -> Any:
    """Return the organisation's events, newest first, with their users loaded."""
    return AuditEvent.objects.filter(organisation=organisation).select_related("user")
