"""The admin is for superusers: clinic staff, whatever their permissions, use the portal."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from tests.factories import PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

ADMIN_PAGES = [
    "/admin/",
    "/admin/predictions/patient/",
    "/admin/predictions/auditevent/",
    "/admin/auth/user/",
    "/admin/axes/accessattempt/",
]


@pytest.fixture
def clinic_staff(clinician: Any) -> Client:
    """Staff of one clinic holding every view and change permission of the app."""
    clinician.is_staff = True
    clinician.save()
    clinician.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="predictions")
    )
    clinician.user_permissions.add(*Permission.objects.filter(codename__endswith="_user"))
    client = Client()
    client.force_login(clinician)
    return client


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_staff_with_permissions_cannot_open_the_admin(clinic_staff: Client, path: str) -> None:
    PatientFactory(external_id="MRN-OTHER-CLINIC")
    response = clinic_staff.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert "MRN-OTHER-CLINIC" not in clinic_staff.get(path, follow=True).content.decode()


def test_staff_cannot_make_themselves_superuser(clinic_staff: Client, clinician: Any) -> None:
    clinic_staff.post(
        f"/admin/auth/user/{clinician.pk}/change/",
        {"username": clinician.username, "is_superuser": "on", "is_staff": "on"},
    )
    clinician.refresh_from_db()
    assert not clinician.is_superuser


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_superusers_use_the_admin(admin_client: Client, path: str) -> None:
    assert admin_client.get(path).status_code == 200


def test_the_admin_link_shows_for_superusers_only(clinic_staff: Client) -> None:
    assert "/admin/" not in clinic_staff.get("/patients/").content.decode()
    superuser = Client()
    superuser.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert 'href="/admin/"' in superuser.get("/patients/").content.decode()
