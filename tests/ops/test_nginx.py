"""The repository's nginx config in front of the real site under gunicorn: it refuses huge
bodies itself, turns a chunked upload into one gunicorn can read, redirects http to https,
and keeps query strings out of its access log. Skipped where nginx is not installed."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.factories import PatientFactory, UserFactory, api_token
from tests.gunicorn_site import gunicorn_site
from tests.images import png_bytes
from webapp.local_redis import free_port, port_is_open

ROOT = Path(__file__).resolve().parents[2]
MRN = "MRN-77-NGINX"


def nginx_config(tmp_path: Path, upstream: int, http: int, https: int) -> Path:
    """The repository's config, pointed at this test's gunicorn, ports, certificate and logs."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(tmp_path / "site.key"), "-out", str(tmp_path / "site.crt")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    config = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    for old, new in {
        "server web:8000;": f"server 127.0.0.1:{upstream};",
        "listen 8080;": f"listen 127.0.0.1:{http};",
        "listen 8443 ssl;": f"listen 127.0.0.1:{https} ssl;",
        "/etc/nginx/certs/": f"{tmp_path}/",
        "/dev/stdout": str(tmp_path / "access.log"),
        "/dev/stderr": str(tmp_path / "error.log"),
        "/tmp/nginx.pid": str(tmp_path / "nginx.pid"),
    }.items():
        assert old in config
        config = config.replace(old, new)
    path = tmp_path / "nginx.conf"
    path.write_text(config)
    return path


@pytest.fixture
def front(static_var_dir: Path, tmp_path: Path, transactional_db: None) -> Iterator[dict[str, Any]]:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None or shutil.which("openssl") is None:
        pytest.skip("nginx or openssl is not installed (apt-get install nginx-light openssl)")
    env = {"SITE_BEHIND_TLS": "true", "BEHIND_TLS_PROXY": "true", "TRUSTED_PROXY_COUNT": "1"}
    with gunicorn_site(static_var_dir, tmp_path, **env) as site:
        http, https = free_port(), free_port()
        config = nginx_config(tmp_path, urlsplit(site.url).port or 0, http, https)
        process = subprocess.Popen([nginx, "-c", str(config), "-g", "daemon off;"])
        try:
            deadline = time.monotonic() + 30
            while not port_is_open(https):
                assert process.poll() is None and time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
            yield {"https": f"https://localhost:{https}", "http": f"http://localhost:{http}",
                   "log": tmp_path / "access.log", "site": site,
                   "ca": str(tmp_path / "site.crt")}  # fmt: skip
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture
def caller(transactional_db: None) -> tuple[dict[str, str], Any]:
    user = UserFactory()
    patient = PatientFactory(organisation=user.membership.organisation, external_id=MRN)
    return {"Authorization": f"Token {api_token(user)}"}, patient


def test_nginx_refuses_a_huge_body_itself(front: dict[str, Any], caller: Any) -> None:
    headers, patient = caller
    huge = b"\0" * (22 << 20)
    response = requests.post(
        f"{front['https']}/api/v1/scans/", headers=headers, verify=front["ca"], timeout=60,
        files={"image": ("big.png", huge)}, data={"patient": str(patient.public_id)},
    )  # fmt: skip
    assert response.status_code == 413
    assert response.headers["Server"] == "nginx"
    assert "POST /api/v1/scans/" not in front["site"].log()  # gunicorn never saw it


def test_a_chunked_upload_reaches_gunicorn_whole(front: dict[str, Any], caller: Any) -> None:
    headers, patient = caller
    boundary = "chunky"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="patient"\r\n\r\n'
        f"{patient.public_id}\r\n".encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode(),
        png_bytes() + f"\r\n--{boundary}--\r\n".encode(),
    ]
    response = requests.post(
        f"{front['https']}/api/v1/scans/", data=iter(parts), verify=front["ca"], timeout=60,
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 202, response.text


def test_http_redirects_to_https_and_the_log_has_no_mrn(front: dict[str, Any], caller: Any):
    headers, _ = caller
    plain = requests.get(f"{front['http']}/patients/?q={MRN}", allow_redirects=False, timeout=30)
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")
    found = requests.get(
        f"{front['https']}/api/v1/patients/", params={"external_id": MRN},
        headers=headers, verify=front["ca"], timeout=30,
    )  # fmt: skip
    assert found.status_code == 200 and found.json()["count"] == 1
    assert "Strict-Transport-Security" in found.headers
    time.sleep(0.5)  # nginx writes its log line after the response
    log = front["log"].read_text()
    assert '"GET /api/v1/patients/ HTTP/1.1" 200' in log
    assert MRN not in log and MRN not in front["site"].log()
