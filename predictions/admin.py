from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from predictions.models import (
    AuditEvent,
    Job,
    Membership,
    Organisation,
    Patient,
    Prediction,
    Review,
    Scan,
    ScanCorrection,
)


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "hide_model_until_review", "time_zone", "created"]
    search_fields = ["name"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organisation"]
    list_select_related = ["user", "organisation"]


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["external_id", "organisation", "created"]
    list_filter = ["organisation"]
    search_fields = ["external_id", "public_id"]
    readonly_fields = ["public_id"]


@admin.register(Scan)
class ScanAdmin(admin.ModelAdmin):
    list_display = ["public_id", "patient", "content_type", "width", "height", "created"]
    search_fields = ["public_id", "sha256"]
    readonly_fields = ["public_id", "sha256", "image"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "status",
        "queue",
        "attempts",
        "worker",
        "model_version",
        "created",
    ]
    list_filter = ["status", "queue", "model_version"]
    search_fields = ["public_id", "worker"]
    readonly_fields = ["public_id"]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["job", "label", "model_version", "inference_ms", "created"]
    list_filter = ["label", "model_version"]


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["job", "label", "confirmed", "reviewed_by", "reviewed_at"]
    list_filter = ["label", "confirmed"]
    list_select_related = ["job", "reviewed_by"]
    readonly_fields = ["job", "reviewed_by", "reviewed_at"]


@admin.register(ScanCorrection)
class ScanCorrectionAdmin(admin.ModelAdmin):
    """Moves and voids are made in the portal, with a reason; here they are only read."""

    list_display = ["scan", "kind", "from_patient", "to_patient", "corrected_by", "corrected_at"]
    list_select_related = ["scan", "from_patient", "to_patient", "corrected_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only for everyone, superusers included."""

    list_display = ["created", "username", "action", "outcome", "object_type", "ip_address"]
    list_filter = ["action", "outcome", "organisation"]
    search_fields = ["username", "object_id", "patient", "ip_address"]
    date_hierarchy = "created"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# The model rollout (superusers only): its own module, so it reads as one feature.
from predictions import model_release_admin  # noqa: E402, F401
