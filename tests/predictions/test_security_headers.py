"""A Content Security Policy on every page, and HSTS, the https redirect and secure cookies
when the site is behind TLS."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = [*ROOT.glob("templates/**/*.html"), *ROOT.glob("predictions/templates/**/*.html")]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/api/docs/", "/admin/login/"])
def test_every_page_carries_a_policy_without_unsafe_inline(path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_the_portals_templates_hold_no_inline_script_style_or_handler(template: Path) -> None:
    html = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"


@pytest.mark.django_db
def test_swagger_ui_loads_its_start_up_script_as_a_file() -> None:
    page = Client().get("/api/docs/").content.decode()
    script = re.search(r'<script src="([^"]*script=[^"]*)"', page)
    assert script, page
    response = Client().get(script.group(1).replace("&amp;", "&"))
    assert response.status_code == 200
    assert "SwaggerUIBundle" in response.content.decode()


@pytest.mark.django_db
def test_plain_http_sets_no_hsts_and_does_not_redirect() -> None:
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response


@pytest.mark.django_db
@override_settings(
    SECURE_SSL_REDIRECT=True,
    SECURE_HSTS_SECONDS=31_536_000,
    SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    SESSION_COOKIE_SECURE=True,
    CSRF_COOKIE_SECURE=True,
)
def test_behind_tls_http_redirects_and_https_gets_hsts_and_secure_cookies(clinician: Any) -> None:
    plain = Client().get("/accounts/login/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    secure = Client(HTTP_X_FORWARDED_PROTO="https")
    page = secure.get("/accounts/login/")
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert page.cookies["csrftoken"]["secure"]
    logged_in = secure.post(
        "/accounts/login/",
        {"username": clinician.username, "password": "correct horse battery staple"},
    )
    assert logged_in.cookies["sessionid"]["secure"] and logged_in.cookies["sessionid"]["httponly"]
    # Probes and workers call the container directly over http: never redirected.
    assert Client().get("/healthz").status_code == 200
