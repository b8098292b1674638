"""Every portal page: anonymous users go to the login page, another organisation gets a 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import Client

pytestmark = pytest.mark.django_db


def pages(prediction: Any) -> dict[str, tuple[str, str]]:
    job, scan, patient = prediction.job, prediction.job.scan, prediction.job.scan.patient
    return {
        "patient": ("get", f"/patients/{patient.public_id}/"),
        "upload": ("post", f"/patients/{patient.public_id}/scans/"),
        "scan image": ("get", f"/scans/{scan.public_id}/image/"),
        "scan thumbnail": ("get", f"/scans/{scan.public_id}/thumbnail/"),
        "job": ("get", f"/jobs/{job.public_id}/"),
        "heat map": ("get", f"/jobs/{job.public_id}/heatmap/"),
        "job row": ("get", f"/jobs/{job.public_id}/row/"),
        "upload item": ("get", f"/jobs/{job.public_id}/upload-item/"),
        "job badge": ("get", f"/jobs/{job.public_id}/badge/"),
        "move scan": ("post", f"/scans/{scan.public_id}/move/"),
        "void scan": ("post", f"/scans/{scan.public_id}/void/"),
        "review": ("post", f"/jobs/{job.public_id}/review/"),
        "retry": ("post", f"/jobs/{job.public_id}/retry/"),
    }


ORG_PAGES = [
    "patient",
    "upload",
    "scan image",
    "scan thumbnail",
    "job",
    "heat map",
    "job row",
    "upload item",
    "job badge",
    "move scan",
    "void scan",
    "review",
    "retry",
]
OPEN_PAGES = [
    "/",
    "/worklist/",
    "/patients/",
    "/patients/new/",
    "/jobs/status/",
    "/export/reviewed.zip",
]


@pytest.fixture
def with_heatmap(prediction: Any) -> Any:
    prediction.heatmap.save("heatmap.png", ContentFile(b"\x89PNG\r\n\x1a\nfake"), save=True)
    return prediction


@pytest.mark.parametrize("path", OPEN_PAGES + [f"org:{name}" for name in ORG_PAGES])
def test_it_sends_anonymous_users_to_the_login_page(path: str, with_heatmap: Any) -> None:
    method, url = pages(with_heatmap)[path[4:]] if path.startswith("org:") else ("get", path)
    response = getattr(Client(), method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("name", ORG_PAGES)
def test_another_organisation_gets_a_404(
    name: str, outsider_portal: Client, with_heatmap: Any
) -> None:
    method, url = pages(with_heatmap)[name]
    assert getattr(outsider_portal, method)(url).status_code == 404


@pytest.mark.parametrize(
    "name", ["patient", "scan image", "scan thumbnail", "job", "heat map", "job row", "upload item"]
)
def test_the_owner_sees_the_page(name: str, portal: Client, with_heatmap: Any) -> None:
    _, url = pages(with_heatmap)[name]
    assert portal.get(url).status_code == 200


@pytest.mark.parametrize("path", ["/", "/worklist/", "/patients/", "/patients/new/"])
def test_the_open_pages_render_for_a_member(path: str, portal: Client) -> None:
    assert portal.get(path).status_code == 200


def test_status_poll_shows_only_the_callers_jobs(
    outsider_portal: Client, portal: Client, prediction: Any
) -> None:
    url = f"/jobs/status/?id={prediction.job.public_id}&id=not-a-uuid"
    assert outsider_portal.get(url).json() == {"jobs": []}
    [state] = portal.get(url).json()["jobs"]
    assert state["id"] == str(prediction.job.public_id)
    assert (state["status_text"], state["label"], state["finished"]) == (
        "succeeded",
        "glioma",
        True,
    )


def test_a_user_without_an_organisation_is_refused(db: None, django_user_model: Any) -> None:
    client = Client()
    client.force_login(django_user_model.objects.create_user("loner", password="x"))
    response = client.get("/patients/")
    assert response.status_code == 403
    assert b"does not belong to an organisation" in response.content


def test_logout_is_a_post_form_and_ends_the_session(portal: Client) -> None:
    page = portal.get("/").content.decode()
    assert 'action="/accounts/logout/"' in page and 'method="post"' in page
    assert portal.post("/accounts/logout/").status_code == 302
    assert portal.get("/").status_code == 302


def test_login_page_uses_the_portal_look(db: None) -> None:
    page = Client().get("/accounts/login/").content.decode()
    assert "portal.css" in page and 'for="id_username"' in page


def test_password_change_uses_the_portal_page(portal: Client) -> None:
    page = portal.get("/accounts/password_change/").content.decode()
    assert "portal.css" in page and "id_old_password" in page
