"""The portal as a reading room, in headless Chromium on the real stack with a Celery worker.

Upload a non-square slice (and the same image again), read the worklist, review blind with
the keyboard, look at the heat map over the original beside it, use the viewer, move a scan
to the right patient, print the report; axe-core checks every page. Screenshots go to
artifacts/screenshots/ (the 2x- names).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ml.inference import LAYER_MAX_SIDE
from predictions.models import Job, Review, ScanCorrection
from tests.factories import PatientFactory, UserFactory
from tests.images import encode, mri_like

pytest.importorskip("ml.testing", reason="the ml package (model for the worker) is not present")
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"  # the factory's password


def coronal_slice() -> bytes:
    """A 440x278 slice: the synthetic head off-centre in a wide black frame."""
    head = mri_like(256, seed=3).resize((230, 250))
    canvas = Image.new("L", (440, 278))
    canvas.paste(head, (190, 14))
    return encode(canvas, "PNG")


def second_slice() -> bytes:
    return encode(mri_like(200, seed=8), "PNG")


def log_in(page: Any, site: str, username: str) -> None:
    page.goto(f"{site}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_reading_room(
    page: Any, site: str, start_worker: Any, screenshot: Any, check_accessibility: Any
) -> None:
    start_worker()
    reader = UserFactory()
    organisation = reader.membership.organisation
    organisation.hide_model_until_review = True
    organisation.time_zone = "Europe/Paris"
    organisation.save()
    patient = PatientFactory(organisation=organisation, external_id="MRN-WRONG-1")
    right = PatientFactory(organisation=organisation, external_id="MRN-RIGHT-2")

    page.goto(f"{site}/accounts/login/")
    check_accessibility("login")
    log_in(page, site, reader.username)
    check_accessibility("dashboard")
    assert focus_ring_contrast(page) >= 3.0, "the focus ring stands out from the page"

    # Upload: each upload line turns into a link to its result, rows update in place.
    page.goto(f"{site}/patients/{patient.public_id}/")
    page.evaluate("window.notReloaded = true")
    files = [
        {"name": "coronal 440x278.png", "mimeType": "image/png", "buffer": coronal_slice()},
        {"name": "axial.png", "mimeType": "image/png", "buffer": second_slice()},
    ]
    page.set_input_files("#upload-files", files)
    expect(page.locator("#jobs-table tbody tr")).to_have_count(2)
    page.set_input_files("#upload-files", files[:1])
    duplicate = page.locator(".upload-item.rejected", has_text="coronal 440x278.png")
    expect(duplicate).to_contain_text("This patient already has this exact image")
    expect(duplicate.get_by_role("link", name="Open the earlier result")).to_be_visible()
    done = page.locator("#jobs-table tbody tr", has=page.locator(".badge.status-succeeded"))
    expect(done).to_have_count(2, timeout=120_000)
    lines = page.locator(".upload-item.accepted[data-finished=true]")
    expect(lines).to_have_count(2)
    expect(lines.first.locator(".hidden-answer")).to_have_text("hidden until your review")
    assert page.evaluate("window.notReloaded") is True, "rows updated without a reload"
    expect(page.locator("#jobs-table tbody tr").first).to_contain_text(re.compile(r"CES?T"))
    screenshot("20-upload-lines-become-links")
    check_accessibility("patient page")

    # The worklist: both results await review, the model's answer hidden (blind reading).
    page.get_by_role("link", name="Worklist").click()
    expect(page.locator("#worklist-table tbody tr")).to_have_count(2)
    expect(page.locator("#worklist-table .hidden-answer")).to_have_count(2)
    screenshot("21-worklist")
    check_accessibility("worklist")

    # Blind review with the keyboard: pick label 2 (Meningioma) and save, then next case.
    page.locator("#worklist-table tbody tr").first.get_by_role(
        "link", name=re.compile("^Read")
    ).click()
    expect(page.locator("#blind-notice")).to_be_visible()
    expect(page.locator("#predicted-label")).to_have_count(0)
    expect(page.locator("#heatmap")).to_have_count(0)
    assert page.locator("input[name=label]:checked").count() == 0, "no label pre-selected"
    expect(page.get_by_text(re.compile(r"Case 1 of 2"))).to_be_visible()
    screenshot("22-blind-review-before")
    check_accessibility("result, model's answer hidden")
    page.locator("body").press("2")
    expect(page.get_by_role("radio", name="Meningioma")).to_be_checked()
    page.locator("body").press("s")
    expect(page.locator(".message.success")).to_contain_text("Review saved")
    expect(page.locator("#predicted-label")).to_be_visible()
    expect(page.locator("#review-summary")).to_contain_text("(read blind)")
    first_review = Review.objects.get()
    assert (first_review.label, first_review.model_answer_shown) == ("meningioma", False)
    screenshot("23-blind-review-committed")
    check_accessibility("result after review")
    page.locator("body").press("n")
    expect(page.locator("#blind-notice")).to_be_visible()
    page.locator("body").press("3")
    page.locator("body").press("s")
    expect(page.locator("#review-summary")).to_contain_text("No tumour")
    assert Review.objects.count() == 2

    # The heat map over the non-square original, and beside it.
    coronal = Job.objects.get(scan__original_name="coronal 440x278.png")
    page.goto(f"{site}/jobs/{coronal.public_id}/")
    heatmap, scan = page.locator("#heatmap"), page.locator("#scan-image")
    expect(heatmap).to_be_visible()
    # The layer has the original's proportions at its own size (ml.inference.LAYER_MAX_SIDE).
    scale = min(1.0, LAYER_MAX_SIDE / 440)
    natural = heatmap.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert natural == [round(440 * scale), round(278 * scale)]
    heat_box, scan_box = heatmap.bounding_box(), scan.bounding_box()
    for key in ("x", "y", "width", "height"):
        assert heat_box[key] == pytest.approx(scan_box[key], abs=0.5), key
    page.get_by_role("button", name="Side by side").click()
    expect(page.locator("#pane-original")).to_be_visible()
    page.get_by_label("Heat-map opacity").fill("80")
    assert float(heatmap.evaluate("img => getComputedStyle(img).opacity")) == pytest.approx(0.8)
    expect(page.locator(".legend-ramp")).to_be_visible()
    page.locator("#scan-figure").screenshot(
        path=str(screenshot_dir() / "24-heatmap-non-square-beside-original.png")
    )
    screenshot("25-result-side-by-side")
    check_accessibility("result with heat map side by side")

    # The viewer: keyboard zoom and window/level, dark reading-room theme.
    page.locator("#viewer").focus()
    page.keyboard.press("+")
    page.keyboard.press(".")
    page.keyboard.press("]")
    expect(page.locator("#viewer-state")).to_have_text("125% · brightness 110% · contrast 110%")
    page.get_by_role("button", name="Reading room (dark)").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    screenshot("26-viewer-zoomed-dark")
    check_accessibility("result in the dark theme")
    page.get_by_role("button", name="Reading room (dark)").click()

    # Print: the report without navigation or forms.
    page.emulate_media(media="print")
    screenshot("27-printable-report")
    expect(page.locator("#review-form")).to_be_hidden()
    page.emulate_media(media="screen")

    # Move the scan to the right patient, with the reason on record.
    page.get_by_text("Correct the record").click()
    page.get_by_label("Move to the patient with identifier").fill(" mrn-right-2 ")
    page.get_by_label("Reason for the move").fill("Filed under the neighbour's MRN.")
    page.get_by_role("button", name="Move the scan").click()
    expect(page.locator(".message.success")).to_contain_text("moved to patient MRN-RIGHT-2")
    expect(page.locator("#corrections")).to_contain_text(
        "moved from patient MRN-WRONG-1 to patient MRN-RIGHT-2"
    )
    correction = ScanCorrection.objects.get()
    assert correction.to_patient == right and correction.corrected_by == reader
    screenshot("28-scan-moved")
    check_accessibility("result after a move")

    for name, path in [
        ("patients", "/patients/"),
        ("register a patient", "/patients/new/"),
        ("the right patient", f"/patients/{right.public_id}/"),
        ("password change", "/accounts/password_change/"),
    ]:
        page.goto(f"{site}{path}")
        check_accessibility(name)


CONTRAST = """([outline, background]) => {
    const luminance = (css) => {
        const [r, g, b] = css.match(/[0-9.]+/g).slice(0, 3).map(Number).map((v) => {
            const c = v / 255;
            return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const [light, dark] = [luminance(outline), luminance(background)].sort((a, b) => b - a);
    return (light + 0.05) / (dark + 0.05);
}"""


def focus_ring_contrast(page: Any) -> float:
    """Tab to a link in the page's main area; return its focus ring's contrast with the page."""
    link = page.get_by_role("main").get_by_role("link").first
    for _ in range(30):
        page.keyboard.press("Tab")
        if link.evaluate("node => node === document.activeElement"):
            break
    outline = link.evaluate("node => getComputedStyle(node).outlineColor")
    assert link.evaluate("node => getComputedStyle(node).outlineStyle") == "solid"
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    ratio: float = page.evaluate(CONTRAST, [outline, background])
    return ratio


def screenshot_dir() -> Any:
    from tests.browser.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def test_the_synthetic_slice_is_what_the_heat_map_test_needs() -> None:
    """Guard the fixture: non-square, and the head off-centre in its frame."""
    from io import BytesIO

    image = np.asarray(Image.open(BytesIO(coronal_slice())))
    assert image.shape == (278, 440)
    columns = np.flatnonzero(image.max(axis=0) > 40)
    assert columns[0] > 150, "the head sits right of centre"
