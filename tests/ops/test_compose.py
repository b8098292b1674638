"""Every compose file parses with Debian's docker-compose (v1.29) and the current Compose spec.

Neither needs a Docker engine. A validator that is not installed skips its test
with the reason; scripts/test.sh installs both when CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CENTRAL = ["docker-compose.yml"]
CENTRAL_TLS = ["docker-compose.yml", "docker-compose.tls.yml"]
REMOTE = ["docker-compose.worker.yml"]
ALL_FILES = ["docker-compose.yml", "docker-compose.tls.yml", "docker-compose.worker.yml"]
ENV = {
    "SECRET_KEY": "k",
    "WORKER_SECRET": "w",
    "POSTGRES_PASSWORD": "p",
    "REDIS_PASSWORD": "r",
    "FLOWER_BASIC_AUTH": "ops:f",
    "CELERY_BROKER_URL": "rediss://:r@broker.example.org:6380/0",
    "SITE_URL": "https://mri.example.org",
    "WORKER_HOST_LABEL": "aws-eu-1",
}


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"{name} is not installed (scripts/test.sh installs it when CI=true)")
    return found


def compose_config(tmp_path: Path, files: list[str], env: dict[str, str]) -> Any:
    """Run `docker-compose config -q` on copies of `files` next to a .env holding `env`."""
    for name in files:
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    command = [tool("docker-compose")] + [arg for name in files for arg in ("-f", name)]
    # Only the .env speaks: the test process itself has SECRET_KEY and friends set.
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    return subprocess.run(
        [*command, "config", "-q"],
        cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("files", [CENTRAL, CENTRAL_TLS, REMOTE], ids=["central", "tls", "remote"])
def test_docker_compose_v1_accepts_the_file(tmp_path: Path, files: list[str]) -> None:
    done = compose_config(tmp_path, files, ENV)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("missing", ["REDIS_PASSWORD", "SECRET_KEY", "FLOWER_BASIC_AUTH"])
def test_the_central_stack_refuses_to_start_without_a_secret(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    done = compose_config(tmp_path, CENTRAL, env)
    assert done.returncode != 0
    assert f"set {missing}" in done.stderr


def test_every_file_follows_the_compose_spec() -> None:
    command = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    done = subprocess.run(
        command + [str(ROOT / name) for name in ALL_FILES],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def load(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / name).read_text()))


def test_flower_is_published_on_the_loopback_only_and_redis_not_at_all() -> None:
    services = load("docker-compose.yml")["services"]
    assert all(port.startswith("127.0.0.1:") for port in services["flower"]["ports"])
    assert "ports" not in services["redis"]
    assert "--appendonly yes" in services["redis"]["command"]


def test_gpu_workers_reserve_one_gpu_and_cpu_workers_none() -> None:
    for name in ("docker-compose.yml", "docker-compose.worker.yml"):
        services = load(name)["services"]
        devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
        assert services["worker-gpu"]["environment"]["WORKER_CONCURRENCY"] == "1"
        assert "deploy" not in services["worker-cpu"]
        assert services["worker-cpu"]["profiles"] == ["cpu"]


def test_the_example_env_file_holds_every_variable_the_central_stack_needs(
    tmp_path: Path,
) -> None:
    example = (ROOT / ".env.example").read_text().splitlines()
    env = dict(line.split("=", 1) for line in example if line and not line.startswith("#"))
    done = compose_config(tmp_path, CENTRAL, env)
    assert done.returncode == 0, done.stderr


def test_nginx_fronts_the_site_and_the_web_container_is_not_published() -> None:
    services = load("docker-compose.yml")["services"]
    assert "ports" not in services["web"]
    nginx = services["nginx"]
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert nginx["depends_on"]["web"]["condition"] == "service_healthy"
    assert all(port.endswith((":8080", ":8443")) for port in nginx["ports"])


def test_the_nginx_config_buffers_limits_and_keeps_query_strings_out_of_its_log() -> None:
    config = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    for directive in (
        "client_max_body_size 21m;",
        "proxy_request_buffering on;",
        "client_body_timeout 30s;",
        "client_header_timeout 15s;",
        "proxy_read_timeout 60s;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "access_log /dev/stdout no_query;",
    ):
        assert directive in config
    # $request and $request_uri carry the query string; $uri does not.
    assert "$request " not in config and "$request_uri" not in config.split("log_format")[1][:300]
    assert "$http_referer" not in config


def test_the_site_behind_nginx_runs_https_only_and_trusts_one_proxy() -> None:
    environment = load("docker-compose.yml")["x-app"]["environment"]
    assert environment["SITE_BEHIND_TLS"] == "${SITE_BEHIND_TLS:-true}"
    assert environment["BEHIND_TLS_PROXY"] == "${BEHIND_TLS_PROXY:-true}"
    assert environment["TRUSTED_PROXY_COUNT"] == "${TRUSTED_PROXY_COUNT:-1}"
