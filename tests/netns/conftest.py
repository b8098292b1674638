"""A central site (gunicorn, sweeper, Flower, Redis with a TLS port) in the test's own
network namespace, and two "clouds" (namespaces behind veth pairs and an 80 ms delaying
proxy) whose workers join it as remote workers do: `python -m workers`, rediss://, HTTP.

Everything runs as separate processes, configured by environment variables only, exactly
as on real hosts; nothing is shared with the pytest process but the file system.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

import tests.images
from tests.netns.network import Certificates, Cloud, DelayProxy, make_certificates, namespaces_work
from webapp.local_redis import free_port, port_is_open, redis_executable
from webapp.runstack import flower_command

ROOT = Path(__file__).resolve().parents[2]
WORKER_SECRET = "netns-worker-secret"
REDIS_PASSWORD = "netns-redis-password"
FLOWER_AUTH = ("ops", "netns-flower-password")
ONE_WAY_DELAY_S = 0.040  # 80 ms added to every round trip between a cloud and the centre
# Limits short enough that a job held behind a cut link comes back within a minute, long
# enough that a job (a model switch included) never hits them on a loaded 2-core machine.
JOB_LIMITS = {
    "TASK_TIME_LIMIT": "30", "TASK_SOFT_TIME_LIMIT": "25", "BROKER_VISIBILITY_TIMEOUT": "40",
    "BROKER_RESTORE_INTERVAL": "2", "JOB_QUEUED_TIMEOUT": "60", "JOB_RUNNING_TIMEOUT": "60",
    "JOB_MAX_ATTEMPTS": "10",
}  # fmt: skip
VISIBILITY_TIMEOUT_S = int(JOB_LIMITS["BROKER_VISIBILITY_TIMEOUT"])


def host_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh host: nothing of the test run's broker or database."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("CELERY_", "REDIS_", "DATABASE_", "DJANGO_"))}  # fmt: skip
    return keep | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **JOB_LIMITS, **extra}


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def spawn(name: str, argv: list[str], env: dict[str, str], folder: Path) -> Service:
    log_path = folder / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    return Service(name, process, log_path)


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@dataclass
class Central:
    folder: Path
    certs: Certificates
    env: dict[str, str]
    redis_tls_port: int
    site_port: int
    flower_port: int
    services: list[Service] = field(default_factory=list)
    token: str = ""
    patient: str = ""

    @property
    def site_url(self) -> str:
        return f"http://127.0.0.1:{self.site_port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def api(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {self.token}"
        return session

    def submit(self, device: str) -> str:
        response = self.api().post(
            f"{self.site_url}/api/v1/scans/",
            files={"image": ("slice.png", tests.images.png_bytes(128, seed=random.randrange(10**6)),
                             "image/png")},
            data={"patient": self.patient, "device": device}, timeout=30,
        )  # fmt: skip
        assert response.status_code == 202, response.text
        return str(response.json()["job"]["url"])

    def job(self, url: str) -> dict[str, Any]:
        return dict(self.api().get(url, timeout=10).json())

    def predictions_per_job(self) -> dict[str, int]:
        code = ("import json; from django.db.models import Count; from predictions.models import "
                "Job; print(json.dumps({str(j.public_id): j.n for j in "
                "Job.objects.annotate(n=Count('prediction'))}))")  # fmt: skip
        import json

        return dict(json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def clouds() -> Iterator[dict[str, Cloud]]:
    if reason := namespaces_work():
        pytest.skip(reason)
    subnet = random.randrange(100, 250, 2)
    made: dict[str, Cloud] = {}
    try:
        made["cloud-a"] = Cloud.create("cloud-a", subnet)
        made["cloud-b"] = Cloud.create("cloud-b", subnet + 1)
        yield made
    finally:
        for cloud in made.values():
            cloud.destroy()


@pytest.fixture(scope="module")
def central(
    clouds: dict[str, Cloud], model_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Central]:
    folder = tmp_path_factory.mktemp("central")
    addresses = ["127.0.0.1", *(cloud.central_address for cloud in clouds.values())]
    certs = make_certificates(folder / "certs", addresses)
    redis_port, redis_tls_port = free_port(), free_port()
    tag = uuid.uuid4().hex[:6]
    env = host_env(
        DEBUG="false", SECRET_KEY=f"netns-test-{uuid.uuid4().hex}", ALLOWED_HOSTS="*",
        DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}", VAR_DIR=str(folder / "var"),
        MEDIA_ROOT=str(folder / "media"), WORKER_SECRET=WORKER_SECRET,
        CELERY_BROKER_URL=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_port}/0",
        INFERENCE_QUEUE=f"netns-gpu-{tag}", CPU_QUEUE=f"netns-cpu-{tag}",
        FLOWER_BASIC_AUTH=":".join(FLOWER_AUTH), MODEL_REGISTRY_DIR=str(model_registry),
    )  # fmt: skip
    site = Central(folder, certs, env, redis_tls_port, free_port(), free_port())
    try:
        # The central Redis: a plain port for the site, a TLS port for the clouds (as
        # docker-compose.tls.yml opens 6380), one password for both.
        redis_argv = [redis_executable(), "--port", str(redis_port), "--bind", "127.0.0.1",
                      "--tls-port", str(redis_tls_port), "--tls-cert-file", str(certs.server_cert),
                      "--tls-key-file", str(certs.server_key), "--tls-ca-cert-file", str(certs.ca),
                      "--tls-auth-clients", "no", "--requirepass", REDIS_PASSWORD,
                      "--save", "", "--appendonly", "no"]  # fmt: skip
        site.services.append(spawn("redis", redis_argv, env, folder))
        wait_until(lambda: port_is_open(redis_tls_port), 10, "Redis")
        site.manage("migrate", "--noinput", "-v", "0")
        demo = site.manage("create_demo", "--username", "netns", "--password", "netns-pass-1")
        site.token = demo.split("api token:")[1].split()[0]
        gunicorn = [sys.executable, "-m", "gunicorn", "webapp.wsgi", "--bind",
                    f"127.0.0.1:{site.site_port}", "--workers", "2", "--threads", "4"]  # fmt: skip
        site.services.append(spawn("site", gunicorn, env, folder))
        sweeper = [sys.executable, "manage.py", "sweep_jobs", "--loop", "--interval", "2"]
        site.services.append(spawn("sweeper", sweeper, env, folder))
        flower = flower_command(site.flower_port, folder / "flower.db")
        site.services.append(spawn("flower", flower, env, folder))
        wait_until(lambda: port_is_open(site.site_port), 60, "the site")
        wait_until(lambda: port_is_open(site.flower_port), 60, "Flower")
        created = site.api().post(f"{site.site_url}/api/v1/patients/",
                                  json={"external_id": "NETNS-1"}, timeout=30)  # fmt: skip
        assert created.status_code == 201, created.text
        site.patient = created.json()["id"]
        yield site
    finally:
        for service in reversed(site.services):
            service.stop()


@dataclass
class CloudLink:
    """How a cloud reaches the centre: through its delaying proxies on its veth address."""

    cloud: Cloud
    site_url: str
    broker_url: str
    proxies: list[DelayProxy]


@pytest.fixture(scope="module")
def links(clouds: dict[str, Cloud], central: Central) -> Iterator[dict[str, CloudLink]]:
    made: dict[str, CloudLink] = {}
    try:
        for name, cloud in clouds.items():
            site_port, broker_port = free_port(), free_port()
            host = cloud.central_address
            proxies = [
                DelayProxy(host, site_port, central.site_port, ONE_WAY_DELAY_S),
                DelayProxy(host, broker_port, central.redis_tls_port, ONE_WAY_DELAY_S),
            ]
            made[name] = CloudLink(
                cloud,
                f"http://{host}:{site_port}",
                f"rediss://:{REDIS_PASSWORD}@{host}:{broker_port}/0",
                proxies,
            )
        yield made
    finally:
        for link in made.values():
            for proxy in link.proxies:
                proxy.close()


@pytest.fixture(scope="module")
def model_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The central site's registry: two versions, tiny-a served. Workers start empty and
    follow the site (MODEL_SOURCE=site), as hosts in other clouds do."""
    from ml.registry import ModelRegistry
    from ml.testing import make_tiny_artefact

    root = tmp_path_factory.mktemp("site-models")
    for version in ("tiny-a", "tiny-b"):
        make_tiny_artefact(root, version)
    ModelRegistry(root).promote("tiny-a")
    return root


