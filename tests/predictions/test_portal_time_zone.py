"""One time zone per organisation: every time shown in it, with its abbreviation; "today" too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.test import Client

from predictions.models import Organisation
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_new_york(organisation: Any) -> Any:
    organisation.time_zone = "America/New_York"
    organisation.save()
    return organisation


def test_page_rows_and_live_rows_show_the_same_time_in_the_organisations_zone(
    portal: Client, in_new_york: Any, patient: Any
) -> None:
    job = JobFactory(scan__patient=patient, created=datetime(2026, 1, 15, 3, 30, tzinfo=UTC))
    page = portal.get(f"/patients/{patient.public_id}/").content.decode()
    live = portal.get(f"/jobs/{job.public_id}/row/", HTTP_HX_REQUEST="true").content.decode()
    for html in (page, live):
        assert "2026-01-14 22:30:00 EST" in html


def test_the_sites_time_zone_is_the_default(portal: Client, patient: Any, settings: Any) -> None:
    assert settings.TIME_ZONE == "UTC"
    job = JobFactory(scan__patient=patient, created=datetime(2026, 1, 15, 3, 30, tzinfo=UTC))
    assert "2026-01-15 03:30:00 UTC" in portal.get(f"/jobs/{job.public_id}/").content.decode()


def test_today_on_the_dashboard_starts_at_midnight_in_the_organisations_zone(
    portal: Client, in_new_york: Any, patient: Any
) -> None:
    # 23:00 in New York on the 14th is already the 15th in UTC.
    with time_machine.travel(datetime(2026, 1, 15, 4, 0, tzinfo=UTC), tick=False):
        JobFactory(scan__patient=patient, created=datetime(2026, 1, 14, 6, 0, tzinfo=UTC))
        JobFactory(scan__patient=patient, created=datetime(2026, 1, 15, 4, 30, tzinfo=UTC))
        response = portal.get("/")
    assert dict(response.context["counts"])["queued"] == 2
    assert "since=2026-01-14" in response.content.decode()


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a known time zone"):
        Organisation(name="X", time_zone="Mars/Olympus").full_clean()
