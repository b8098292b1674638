from __future__ import annotations

from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "predictions"
    verbose_name = "MRI predictions"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth import signals

        from predictions import audit

        signals.user_logged_in.connect(audit.on_logged_in, dispatch_uid="audit-login")
        signals.user_logged_out.connect(audit.on_logged_out, dispatch_uid="audit-logout")
        signals.user_login_failed.connect(audit.on_login_failed, dispatch_uid="audit-failed")
        user_locked_out.connect(audit.on_locked_out, dispatch_uid="audit-locked-out")
