"""Budget pages and the budgets API: scope, permissions, what they show, query counts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from costs import services
from costs.models import Budget
from governance.selectors import freezes_in_force
from governance.services import freeze_start
from governance.tokens import api_token_authenticate, api_token_create
from tests.costs.test_budgets import ads, bill, budget_for, research, setup_units
from tests.factories import PASSWORD, BusinessUnitFactory


@pytest.fixture
def november(org, tmp_path):
    """Research at 90 % of 1,000 USD by 15 November; Ads at 20 % of 500 USD."""
    with time_machine.travel(dt.datetime(2026, 11, 16, 9, tzinfo=dt.UTC), tick=False):
        setup_units(org)
        bill(
            tmp_path,
            [
                research("400.00", day="2026-11-03"),
                research("500.00", day="2026-11-15"),
                ads("100.00", day="2026-11-15"),
            ],
        )
        budget_for(org)
        services.budget_save(
            name="Ads serving",
            business_unit=org.ads,
            amount=Decimal("500.00"),
            currency="USD",
            by=org.finance,
        )
        yield org


@pytest.fixture
def signed_in(client):
    def sign_in(user):
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return sign_in


@pytest.fixture
def api():
    def as_user(user):
        client = APIClient()
        _, key = api_token_create(user=user, name="tests", scope="write", days=730, by=user)
        api_token_authenticate(key=key)  # its first use is recorded outside the counted requests
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client

    return as_user


def _research_budget() -> Budget:
    return Budget.objects.get(business_unit__code="RES")


def _ads_budget() -> Budget:
    return Budget.objects.get(business_unit__code="ADS")


def _more_budgets(org, count: int) -> None:
    for n in range(count):
        unit = BusinessUnitFactory(code=f"X{n}", name=f"Unit {n}")
        services.budget_save(
            name=f"Unit {n}",
            business_unit=unit,
            amount=Decimal(100 + n),
            currency="USD",
            tag_key="project" if n % 2 else "",
            tag_value="p" if n % 2 else "",
            by=org.finance,
        )


# --- Pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/costs/budgets/", "/costs/budgets/new/"])
def test_budget_pages_require_sign_in(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_the_list_shows_spend_percent_trend_and_status(signed_in, november):
    page = signed_in(november.finance).get("/costs/budgets/").content.decode()
    assert "Budgets · November 2026" in page
    assert "900.00 USD" in page
    assert "90 %" in page
    # 900 over 15 days with data, times 30 days
    assert "1,800.00 USD (180 %)" in page
    assert "simple trend" in page
    assert '<span class="status status-running"' in page
    assert "Ads serving" in page
    assert "New budget" in page


def test_a_member_sees_only_their_units_budgets(signed_in, november):
    page = signed_in(november.ads_engineer).get("/costs/budgets/").content.decode()
    assert "Ads serving" in page
    assert "Research GPUs" not in page
    assert "New budget" not in page
    assert (
        signed_in(november.ads_engineer).get(_research_budget().get_absolute_url()).status_code
        == 404
    )


def test_the_list_filters_by_unit_and_picks_a_month(signed_in, november):
    client = signed_in(november.finance)
    page = client.get("/costs/budgets/?business_unit=ads&month=2026-11").content.decode()
    assert "Ads serving" in page
    assert "Research GPUs" not in page
    october = client.get("/costs/budgets/?month=2026-10").content.decode()
    assert "0.00 USD" in october
    assert client.get("/costs/budgets/?month=soon").status_code == 404


def test_the_detail_page_shows_the_month_chart_and_rules(signed_in, november):
    budget = _research_budget()
    page = signed_in(november.researcher).get(budget.get_absolute_url()).content.decode()
    assert "Research GPUs · November 2026" in page
    assert "15 of 30 days" in page
    assert "1,800.00 USD (180 %)" in page
    assert "vendor/plotly/plotly.min.js" in page
    assert 'id="budget-burn"' in page
    assert "50 %, 80 %, 100 %" in page
    assert "Edit budget" not in page, "the owner reads the budget; finance sets it"
    assert "No threshold reached yet" in page


def test_the_detail_page_shows_the_freeze_and_who_lifted_it(
    signed_in, november, django_capture_on_commit_callbacks
):
    budget = _research_budget()
    with time_machine.travel(dt.datetime(2026, 11, 16, 9, tzinfo=dt.UTC), tick=False):
        budget.amount = Decimal("900.00")
        budget.save()
        with django_capture_on_commit_callbacks(execute=True):
            services.budgets_evaluate()
        admin = signed_in(november.admin)
        page = admin.get(budget.get_absolute_url()).content.decode()
        assert "Research is under a deployment freeze" in page
        assert "Budget Research GPUs: 100 % of 900.00 USD spent in 2026-11" in page
        assert "Lift the freeze" in page
        assert "queued" not in page
        assert "to rhea@example.com" in page

        response = admin.post(
            f"/costs/budgets/{budget.pk}/lift-freeze/", {"reason": "Launch week exception"}
        )
        assert response.status_code == 302
        assert freezes_in_force(business_unit_ids=[november.research.pk]) == {}
        page = admin.get(budget.get_absolute_url()).content.decode()
    assert "Research is under a deployment freeze" not in page
    assert "Launch week exception" in page
    assert f"by {november.admin}" in page


def test_only_a_platform_admin_lifts_a_freeze(signed_in, november):
    freeze_start(business_unit=november.research, reason="Budget breach", by=None)
    budget = _research_budget()
    page = signed_in(november.finance).get(budget.get_absolute_url()).content.decode()
    assert "Lift the freeze" not in page
    response = signed_in(november.finance).post(
        f"/costs/budgets/{budget.pk}/lift-freeze/", {"reason": "Please"}
    )
    assert response.status_code == 403
    assert freezes_in_force(business_unit_ids=[november.research.pk])


def test_finance_creates_a_budget_from_the_form(signed_in, november):
    response = signed_in(november.finance).post(
        "/costs/budgets/new/",
        {
            "name": "LLM pretraining",
            "business_unit": november.research.pk,
            "amount": "250.00",
            "currency": "usd",
            "basis": "billed",
            "tag_key": "project",
            "tag_value": "llm-pretrain",
            "thresholds": "80, 100",
            "forecast_thresholds": "",
            "freeze_at_percent": "",
            "first_month": "2026-11",
            "last_month": "",
            "notify": "lead@example.com; cfo@example.com",
        },
    )
    budget = Budget.objects.get(name="LLM pretraining")
    assert response.status_code == 302
    assert response.url == budget.get_absolute_url()
    assert (budget.currency, budget.thresholds, budget.forecast_thresholds) == (
        "USD",
        [80, 100],
        [],
    )
    assert budget.freeze_at_percent is None
    assert budget.first_month == dt.date(2026, 11, 1)
    assert budget.notify == ["lead@example.com", "cfo@example.com"]


def test_the_form_says_what_is_wrong(signed_in, november):
    response = signed_in(november.finance).post(
        "/costs/budgets/new/",
        {
            "name": "Again",
            "business_unit": november.research.pk,
            "amount": "10",
            "currency": "USD",
            "basis": "billed",
            "thresholds": "80, lots",
            "first_month": "November",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "&#x27;lots&#x27; is not a whole percentage" in page
    assert "is not a month written YYYY-MM" in page
    response = signed_in(november.finance).post(
        "/costs/budgets/new/",
        {
            "name": "Again",
            "business_unit": november.research.pk,
            "amount": "10",
            "currency": "USD",
            "basis": "billed",
        },
    )
    assert "already covers Research" in response.content.decode()


def test_the_owner_reads_but_does_not_set_their_budget(signed_in, november):
    budget = _research_budget()
    client = signed_in(november.researcher)
    assert client.get(f"/costs/budgets/{budget.pk}/").status_code == 200
    assert client.get("/costs/budgets/new/").status_code == 403
    response = client.post(
        f"/costs/budgets/{budget.pk}/edit/",
        {
            "name": "Research GPUs",
            "business_unit": november.research.pk,
            "amount": "1000000.00",
            "currency": "USD",
            "basis": "billed",
            "thresholds": "50, 80, 100",
            "forecast_thresholds": "100",
            "freeze_at_percent": "",
        },
    )
    assert response.status_code == 403
    budget.refresh_from_db()
    assert budget.freeze_at_percent == 100


def test_a_member_who_is_not_the_owner_may_not_change_budgets(signed_in, november):
    november.research.owner = november.admin
    november.research.save()
    client = signed_in(november.researcher)
    budget = _research_budget()
    assert client.get("/costs/budgets/new/").status_code == 403
    assert client.get(f"/costs/budgets/{budget.pk}/edit/").status_code == 403
    assert client.post(f"/costs/budgets/{budget.pk}/delete/").status_code == 403
    assert (
        signed_in(november.ads_engineer).post(f"/costs/budgets/{budget.pk}/delete/").status_code
        == 404
    )
    assert Budget.objects.filter(pk=budget.pk).exists()


def test_finance_deletes_a_budget(signed_in, november):
    budget = _ads_budget()
    response = signed_in(november.finance).post(f"/costs/budgets/{budget.pk}/delete/")
    assert response.status_code == 302
    assert not Budget.objects.filter(pk=budget.pk).exists()


def test_the_dashboard_shows_the_budgets_nearest_their_limit(signed_in, november):
    with time_machine.travel(dt.datetime(2026, 11, 16, 9, tzinfo=dt.UTC), tick=False):
        page = signed_in(november.researcher).get("/").content.decode()
    assert "Budgets · November 2026" in page
    assert "Research GPUs" in page
    assert "Ads serving" not in page
    assert "/costs/budgets/?month=2026-11" in page
    assert 'href="/costs/budgets/"' in page, "the nav links to the budgets"


def test_the_budget_list_has_no_n_plus_one(signed_in, november):
    client = signed_in(november.finance)
    client.get("/costs/budgets/")  # warm the session and role caches

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/costs/budgets/").status_code == 200
        return len(ctx)

    few = queries()
    _more_budgets(november, 6)
    assert queries() == few
    assert few <= 13  # one of them reads the units' cost forecasts for the month-end projection


# --- API --------------------------------------------------------------------------------------


def test_the_api_lists_budgets_with_the_months_numbers(api, november):
    body = api(november.finance).get("/api/v1/budgets/?month=2026-11").json()
    assert body["count"] == 2
    research_budget = next(b for b in body["results"] if b["business_unit"] == "RES")
    assert research_budget["amount"] == "1000.00"
    assert research_budget["thresholds"] == [50, 80, 100]
    assert research_budget["current"] == {
        "month": "2026-11",
        "in_force": True,
        "status": "alert",
        "spend": "900.00",
        "percent": "90.00",
        "projection": "1800.00",
        "projected_percent": "180.00",
        "data_until": "2026-11-15",
        "days_with_data": 15,
        "days_in_month": 30,
        "freeze": None,
    }


def test_the_api_scopes_a_member_and_refuses_them_writes(api, november):
    client = api(november.ads_engineer)
    body = client.get("/api/v1/budgets/").json()
    assert [b["business_unit"] for b in body["results"]] == ["ADS"]
    assert client.get(f"/api/v1/budgets/{_research_budget().pk}/").status_code == 404
    response = client.post(
        "/api/v1/budgets/",
        {"name": "x", "business_unit": "ADS", "amount": "5", "currency": "USD"},
        format="json",
    )
    assert response.status_code == 403
    assert client.delete(f"/api/v1/budgets/{_ads_budget().pk}/").status_code == 403
    assert APIClient().get("/api/v1/budgets/").status_code == 401


def test_the_api_creates_changes_and_deletes_budgets(api, november):
    client = api(november.admin)
    response = client.post(
        "/api/v1/budgets/",
        {
            "name": "LLM",
            "business_unit": "RES",
            "amount": "300",
            "currency": "USD",
            "tag_key": "user:Team",
            "tag_value": "Research",
            "forecast_thresholds": [],
            "first_month": "2026-11",
            "notify": ["lead@example.com"],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["first_month"] == "2026-11"
    assert created["freeze_at_percent"] == 100
    assert created["current"]["spend"] == "900.00"

    patched = client.patch(
        f"/api/v1/budgets/{created['id']}/", {"amount": "450.00"}, format="json"
    ).json()
    assert patched["amount"] == "450.00"
    assert patched["tag_value"] == "Research"
    assert patched["forecast_thresholds"] == []

    bad = client.patch(f"/api/v1/budgets/{created['id']}/", {"amount": "4.005"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["detail"] == "4.005 has more decimals than USD has."

    clash = client.post(
        "/api/v1/budgets/",
        {"name": "Dup", "business_unit": "RES", "amount": "5", "currency": "USD"},
        format="json",
    )
    assert clash.status_code == 409
    assert client.get("/api/v1/budgets/?month=later").status_code == 400
    assert client.delete(f"/api/v1/budgets/{created['id']}/").status_code == 204
    assert not Budget.objects.filter(pk=created["id"]).exists()


def test_the_api_lists_a_budgets_alerts_and_the_freeze(api, november):
    budget = _research_budget()
    with time_machine.travel(dt.datetime(2026, 11, 16, 9, tzinfo=dt.UTC), tick=False):
        services.budget_save(
            budget=budget,
            name=budget.name,
            business_unit=budget.business_unit,
            amount=Decimal("900.00"),
            currency="USD",
            by=november.finance,
        )
        services.budgets_evaluate()
        body = api(november.researcher).get(f"/api/v1/budgets/{budget.pk}/alerts/").json()
        current = api(november.researcher).get(f"/api/v1/budgets/{budget.pk}/").json()["current"]
    assert body["count"] == 6
    enforcement = next(a for a in body["results"] if a["is_enforcement"])
    assert enforcement["threshold"] == 100
    assert enforcement["spend"] == "900.00"
    assert enforcement["freeze"]["reason"] == (
        "Budget Research GPUs: 100 % of 900.00 USD spent in 2026-11"
    )
    assert current["status"] == "frozen"
    assert current["freeze"]["id"] == enforcement["freeze"]["id"]


def test_the_api_list_has_no_n_plus_one(api, november):
    client = api(november.finance)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/api/v1/budgets/").status_code == 200
        return len(ctx)

    few = queries()
    _more_budgets(november, 6)
    assert queries() == few
    assert few <= 9


def test_the_budgets_api_is_in_the_openapi_schema(signed_in, november):
    schema = signed_in(november.finance).get("/api/schema/").content.decode()
    assert "/api/v1/budgets/{id}/alerts/" in schema
    assert "BudgetInput" in schema
