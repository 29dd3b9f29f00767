"""Journey 1, steps 4 to 6, end to end: finance reviews the draft statements in headless
Chromium, publishes them (each owner's mail arrives at a real SMTP server), an owner follows
the link to their own statement, finance closes the month and exports the workbook."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from openpyxl import load_workbook

from costs.chargeback import period_of
from costs.models import PeriodStatus
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e


def sign_in(page, url: str, username: str) -> None:
    page.goto(url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_finance_publishes_an_owner_reads_finance_closes_and_exports(
    transactional_db, chromium, page, live_server, smtp, settings, abc
):
    settings.CAPGOV_BASE_URL = live_server.url
    month = f"{live_server.url}/costs/statements/2026-10/"

    sign_in(page, month, abc["finance"].username)
    page.get_by_role("heading", name=re.compile("Statements · October 2026")).wait_for()
    assert page.locator('[data-unit="A"]').inner_text() == "720.00 USD"
    page.get_by_role("link", name="A · Unit A").click()
    page.get_by_text(
        "proportional: 600.00 USD of 1,000.00 USD direct cost after credits = 60.00 %"
    ).wait_for()
    page.go_back()
    page.get_by_role("button", name="Publish and e-mail the owners").click()
    page.get_by_text("is published").wait_for()

    message = smtp.wait_for("owner-a@example.com")
    assert "October 2026" in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"^(http\S+/costs/statements/2026-10/A/)\s*$", text, flags=re.M).group(1)

    owner = chromium.new_context()
    try:
        reader = owner.new_page()
        sign_in(reader, link, "owner-a")
        reader.get_by_role("heading", name=re.compile("Unit A · October 2026")).wait_for()
        assert reader.get_by_text("Share of Platform overhead").is_visible()
        reader.goto(f"{live_server.url}/costs/statements/2026-10/B/")
        assert "has no statement" in reader.content() or "No business unit" in reader.content()
    finally:
        owner.close()

    page.get_by_label("Close for good").check()
    page.get_by_role("button", name="Close October 2026").click()
    page.get_by_text("is closed").wait_for()
    assert period_of(dt.date(2026, 10, 1)).status == PeriodStatus.CLOSED
    with page.expect_download() as download:
        page.get_by_role("link", name="Excel workbook").click()
    with download.value.path().open("rb") as fh:
        book = load_workbook(fh)
    assert book.sheetnames == ["Summary", "A", "B", "C", "PLAT"]
