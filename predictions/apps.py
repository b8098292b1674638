from __future__ import annotations

import os
from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class PredictionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "predictions"
    verbose_name = "MRI predictions"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth import signals

        from predictions import audit
        from predictions.api import schema  # noqa: F401  (registers the API token's scheme)

        signals.user_logged_in.connect(audit.on_logged_in, dispatch_uid="audit-login")
        signals.user_logged_out.connect(audit.on_logged_out, dispatch_uid="audit-logout")
        signals.user_login_failed.connect(audit.on_login_failed, dispatch_uid="audit-failed")
        user_locked_out.connect(audit.on_locked_out, dispatch_uid="audit-locked-out")
        connection_created.connect(keep_sqlite_private, dispatch_uid="sqlite-0600")


def keep_sqlite_private(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Make the SQLite database file readable by the site's user alone (0600).

    SQLite creates it with the process umask (usually 0644: every local user could copy the
    patient data); its journal files take the database file's mode.
    """
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict["NAME"])
    in_memory = name.startswith(":memory:") or "mode=memory" in name
    if name and not in_memory and os.path.exists(name) and os.stat(name).st_mode & 0o077:
        os.chmod(name, 0o600)
