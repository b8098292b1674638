from __future__ import annotations

from django.contrib import admin

from dicom.models import PacsConnection, Series, StowCredential, Study


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["public_id", "organisation", "study_date", "delivery_status", "created"]
    list_filter = ["organisation", "delivery_status"]
    readonly_fields = ["public_id", "study_instance_uid", "last_received", "delivered_at"]


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    list_display = ["public_id", "modality", "body_part", "description", "refusal"]


@admin.register(PacsConnection)
class PacsConnectionAdmin(admin.ModelAdmin):
    list_display = ["organisation", "protocol", "url", "host", "port", "enabled"]


@admin.register(StowCredential)
class StowCredentialAdmin(admin.ModelAdmin):
    """Credentials are issued with `manage.py create_stow_credential`; here they are revoked."""

    list_display = ["username", "organisation", "created", "revoked"]
    readonly_fields = ["username", "organisation", "secret_sha256", "created"]

    def has_add_permission(self, request: object) -> bool:
        return False
