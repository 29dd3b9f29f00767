"""Real parts for end-to-end flows: Debian's Chromium through Playwright, a Celery worker."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import REQUIRE_SERVICES

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def missing(what: str) -> None:
    """Skip on a developer machine without the part; fail in CI, where it must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required in CI (CAPGOV_REQUIRE_SERVICES=1)")
    pytest.skip(f"{what} is not available here")


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        missing("Debian's chromium package")
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls made by the
    # test itself (fixtures, assertions) are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()
