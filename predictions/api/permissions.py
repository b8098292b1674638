from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.permissions import BasePermission

from predictions.models import organisation_of

if TYPE_CHECKING:
    # DRF imports this module (DEFAULT_PERMISSION_CLASSES) while `rest_framework.views` loads.
    from rest_framework.request import Request
    from rest_framework.views import APIView


class IsOrganisationMember(BasePermission):
    """Signed-in users who belong to an organisation; every queryset is then scoped to it."""

    message = "Your account does not belong to an organisation."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return organisation_of(request.user) is not None
