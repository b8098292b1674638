"""Flower's configuration: `celery -A workers.flower_app flower --conf=workers/flowerconfig.py`.

Flower executes this file after reading its FLOWER_* environment variables, and
its command-line options win over both. Credentials come from the environment
only: `FLOWER_BASIC_AUTH=user:password[,user2:password2]`, or OAuth with
`FLOWER_AUTH` (a regex of allowed e-mails), `FLOWER_AUTH_PROVIDER`,
`FLOWER_OAUTH2_KEY`, `FLOWER_OAUTH2_SECRET`, `FLOWER_OAUTH2_REDIRECT_URI`
(docs/operations.md). Flower refuses to start with neither: its pages show every
worker and task and can shut workers down. A malformed number, or a basic-auth pair
with an empty user or password, stops it with one line naming the variable, not a
traceback.
"""

from __future__ import annotations

from workers.env import ConfigError, env_basic_auth, env_float, env_int, env_str

try:
    # An empty password (`ops:`, `:`) is no authentication at all, so it is refused too.
    # Not named `basic_auth`: Flower would read any name matching its options from this file.
    _basic_auth_pairs = env_basic_auth("FLOWER_BASIC_AUTH")
except ConfigError as exc:
    raise SystemExit(f"flower: {exc}") from None

if not (_basic_auth_pairs or env_str("FLOWER_AUTH")):
    raise SystemExit(
        "flower: set FLOWER_BASIC_AUTH=user:password (or FLOWER_AUTH with OAuth); "
        "it will not run without authentication"
    )

try:
    # Keep the task history across restarts (a shelve file; mount a volume in containers).
    persistent = True
    db = env_str("FLOWER_DB", "/var/lib/flower/flower.db")
    state_save_interval = 60_000  # milliseconds; also saved on a clean shutdown
    max_tasks = env_int("FLOWER_MAX_TASKS", 10_000, minimum=1)
    # Remote workers come and go; forget one a day after it went offline.
    purge_offline_workers = env_int("FLOWER_PURGE_OFFLINE_WORKERS", 86_400, minimum=1)
    # Inspecting workers in other clouds takes longer than the 1 s default.
    inspect_timeout = env_float("FLOWER_INSPECT_TIMEOUT", 3000.0, minimum=1)
except ConfigError as exc:
    raise SystemExit(f"flower: {exc}") from None
