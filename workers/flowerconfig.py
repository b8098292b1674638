"""Flower's configuration: `celery -A workers.flower_app flower --conf=workers/flowerconfig.py`.

Flower executes this file after reading its FLOWER_* environment variables, and
its command-line options win over both. Credentials come from the environment
only: `FLOWER_BASIC_AUTH=user:password[,user2:password2]`, or OAuth with
`FLOWER_AUTH` (a regex of allowed e-mails), `FLOWER_AUTH_PROVIDER`,
`FLOWER_OAUTH2_KEY`, `FLOWER_OAUTH2_SECRET`, `FLOWER_OAUTH2_REDIRECT_URI`
(docs/operations.md). Flower refuses to start with neither: its pages show every
worker and task and can shut workers down.
"""

from __future__ import annotations

import os

if not (os.environ.get("FLOWER_BASIC_AUTH") or os.environ.get("FLOWER_AUTH")):
    raise SystemExit(
        "flower: set FLOWER_BASIC_AUTH=user:password (or FLOWER_AUTH with OAuth); "
        "it will not run without authentication"
    )

# Keep the task history across restarts (a shelve file; mount a volume in containers).
persistent = True
db = os.environ.get("FLOWER_DB", "/var/lib/flower/flower.db")
state_save_interval = 60_000  # milliseconds; also saved on a clean shutdown
max_tasks = int(os.environ.get("FLOWER_MAX_TASKS", "10000"))
# Remote workers come and go; forget one a day after it went offline.
purge_offline_workers = int(os.environ.get("FLOWER_PURGE_OFFLINE_WORKERS", "86400"))
# Inspecting workers in other clouds takes longer than the 1 s default.
inspect_timeout = float(os.environ.get("FLOWER_INSPECT_TIMEOUT", "3000"))
