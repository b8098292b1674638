"""Upload limits under the real server (gunicorn, as `make run` and the container run it):
an oversized body is refused before it is sent, a file part is cut off as it passes the
limit, a chunked body gets a clear 411, and a normal upload still goes through."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.factories import PatientFactory, UserFactory, api_token
from tests.gunicorn_site import GunicornSite, gunicorn_site
from tests.images import png_bytes

LIMIT = 100_000  # MAX_UPLOAD_BYTES for the site under test


@pytest.fixture
def site(static_var_dir: Path, tmp_path: Path, transactional_db: None) -> Iterator[GunicornSite]:
    with gunicorn_site(static_var_dir, tmp_path, MAX_UPLOAD_BYTES=str(LIMIT)) as running:
        yield running


@pytest.fixture
def caller(transactional_db: None) -> tuple[dict[str, str], Any]:
    user = UserFactory()
    patient = PatientFactory(organisation=user.membership.organisation)
    return {"Authorization": f"Token {api_token(user)}"}, patient


def raw_post_headers(site: GunicornSite, path: str, headers: dict[str, str]) -> tuple[str, float]:
    """Send only a request's headers; return the response's head and how long it took."""
    address = urlsplit(site.url)
    lines = [f"POST {path} HTTP/1.1", f"Host: {address.hostname}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    started = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=20) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while not _complete(answer) and (chunk := connection.recv(65536)):
            answer += chunk
    return answer.decode(errors="replace"), time.monotonic() - started


def _complete(answer: bytes) -> bool:
    head, separator, body = answer.partition(b"\r\n\r\n")
    lengths = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    return bool(separator and lengths and len(body) >= int(lengths[0].split(b":")[1]))


def test_a_declared_200_mib_body_is_refused_before_it_is_sent(site: GunicornSite, caller: Any):
    headers, _ = caller
    head, seconds = raw_post_headers(
        site,
        "/api/v1/scans/",
        {
            **headers,
            "Content-Type": "multipart/form-data; boundary=x",
            "Content-Length": str(200 << 20),
        },
    )
    assert head.startswith("HTTP/1.1 413")
    body = json.loads(head.split("\r\n\r\n", 1)[1])
    assert body["detail"].startswith(f"The request is {200 << 20:,} bytes; the limit is")
    print(f"200 MiB declared: 413 after {seconds * 1000:.0f} ms with no body sent")


def test_a_file_part_is_cut_off_when_it_passes_the_limit(site: GunicornSite, caller: Any) -> None:
    headers, patient = caller
    too_big = png_bytes() + b"\0" * LIMIT  # under the request limit, over the file limit
    response = requests.post(
        f"{site.url}/api/v1/scans/",
        headers=headers,
        data={"patient": str(patient.public_id)},
        files={"image": ("slice.png", too_big, "image/png")},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["detail"] == f"The file is over the limit of {LIMIT:,} bytes."


def test_a_chunked_upload_gets_a_clear_411(site: GunicornSite, caller: Any) -> None:
    headers, _ = caller

    def chunks() -> Iterator[bytes]:
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        yield png_bytes() + b"\r\n--x--\r\n"

    response = requests.post(
        f"{site.url}/api/v1/scans/",
        headers={**headers, "Content-Type": "multipart/form-data; boundary=x"},
        data=chunks(),
        timeout=30,
    )
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 411
    assert "Content-Length" in response.json()["detail"]


def test_an_ordinary_upload_still_goes_through(site: GunicornSite, caller: Any) -> None:
    headers, patient = caller
    response = requests.post(
        f"{site.url}/api/v1/scans/",
        headers=headers,
        data={"patient": str(patient.public_id)},
        files={"image": ("slice.png", png_bytes(), "image/png")},
        timeout=30,
    )
    assert response.status_code == 202, response.text
