"""Start-up checks for a worker host: the broker, the site and the model, each in a few seconds.

A worker that starts with a wrong password or an unreachable site would sit in
Flower looking healthy while every job it takes fails. These checks run before
Celery starts and say in one line what is wrong.

The model is loaded in a child process (`python -m workers.preflight`), never
here: the Celery parent forks its pool later, and TensorFlow is not fork-safe.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import redis

from ml.registry import default_registry_root
from workers.config import ConfigError, broker_url, celery_settings, masked_url
from workers.env import env_str
from workers.model_sync_settings import follows_site
from workers.web_client import SiteClient, SiteError

BROKER_TIMEOUT_S = 5.0
SITE_TIMEOUT_S = 10.0
MODEL_TIMEOUT_S = 300.0
# A secret no deployment uses: the real site must refuse it.
_WRONG_SECRET = "preflight-deliberately-wrong-secret"  # noqa: S105


class PreflightError(Exception):
    """One check failed; `check` names it (broker, site, model)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


@dataclass(frozen=True)
class Answer:
    """What a check found: a line for the operator and, where there is one, a version."""

    detail: str
    version: str = ""


@dataclass(frozen=True)
class Passed:
    check: str
    detail: str
    seconds: float
    version: str = ""  # the broker's Redis version, the model's version; "" for the site


def check_broker(environ: Mapping[str, str], timeout_s: float = BROKER_TIMEOUT_S) -> Answer:
    """Connect to the broker and PING it; return the server's version."""
    try:
        url = broker_url(environ)
        tls = celery_settings(environ).get("broker_use_ssl") or {}
    except ConfigError as exc:
        raise PreflightError("broker", str(exc)) from exc
    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, **tls
    )
    try:
        client.ping()
        version = str(client.info("server").get("redis_version", "?"))
    except redis.AuthenticationError as exc:
        raise PreflightError(
            "broker", f"{masked_url(url)} refused the password in the broker URL ({exc})"
        ) from exc
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        hint = _tls_hint(exc, url.startswith("rediss://"))
        raise PreflightError("broker", f"cannot reach {masked_url(url)}: {hint}") from exc
    except redis.RedisError as exc:
        raise PreflightError("broker", f"{masked_url(url)} answered with an error: {exc}") from exc
    finally:
        client.close()
    return Answer(f"Redis {version} at {masked_url(url)}", version)


def _tls_hint(exc: Exception, tls: bool) -> str:
    text = str(exc) or type(exc).__name__
    if tls and ("certificate" in text.lower() or "ssl" in text.lower()):
        text += " (check BROKER_TLS_CA_FILE and the host name in the server's certificate)"
    elif tls:
        text += " (does this port speak TLS? rediss:// needs Redis's tls-port)"
    return text


def check_site(environ: Mapping[str, str], timeout_s: float = SITE_TIMEOUT_S) -> Answer:
    """Prove the site answers, accepts WORKER_SECRET and refuses a wrong one."""
    site_url = env_str("SITE_URL", "", environ)
    try:
        client = SiteClient.from_environment(environ, timeout_s)
    except ValueError as exc:  # ConfigError is one too
        raise PreflightError("site", str(exc)) from exc
    try:
        client.check()
    except SiteError as exc:
        if exc.permanent:
            raise PreflightError(
                "site", f"{site_url} refused WORKER_SECRET (it differs from the site's): {exc}"
            ) from exc
        raise PreflightError("site", f"cannot reach {site_url}: {exc}") from exc
    try:
        SiteClient(site_url, _WRONG_SECRET, timeout_s=timeout_s).check()
    except SiteError:
        return Answer(f"{site_url} accepts WORKER_SECRET")
    raise PreflightError(
        "site", f"{site_url} accepts any secret: SITE_URL does not point at the MRI site"
    )


def check_model(environ: Mapping[str, str], timeout_s: float = MODEL_TIMEOUT_S) -> Answer:
    """Load the active model in a child process, as a pool process will; return its version.

    A worker following the site's model (MODEL_SOURCE=site) first fetches the version the
    site serves; when it cannot, it starts with the one it has, if any, and says why.
    """
    registry_dir = environ.get("MODEL_REGISTRY_DIR", "")
    if follows_site(environ):
        Path(registry_dir or default_registry_root()).mkdir(parents=True, exist_ok=True)
        sync_from_site(environ)
    elif registry_dir and not Path(registry_dir).is_dir():
        raise PreflightError("model", f"MODEL_REGISTRY_DIR={registry_dir} is not a folder")
    command = [sys.executable, "-m", "workers.preflight"]
    try:
        child = subprocess.run(
            command, env=dict(environ), capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        raise PreflightError("model", f"loading took longer than {timeout_s:.0f} s") from exc
    lines = child.stdout.strip().splitlines() or [""]
    if child.returncode == 0 and lines[-1].startswith("{"):
        version = str(json.loads(lines[-1])["version"])
        return Answer(f"model {version} loads", version)
    error = next((line for line in reversed(lines) if line.startswith("error: ")), "")
    if not error:
        stderr = child.stderr.strip().splitlines()
        error = stderr[-1] if stderr else f"exit status {child.returncode}"
    raise PreflightError("model", error.removeprefix("error: "))


def sync_from_site(environ: Mapping[str, str]) -> None:
    from ml.registry import ModelRegistry
    from workers.model_sync import ModelSync

    registry = ModelRegistry(environ.get("MODEL_REGISTRY_DIR") or None)
    sync = ModelSync(SiteClient.from_environment(environ), registry, "", report=False)
    state = sync.check()
    if state.error and not state.serving:
        reason = f"no model here, and the site's cannot be fetched: {state.error}"
        raise PreflightError("model", reason)


def run_checks(
    environ: Mapping[str, str],
    model: bool = True,
    report: Callable[[Passed], None] = lambda passed: None,
) -> list[Passed]:
    """Run the checks in order, `report` each pass, stop at the first failure (PreflightError)."""
    checks: list[tuple[str, Callable[[Mapping[str, str]], Answer]]] = [
        ("broker", check_broker),
        ("site", check_site),
    ]
    if model:
        checks.append(("model", check_model))
    passed: list[Passed] = []
    for name, check in checks:
        started = time.monotonic()
        answer = check(environ)
        passed.append(Passed(name, answer.detail, time.monotonic() - started, answer.version))
        report(passed[-1])
    return passed


def load_model_in_this_process() -> int:
    """The child side of `check_model`: load the model and print its version as JSON."""
    try:
        from workers import model_loader

        engine = model_loader.current_engine()
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", flush=True)
        return 1
    print(json.dumps({"version": engine.version}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(load_model_in_this_process())
