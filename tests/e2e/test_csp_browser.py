"""In Chromium: the pages work under the Content Security Policy (no inline script)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from costs import services as cost_services
from tests.factories import PASSWORD


def sign_in(page, live_server, username: str) -> list[str]:
    """Sign in; returns the list that collects CSP violations and script errors."""
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    return problems


@pytest.mark.e2e
def test_swagger_ui_loads_under_the_policy(page, live_server, transactional_db, abc):
    problems = sign_in(page, live_server, abc["finance"].username)
    page.goto(f"{live_server.url}/api/docs/")
    page.locator(".swagger-ui .info .title").filter(has_text="Capgov API").wait_for()
    # Swagger UI fetched the schema and drew its first operations (the rest as one scrolls).
    page.locator(".opblock-summary-path[data-path^='/api/v1/']").first.wait_for()
    assert problems == []


@pytest.mark.e2e
def test_chargeback_charts_and_toggles_work_under_the_policy(
    page,
    live_server,
    transactional_db,
    abc,
):
    problems = sign_in(page, live_server, abc["finance"].username)
    page.goto(f"{live_server.url}/costs/chargeback/?month=2026-10")
    page.locator(".chart .main-svg").first.wait_for()  # plotly.js drew the daily chart
    toggle = page.locator("[data-toggle-unit]").first
    assert toggle.get_attribute("aria-expanded") == "false"  # chargeback.js folded the units
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    page.locator("#basis").select_option("effective")  # capgov.js submits the month picker
    page.wait_for_url("**basis=effective**")
    assert problems == []


@pytest.mark.e2e
def test_deleting_a_budget_asks_first_under_the_policy(
    page,
    live_server,
    transactional_db,
    abc,
):
    budget = cost_services.budget_save(
        name="GPU", business_unit=abc["A"], amount=Decimal("1000"), currency="USD"
    )
    problems = sign_in(page, live_server, abc["finance"].username)
    questions: list[str] = []

    def answer(dialog):
        questions.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", answer)
    page.goto(f"{live_server.url}/costs/budgets/{budget.pk}/edit/")
    page.get_by_role("button", name="Delete budget").click()
    assert questions == ["Delete budget GPU and its alert history?"]
    assert page.url.endswith(f"/costs/budgets/{budget.pk}/edit/")  # dismissed: still there
    assert json.dumps(problems) == "[]"
