"""The Kubernetes manifests (deploy/k8s), validated offline: there is no cluster here.

Every overlay must render with `kubectl kustomize`, every built-in object must match the
Kubernetes 1.32 API schema (kubernetes-validate, strict: unknown fields fail), every KEDA
object must match the schemas generated from KEDA's CRDs (an npm package, run by node),
and the manifests must keep the rules the operations guide promises.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("trial", "production", "remote-workers")
KUBERNETES_VERSION = "1.32.0"
KEDA_VALIDATOR = K8S / "validate"
IN_CI = os.environ.get("CI") == "true"

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed (kubectl kustomize renders)"
)


@cache
def rendered(overlay: str) -> str:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def objects(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered(overlay)) if doc]


def named(overlay: str, kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects(overlay) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{overlay}: expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def of_kind(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects(overlay) if o["kind"] == kind]


def pod_specs(overlay: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects(overlay):
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_built_in_objects_match_the_kubernetes_api_schema(overlay: str) -> None:
    import kubernetes_validate

    checked = 0
    for obj in objects(overlay):
        if obj["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 5


def test_the_schema_check_rejects_an_unknown_field() -> None:
    import kubernetes_validate

    deployment = named("trial", "Deployment", "mri-site")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.fixture(scope="module")
def keda_validator() -> Path:
    """The npm validator installed (once per lock file) outside the repository."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if IN_CI:
            pytest.fail("CI must validate KEDA objects: install nodejs and npm")
        pytest.skip("node and npm are needed to validate KEDA objects")
    lock = (KEDA_VALIDATOR / "package-lock.json").read_bytes()
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    folder = home / "mri-classifier" / f"keda-validate-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (folder / "node_modules").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json", "check-keda.mjs"):
            shutil.copy(KEDA_VALIDATOR / name, folder / name)
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
        if result.returncode != 0:
            shutil.rmtree(folder / "node_modules", ignore_errors=True)
            message = f"could not install the KEDA validator from npm: {result.stderr[-500:]}"
            pytest.fail(message) if IN_CI else pytest.skip(message)
    shutil.copy(KEDA_VALIDATOR / "check-keda.mjs", folder / "check-keda.mjs")
    return folder


