"""The model rollout in the admin: the site's versions with Promote and Roll back, and what
each worker following the site serves. Superusers only: a promotion changes the answer
every clinic gets, so it is not an organisation's staff decision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse

from ml.errors import ModelNotFoundError
from predictions.model_releases import active_release, release_of, site_registry
from predictions.models import WorkerModelState


@admin.register(WorkerModelState)
class WorkerModelStateAdmin(admin.ModelAdmin):
    list_display = ["worker", "serving", "wanted", "error", "reported_at"]
    readonly_fields = ["worker", "serving", "wanted", "error", "reported_at"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        own = [
            path("promote/", self.admin_site.admin_view(self.promote), name="model_promote"),
            path("rollback/", self.admin_site.admin_view(self.rollback), name="model_rollback"),
        ]
        return own + super().get_urls()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"model_versions": site_registry().versions(), **(extra_context or {})}
        return super().changelist_view(request, extra_context=context)

    def promote(self, request: HttpRequest) -> HttpResponse:
        return self._run(request, lambda: _promote(str(request.POST.get("version", ""))))

    def rollback(self, request: HttpRequest) -> HttpResponse:
        return self._run(request, _rollback)

    def _run(self, request: HttpRequest, action: Callable[[], str]) -> HttpResponse:
        if not self.has_module_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        try:
            messages.success(request, action())
        except ModelNotFoundError as exc:
            messages.error(request, str(exc))
        return HttpResponseRedirect(reverse("admin:predictions_workermodelstate_changelist"))


def _promote(version: str) -> str:
    release = release_of(version)  # packed before workers are told about it
    site_registry().promote(release.version)
    return f"Promoted {release.version}; every worker following the site will fetch it."


def _rollback() -> str:
    version = site_registry().rollback()
    active_release()
    return f"Rolled back to {version}."
