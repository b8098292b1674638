"""A clinician's whole visit in headless Chromium, on the real stack with a Celery worker.

Log in, register a patient, upload two slices (and drop a bad file), watch both
reach "succeeded" with a label without a reload, open a result, toggle the heat map,
correct the label. Screenshots of each page go to artifacts/screenshots/.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from predictions import broker_status
from predictions.models import Job, Review
from tests.factories import UserFactory
from tests.images import jpeg_bytes, png_bytes

pytest.importorskip("ml.testing", reason="the ml package (model for the worker) is not present")
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"  # the factory's password


def log_in(page: Any, site: str, username: str, screenshot: Any) -> None:
    page.goto(f"{site}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    screenshot("01-login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def register_patient(page: Any, screenshot: Any) -> None:
    page.get_by_role("link", name="Patients", exact=True).click()
    page.get_by_role("link", name="Register a patient").click()
    page.get_by_label("Patient identifier (MRN)").fill("MRN-BROWSER-1")
    screenshot("03-register-patient")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="Patient MRN-BROWSER-1")).to_be_visible()


def drop_file(page: Any, name: str, text: str) -> None:
    """Drop a file on the drop zone the way a browser does: a drop event with a DataTransfer."""
    page.evaluate(
        """([name, text]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([text], name, {type: "image/png"}));
            const zone = document.getElementById("dropzone");
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        [name, text],
    )


def test_a_clinician_uploads_watches_results_and_corrects_a_label(
    page: Any, site: str, start_worker: Any, screenshot: Any
) -> None:
    worker = start_worker()
    user = UserFactory()
    log_in(page, site, user.username, screenshot)
    screenshot("02-dashboard")
    register_patient(page, screenshot)

    page.evaluate("window.notReloaded = true")
    page.set_input_files(
        "#upload-files",
        [
            {"name": "slice-a.png", "mimeType": "image/png", "buffer": png_bytes(128, seed=1)},
            {"name": "slice-b.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes(128, seed=2)},
        ],
    )
    drop_file(page, "report.png", "%PDF-1.4 not a scan")
    rejected = page.locator(".upload-item", has_text="report.png")
    expect(rejected).to_contain_text("The file is not an image: upload a JPEG or PNG MRI slice.")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(2)
    screenshot("04-uploaded")

    done = page.locator("#jobs-table tbody tr", has=page.locator(".badge.status-succeeded"))
    expect(done).to_have_count(2, timeout=120_000)
    for row in done.all():
        expect(row.locator(".job-result .label")).to_have_text(
            re.compile("^(Glioma|Meningioma|No tumour|Pituitary tumour)$")
        )
    assert page.evaluate("window.notReloaded") is True, "the statuses updated without a reload"
    assert Job.objects.filter(status="succeeded", worker=worker.name).count() == 2
    screenshot("05-patient-results")

    page.locator("#jobs-table tbody tr").first.get_by_role("link", name=re.compile("Open")).click()
    expect(page.get_by_role("heading", name=re.compile("Result"))).to_be_visible()
    predicted = page.locator("#predicted-label").get_attribute("data-label")
    expect(page.locator(".bars .bar")).to_have_count(4)
    expect(page.locator("#heatmap")).to_be_visible()
    expect(page.get_by_text("tiny-test")).to_be_visible()
    screenshot("06-result")

    toggle = page.get_by_role("button", name="Hide heat map")
    toggle.click()
    expect(page.locator("#heatmap")).to_be_hidden()
    expect(page.get_by_role("button", name="Show heat map")).to_have_attribute(
        "aria-pressed", "false"
    )
    screenshot("07-result-heatmap-hidden")

    corrected = "meningioma" if predicted != "meningioma" else "glioma"
    page.get_by_role("radio", name=corrected.capitalize()).check()
    page.get_by_label("Comment (optional)").fill("Dural tail on the next slice.")
    page.get_by_role("button", name="Save review").click()
    expect(page.locator("#review-summary")).to_contain_text(
        f"Corrected to {corrected.capitalize()}"
    )
    expect(page.locator("#review-summary")).to_contain_text(f"by {user.username}")
    screenshot("08-reviewed")
    review = Review.objects.get()
    assert (review.label, review.confirmed, review.reviewed_by) == (corrected, False, user)

    broker_status.refresh()  # what the sweeper does every BROKER_STATUS_INTERVAL
    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("#workers-online")).to_contain_text(worker.name)
    screenshot("09-dashboard-after")
