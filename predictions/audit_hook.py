"""The one place where the portal and the API say that a scan was moved or voided or a result
reviewed, for the audit log.

Kept to a single function so the audit log (a separate change: `record(request, action, obj)`)
is wired here once. Until then it logs the action with opaque ids only: no patient data.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest
from rest_framework.request import Request

log = logging.getLogger(__name__)


def audit(request: HttpRequest | Request, action: str, obj: object) -> None:
    """Note that the caller did `action` ("scan.move", "scan.void", "review.create") to `obj`."""
    # AUDIT: wire the audit log here, e.g. `audit_log.record(request, action, obj)`.
    public_id = getattr(obj, "public_id", None) or getattr(obj, "pk", None)
    log.info("%s %s by user %s", action, public_id, getattr(request.user, "pk", None))
