"""The audit log: every access to patient data and every login is recorded, append-only,
and shown to the organisation's staff (and only theirs), as a page and as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.test import Client
from rest_framework.test import APIClient

from predictions import audit
from predictions.models import AuditEvent, AuditLogIsAppendOnly
from tests.factories import PredictionFactory, UserFactory

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
BROWSER = {"REMOTE_ADDR": "192.0.2.10", "HTTP_USER_AGENT": "Firefox/140 test"}


@pytest.fixture
def with_heatmap(prediction: Any) -> Any:
    prediction.heatmap.save("heatmap.png", ContentFile(b"\x89PNG\r\n\x1a\nfake"), save=True)
    return prediction


def portal_pages(prediction: Any) -> dict[str, tuple[str, str]]:
    job, scan, patient = prediction.job, prediction.job.scan, prediction.job.scan.patient
    return {
        Action.VIEW_PATIENT: ("patient", f"/patients/{patient.public_id}/"),
        Action.VIEW_SCAN_IMAGE: ("scan", f"/scans/{scan.public_id}/image/"),
        Action.VIEW_RESULT: ("job", f"/jobs/{job.public_id}/"),
        Action.VIEW_HEATMAP: ("job", f"/jobs/{job.public_id}/heatmap/"),
    }


@pytest.mark.parametrize(
    "action", [Action.VIEW_PATIENT, Action.VIEW_SCAN_IMAGE, Action.VIEW_RESULT, Action.VIEW_HEATMAP]
)
def test_each_portal_view_of_patient_data_is_recorded(
    portal: Client, clinician: Any, with_heatmap: Any, action: str
) -> None:
    object_type, path = portal_pages(with_heatmap)[action]
    assert portal.get(path, **BROWSER).status_code == 200
    event = AuditEvent.objects.get(action=action)
    patient = with_heatmap.job.scan.patient
    assert (event.user, event.username) == (clinician, clinician.username)
    assert event.organisation == patient.organisation
    assert event.patient == patient.public_id
    assert event.object_type == object_type
    assert (event.ip_address, event.user_agent) == ("192.0.2.10", "Firefox/140 test")
    assert event.outcome == "success"


def test_another_organisations_lookup_is_recorded_as_denied(
    outsider_portal: Client, prediction: Any
) -> None:
    job = prediction.job
    assert outsider_portal.get(f"/jobs/{job.public_id}/").status_code == 404
    event = AuditEvent.objects.get(action=Action.VIEW_RESULT)
    assert (event.action, event.outcome, event.object_id) == (
        "view_result",
        "denied",
        str(job.public_id),
    )
    # The refusal is filed under the caller's clinic, not the patient's: it reveals nothing.
    assert event.organisation != job.scan.patient.organisation
    assert event.patient is None


def test_a_review_and_an_export_are_recorded(portal: Client, clinician: Any, prediction: Any):
    portal.post(f"/jobs/{prediction.job.public_id}/review/", {"label": "meningioma"})
    review = AuditEvent.objects.get(action=Action.REVIEW)
    assert review.detail == "corrected to meningioma"
    clinician.user_permissions.add(Permission.objects.get(codename="export_data"))
    assert portal.get("/export/reviewed.zip").status_code == 200
    export = AuditEvent.objects.get(action=Action.EXPORT)
    assert export.detail == "reviewed scans zip, 1 scans"


def test_the_patient_search_is_recorded_without_the_mrn(portal: Client, patient: Any) -> None:
    portal.get("/patients/", {"q": patient.external_id})
    event = AuditEvent.objects.get(action=Action.LIST_PATIENTS)
    assert event.detail == "page 1, searched"
    assert patient.external_id not in str(list(AuditEvent.objects.values()))


@pytest.mark.parametrize(
    ("path", "action"),
    [
        ("/api/v1/patients/", Action.LIST_PATIENTS),
        ("/api/v1/jobs/", Action.LIST_RESULTS),
        ("/api/v1/scans/", Action.LIST_SCANS),
    ],
)
def test_api_lists_are_recorded(api: APIClient, prediction: Any, path: str, action: str) -> None:
    assert api.get(path).status_code == 200
    assert AuditEvent.objects.get().action == action


def test_api_views_and_downloads_are_recorded(api: APIClient, with_heatmap: Any) -> None:
    job, scan = with_heatmap.job, with_heatmap.job.scan
    api.get(f"/api/v1/jobs/{job.public_id}/")
    api.get(f"/api/v1/jobs/{job.public_id}/heatmap/")
    api.get(f"/api/v1/scans/{scan.public_id}/image/")
    api.get(f"/api/v1/patients/{scan.patient.public_id}/")
    events = AuditEvent.objects.order_by("id")
    assert [e.action for e in events] == [
        "view_result",
        "view_heatmap",
        "view_scan_image",
        "view_patient",
    ]
    assert {e.patient for e in events} == {scan.patient.public_id}


def test_api_lookups_of_another_clinic_are_recorded_as_denied(
    outsider_api: APIClient, prediction: Any
) -> None:
    job_id = prediction.job.public_id
    assert outsider_api.get(f"/api/v1/jobs/{job_id}/heatmap/").status_code == 404
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.object_id) == ("view_heatmap", "denied", str(job_id))


def test_logins_logouts_and_failures_are_recorded(clinician: Any) -> None:
    browser = Client(**BROWSER)
    login = "/accounts/login/"
    browser.post(login, {"username": clinician.username, "password": "wrong"})
    browser.post(login, {"username": "nobody-by-that-name", "password": "wrong"})
    browser.post(
        login, {"username": clinician.username, "password": "correct horse battery staple"}
    )
    browser.post("/accounts/logout/")
    events = list(AuditEvent.objects.order_by("id"))
    assert [(e.action, e.outcome) for e in events] == [
        ("login_failed", "failed"),
        ("login_failed", "failed"),
        ("login", "success"),
        ("logout", "success"),
    ]
    assert events[0].user == clinician and events[0].organisation is not None
    assert events[1].user is None and events[1].detail == "user name: nobody-by-that-name"
    assert {e.ip_address for e in events} == {"192.0.2.10"}


def test_a_lockout_is_recorded(settings: Any, clinician: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        Client().post("/accounts/login/", {"username": clinician.username, "password": "x"})
    assert AuditEvent.objects.filter(action=Action.LOCKED_OUT, user=clinician).count() == 1


def test_the_log_is_append_only(portal: Client, prediction: Any) -> None:
    portal.get(f"/jobs/{prediction.job.public_id}/")
    event = AuditEvent.objects.get(action=Action.VIEW_RESULT)
    event.detail = "tampered"
    with pytest.raises(AuditLogIsAppendOnly):
        event.save()
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.update(detail="tampered")
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).detail == ""


def test_the_record_function_takes_any_patient_object(rf: Any, clinician: Any) -> None:
    prediction = PredictionFactory(
        job__scan__patient__organisation=clinician.membership.organisation
    )
    request = rf.post("/", REMOTE_ADDR="10.1.2.3")
    request.user = clinician
    job, scan = prediction.job, prediction.job.scan
    for obj in (prediction, job, scan, scan.patient):
        event = audit.record(request, Action.MOVE_SCAN, obj, detail="to another patient")
        assert event.patient == scan.patient.public_id
        assert event.organisation_id == scan.patient.organisation_id
    assert AuditEvent.objects.count() == 4


@pytest.fixture
def auditor(clinician: Any) -> Any:
    clinician.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    return clinician


def test_the_audit_page_needs_the_permission(portal: Client) -> None:
    assert portal.get("/audit/").status_code == 403
    assert "/audit/" not in portal.get("/").content.decode()
    assert Client().get("/audit/").status_code == 302


def test_staff_see_only_their_organisations_events(
    auditor: Any, portal: Client, prediction: Any, outsider_portal: Client
) -> None:
    portal.get(f"/jobs/{prediction.job.public_id}/")
    outsider = UserFactory(username="stranger-at-other-clinic")
    stranger = Client()
    stranger.force_login(outsider)
    stranger.get("/patients/")
    page = portal.get("/audit/").content.decode()
    assert "View Result" in page and auditor.username in page
    assert "stranger-at-other-clinic" not in page
    assert "/audit/" in portal.get("/").content.decode()


def test_the_audit_page_filters_and_paginates(auditor: Any, portal: Client, patient: Any) -> None:
    for _ in range(55):
        portal.get(f"/patients/{patient.public_id}/")
    first = portal.get("/audit/", {"action": "view_patient"}).content.decode()
    assert "Page 1 of 2" in first and "action=view_patient&amp;page=2" in first
    assert (
        "Page 1 of 1"
        not in portal.get("/audit/", {"action": "view_patient", "page": 2}).content.decode()
    )
    assert "No events match" in portal.get("/audit/", {"action": "export"}).content.decode()


def test_the_audit_log_exports_as_csv(auditor: Any, portal: Client, prediction: Any) -> None:
    portal.get(f"/jobs/{prediction.job.public_id}/", HTTP_USER_AGENT="=cmd|' /C calc'!A0")
    response = portal.get("/audit/", {"format": "csv", "action": "view_result"})
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    assert rows[0]["action"] == "view_result"
    assert rows[0]["patient"] == str(prediction.job.scan.patient.public_id)
    # A spreadsheet would run a cell starting with "=": it is written as text.
    assert rows[0]["user_agent"].startswith("'=")
    assert AuditEvent.objects.filter(action=Action.EXPORT_AUDIT_LOG).count() == 1


def test_the_admin_shows_the_log_read_only(admin_client: Client, portal: Client, patient: Any):
    portal.get(f"/patients/{patient.public_id}/")
    event = AuditEvent.objects.get(action=Action.VIEW_PATIENT)
    assert admin_client.get("/admin/predictions/auditevent/").status_code == 200
    assert admin_client.get("/admin/predictions/auditevent/add/").status_code == 403
    assert admin_client.get(f"/admin/predictions/auditevent/{event.pk}/delete/").status_code == 403
    admin_client.post(f"/admin/predictions/auditevent/{event.pk}/change/", {"detail": "x"})
    assert AuditEvent.objects.get(pk=event.pk).detail == ""
