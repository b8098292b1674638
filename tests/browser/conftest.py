"""Headless Chromium for the browser tests, or a skip that says what is missing.

Chromium comes from the Debian packages (`apt-get install -y chromium chromium-driver`,
done by scripts/test.sh when it can) and is driven by Playwright through
`executable_path`: `playwright install` needs the internet, so it is never used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The real stack's fixtures: live site, Redis queue, Celery worker process, tiny model.
from tests.integration.conftest import (  # noqa: F401
    model_registry_dir,
    queue_name,
    site,
    start_worker,
)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str | None:
    candidates = [os.environ.get("CHROMIUM_PATH", ""), "/usr/bin/chromium"]
    candidates += [shutil.which("chromium") or "", shutil.which("chromium-browser") or ""]
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright is not installed: pip install -e '.[dev]' to run the browser tests",
    )
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "Chromium is not installed (apt-get install -y chromium chromium-driver, "
            "or set CHROMIUM_PATH): browser tests skipped"
        )
    # Playwright's sync API keeps an event loop running in this thread, which makes Django
    # refuse ORM calls from the test ("async context"); the test itself is plain sync code.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    # Chromium reports each thing the Content-Security-Policy blocked on the console.
    blocked: list[str] = []
    page.on("console", lambda message: _note_csp_violation(message.text, blocked))
    yield page
    context.close()
    assert not blocked, f"the Content-Security-Policy blocked: {blocked}"


def _note_csp_violation(text: str, blocked: list[str]) -> None:
    if "Content Security Policy" in text:
        blocked.append(text)


@pytest.fixture
def screenshot(page: Any) -> Any:
    """Save a full-page screenshot as artifacts/screenshots/<name>.png (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


AXE_SCRIPT = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"  # npm axe-core@4.14.1
BLOCKING_IMPACTS = {"serious", "critical"}


@pytest.fixture
def check_accessibility(page: Any) -> Any:
    """Run axe-core on the page as it is now; fail on any serious or critical violation."""

    # An init script, not a <script> tag: the site's Content-Security-Policy rightly refuses
    # inline scripts, and init scripts run outside it, in every page loaded from now on.
    page.add_init_script(path=str(AXE_SCRIPT))

    def check(name: str) -> list[dict[str, Any]]:
        assert page.evaluate("typeof axe") == "object", f"axe-core is not loaded on {name}"
        violations: list[dict[str, Any]] = page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        )
        blocking = [
            f"{v['id']} ({v['impact']}): {v['help']} at "
            + ", ".join(str(node["target"]) for node in v["nodes"][:3])
            for v in violations
            if v["impact"] in BLOCKING_IMPACTS
        ]
        assert not blocking, f"axe-core on {name}: " + "; ".join(blocking)
        return violations

    return check