def worker_env(link: CloudLink, central: Central, **extra: str) -> dict[str, str]:
    return host_env(
        CELERY_BROKER_URL=link.broker_url, BROKER_TLS_CA_FILE=str(central.certs.ca),
        SITE_URL=link.site_url, WORKER_SECRET=WORKER_SECRET, WORKER_HOST_LABEL=link.cloud.name,
        MODEL_SOURCE="site", MODEL_SYNC_INTERVAL_S="2",
        MODEL_REGISTRY_DIR=str(central.folder / f"worker-models-{link.cloud.name}"),
        INFERENCE_QUEUE=central.env["INFERENCE_QUEUE"], CPU_QUEUE=central.env["CPU_QUEUE"],
        **extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cloud_workers(links: dict[str, CloudLink], central: Central) -> Iterator[dict[str, Service]]:
    """A GPU-role worker in cloud A and a CPU worker in cloud B, started as a host does."""
    roles = {"cloud-a": "gpu", "cloud-b": "cpu"}
    started: dict[str, Service] = {}
    try:
        for name, role in roles.items():
            link = links[name]
            env = worker_env(link, central, WORKER_ROLE=role)
            argv = link.cloud.command([sys.executable, "-m", "workers"])
            started[name] = spawn(f"worker-{name}", argv, env, central.folder)
        for service in started.values():
            wait_until(lambda s=service: " ready." in s.log() or s.process.poll() is not None,
                       240, f"{service.name} to start")  # fmt: skip
            assert service.process.poll() is None, service.log()[-3000:]
        yield started
    finally:
        for service in started.values():
            service.stop()