def check_keda(validator: Path, stream: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(stream)
    return subprocess.run(
        ["node", "check-keda.mjs", str(manifest)], cwd=validator, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_objects_match_the_schemas_of_kedas_crds(
    overlay: str, keda_validator: Path, tmp_path: Path
) -> None:
    result = check_keda(keda_validator, rendered(overlay), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = len([o for o in objects(overlay) if o["apiVersion"].startswith("keda.sh/")])
    assert result.stdout.count("valid ") == expected >= 2


def test_the_keda_check_rejects_a_misspelt_field(keda_validator: Path, tmp_path: Path) -> None:
    scaled = named("production", "ScaledObject", "mri-worker-gpu")
    scaled["spec"]["minReplicas"] = scaled["spec"].pop("minReplicaCount")
    del scaled["spec"]["scaleTargetRef"]
    result = check_keda(keda_validator, yaml.safe_dump(scaled), tmp_path)
    assert result.returncode == 1
    assert "INVALID ScaledObject/mri-worker-gpu" in result.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_as_non_root_with_requests_and_limits(overlay: str) -> None:
    for where, spec in pod_specs(overlay):
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        for container in spec.get("initContainers", []) + spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where


@pytest.mark.parametrize("overlay", ("trial", "production"))
def test_the_site_is_probed_on_healthz_and_readyz_and_waits_for_migrations(overlay: str) -> None:
    spec = named(overlay, "Deployment", "mri-site")["spec"]["template"]["spec"]
    site = spec["containers"][0]
    assert site["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert site["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "migrate --check" in " ".join(spec["initContainers"][0]["command"])
    job = named(overlay, "Job", "mri-migrate")["spec"]["template"]["spec"]
    assert job["containers"][0]["command"][-2:] == ["migrate", "--noinput"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_get_a_grace_period_longer_than_the_longest_task(overlay: str) -> None:
    config = named(overlay, "ConfigMap", "mri-config")["data"]
    longest_task_s = int(config["TASK_TIME_LIMIT"])
    workers = [d for d in of_kind(overlay, "Deployment") if "worker" in d["metadata"]["name"]]
    assert workers
    for worker in workers:
        grace_s = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace_s > longest_task_s, worker["metadata"]["name"]


@pytest.mark.parametrize("overlay", ("production", "remote-workers"))
def test_a_gpu_worker_is_one_process_on_one_gpu(overlay: str) -> None:
    worker = named(overlay, "Deployment", "mri-worker-gpu")["spec"]["template"]["spec"]
    container = worker["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert env_of(container)["WORKER_CONCURRENCY"] == "1"
    assert env_of(container)["WORKER_ROLE"] == "gpu"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_worker_is_scaled_on_the_queue_it_consumes(overlay: str) -> None:
    config = named(overlay, "ConfigMap", "mri-config")["data"]
    queue_of_role = {"gpu": config["INFERENCE_QUEUE"], "cpu": config["CPU_QUEUE"]}
    workers = [d for d in of_kind(overlay, "Deployment") if "worker" in d["metadata"]["name"]]
    for worker in workers:
        name = worker["metadata"]["name"]
        role = env_of(worker["spec"]["template"]["spec"]["containers"][0])["WORKER_ROLE"]
        scaled = named(overlay, "ScaledObject", name)["spec"]
        assert scaled["scaleTargetRef"]["name"] == name
        (trigger,) = scaled["triggers"]
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["listName"] == queue_of_role[role]
        assert trigger["authenticationRef"]["name"] == "mri-broker"
        disruption = named(overlay, "PodDisruptionBudget", name)["spec"]
        assert disruption["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]


def test_remote_workers_run_nothing_but_workers_and_reach_the_broker_over_tls() -> None:
    kinds = {o["kind"] for o in objects("remote-workers")}
    assert kinds <= {"Namespace", "ConfigMap", "Deployment", "ScaledObject",
                     "TriggerAuthentication", "PodDisruptionBudget"}  # fmt: skip
    assert not of_kind("remote-workers", "Secret"), "secrets are created by the operator"
    config = named("remote-workers", "ConfigMap", "mri-config")["data"]
    assert config["SITE_URL"].startswith("https://")
    for worker in of_kind("remote-workers", "Deployment"):
        spec = worker["spec"]["template"]["spec"]
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert str(Path(config["BROKER_TLS_CA_FILE"]).parent) in mounts
    for scaled in of_kind("remote-workers", "ScaledObject"):
        assert scaled["spec"]["triggers"][0]["metadata"]["enableTLS"] == "true"
        assert scaled["spec"]["minReplicaCount"] == 0


def test_flower_is_not_exposed_outside_the_cluster_and_asks_for_a_password() -> None:
    for overlay in ("trial", "production"):
        assert named(overlay, "Service", "mri-flower")["spec"]["type"] == "ClusterIP"
        for ingress in of_kind(overlay, "Ingress"):
            backends = [p["backend"]["service"]["name"] for rule in ingress["spec"]["rules"]
                        for p in rule["http"]["paths"]]  # fmt: skip
            assert "mri-flower" not in backends
    trial_secret = named("trial", "Secret", "mri-secrets")
    assert "FLOWER_BASIC_AUTH" in trial_secret.get("stringData", trial_secret.get("data", {}))


def test_production_generates_no_secret_and_trial_uses_no_production_host() -> None:
    assert not of_kind("production", "Secret"), "production secrets never live in git"
    trial = named("trial", "ConfigMap", "mri-config")["data"]
    assert "example.org" not in trial["SITE_URL"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_follow_the_sites_model_into_a_cache_of_their_own(overlay: str) -> None:
    for worker in [d for d in of_kind(overlay, "Deployment") if "worker" in d["metadata"]["name"]]:
        spec = worker["spec"]["template"]["spec"]
        env = env_of(spec["containers"][0])
        assert env["MODEL_SOURCE"] == "site"
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        cache = mounts[env["MODEL_REGISTRY_DIR"]]
        assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == cache)


def test_the_sites_registry_is_on_the_volume_every_site_pod_shares() -> None:
    config = named("production", "ConfigMap", "mri-config")["data"]
    spec = named("production", "Deployment", "mri-site")["spec"]["template"]["spec"]
    media = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"] if m["name"] == "media"}
    assert any(config["MODEL_REGISTRY_DIR"].startswith(path) for path in media)
    assert "seed-models" in [c["name"] for c in spec["initContainers"]]
