"""Finance signs in, uploads a billing file, watches it import and reads the chargeback."""

import os

import pytest

from costs import services
from tests.factories import PASSWORD, focus_line, write_focus

pytestmark = pytest.mark.e2e


@pytest.fixture
def finance_org(transactional_db):
    from tests.factories import OrgFactory

    org = OrgFactory.build_org()
    services.allocation_rule_save(
        business_unit=org.research, tag_key="team", tag_values=["research"], priority=10
    )
    return org


def test_finance_uploads_a_file_and_sees_the_chargeback(page, live_server, finance_org, tmp_path):
    billing_file = write_focus(
        tmp_path / "focus-october.csv",
        [
            focus_line(cost="1200.50", tags={"team": "research"}, resource="gpu-a"),
            focus_line(cost="799.495", tags={"Team": "RESEARCH"}, resource="gpu-b"),
            focus_line(cost="100.005", tags={"team": "unknown"}, resource="stray"),
        ],
    )
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
    page.get_by_label("Username").fill(finance_org.finance.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    assert page.get_by_text("No costs yet").is_visible()

    page.get_by_role("link", name="Imports", exact=True).click()
    page.get_by_label("Billing export").set_input_files(str(billing_file))
    page.get_by_role("button", name="Upload and import").click()
    page.get_by_text("Succeeded").wait_for()
    assert page.get_by_text("Billed total — compare with the invoice").is_visible()
    assert page.get_by_role("cell", name="2,100.00 USD").is_visible()

    page.get_by_role("link", name="Chargeback →").click()
    page.get_by_role("heading", name="Chargeback · October 2026").wait_for()
    table = page.locator("#chargeback-USD")
    assert table.locator("[data-unit=RES]").inner_text() == "2,000.00 USD"
    assert (
        table.locator("[data-unit=UNALLOCATED]").inner_text() == "100.00 USD"
    )  # 1999.995 + 100.005: the tie goes to the larger part
    assert "to the cent ✓" in page.content()
    # plotly.js, served from our own static files, drew the daily chart.
    page.locator(".chart .main-svg").first.wait_for()
    if os.environ.get("CAPGOV_SCREENSHOTS"):
        page.screenshot(path=os.environ["CAPGOV_SCREENSHOTS"] + "/chargeback.png", full_page=True)
