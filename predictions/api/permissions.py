from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from predictions.models import organisation_of


class IsOrganisationMember(BasePermission):
    """Signed-in users who belong to an organisation; every queryset is then scoped to it."""

    message = "Your account does not belong to an organisation."

    def has_permission(self, request: Any, view: Any) -> bool:
        return organisation_of(request.user) is not None
