from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from workers.env import ConfigError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
try:
    application = get_wsgi_application()
except ConfigError as exc:
    # A malformed variable: one line that names it, not a traceback in every worker's log.
    raise SystemExit(f"configuration: {exc}") from None
