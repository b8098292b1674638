"""`manage.py check --deploy` is clean with the documented production settings (.env.example
with a real secret key), and names what is missing without them."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def production_env() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    # The example's placeholders are what `check --deploy` must reject: use real secrets.
    return env | {"SECRET_KEY": secrets.token_urlsafe(50), "WORKER_SECRET": secrets.token_hex(32)}


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    env = env | {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_documented_production_settings() -> None:
    done = check_deploy(production_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_check_deploy_names_what_plain_http_leaves_out() -> None:
    env = production_env() | {"SITE_BEHIND_TLS": "false"}
    for name in ("SECURE_SSL_REDIRECT", "SECURE_COOKIES", "HSTS_SECONDS"):
        env.pop(name)
    done = check_deploy(env)
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr
