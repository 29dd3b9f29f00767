"""Statement pages and API: what finance and a unit's people see, do, and export."""

import csv
import io
from decimal import Decimal as D

import pytest
from openpyxl import load_workbook
from rest_framework.test import APIClient

from costs.models import CapacityQuota, PeriodStatus
from governance.tokens import api_token_create
from registry.models import CapacityPool, Endpoint, HardwareProfile
from tests.costs.conftest import CHECKOUT
from tests.factories import PASSWORD, BusinessUnitFactory, UserFactory, focus_line, write_focus

MONTH = "/costs/statements/2026-10/"


@pytest.fixture
def member(abc):
    return UserFactory(username="b-member", units=[abc["B"]])


@pytest.fixture
def signed_in(client):
    def sign_in(user):
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return sign_in


def api_as(user) -> APIClient:
    api = APIClient()
    _, key = api_token_create(user=user, name="tests", scope="write", days=730, by=user)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


@pytest.mark.parametrize(
    "url", ["/costs/statements/", MONTH, f"{MONTH}A/", "/costs/reconciliation/"]
)
def test_pages_require_sign_in(client, abc, url):
    assert client.get(url).status_code == 302


def test_finance_reviews_publishes_and_closes(
    abc, signed_in, mailoutbox, django_capture_on_commit_callbacks
):
    client = signed_in(abc["finance"])
    page = client.get(MONTH).content.decode()
    assert "Draft" in page
    assert "Publish and e-mail the owners" in page
    assert 'data-unit="A"><strong>720.00 USD' in page
    assert "= the month's billed total 1,200.00 USD ✓" in page

    detail = client.get(f"{MONTH}A/").content.decode()
    assert "Share of Platform overhead" in detail
    assert "proportional: 600.00 USD of 1,000.00 USD direct cost after credits = 60.00 %" in detail

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{MONTH}publish/", follow=True)
    assert "is published" in response.content.decode()
    assert len(mailoutbox) == 4
    response = client.post(f"{MONTH}close/", {"confirm": "yes"}, follow=True)
    page = response.content.decode()
    assert "is closed" in page
    assert "Publish and e-mail" not in page
    again = client.post(f"{MONTH}publish/", follow=True).content.decode()
    assert "closed month never changes" in again


def test_a_member_sees_only_their_units_published_statement(abc, member, signed_in):
    client = signed_in(member)
    assert "has not published" in client.get(MONTH).content.decode()
    assert client.get(f"{MONTH}B/").status_code == 404  # a draft is finance's
    assert client.post(f"{MONTH}publish/").status_code == 403
    assert client.get("/costs/reconciliation/").status_code == 403
    api_as(abc["finance"]).post("/api/v1/statements/2026-10/publish/")
    page = client.get(MONTH).content.decode()
    assert 'data-unit="B"' in page
    assert 'data-unit="A"' not in page
    assert "UNALLOCATED" not in page
    assert client.get(f"{MONTH}B/").status_code == 200
    assert client.get(f"{MONTH}A/").status_code == 404
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"{MONTH}export/?format=csv").content.decode()))
    )
    assert {r["business_unit"] for r in rows} == {"B"}


def test_statement_drill_down_shows_cost_per_inference(abc, signed_in):
    import datetime as dt

    from registry.models import EndpointUsage

    endpoint = Endpoint.objects.create(
        provider="aws",
        account_id="111122223333",
        region="us-east-1",
        name="checkout",
        resource_id=CHECKOUT,
        business_unit=abc["B"],
    )
    EndpointUsage.objects.create(endpoint=endpoint, day=dt.date(2026, 10, 5), invocations=1_500_000)
    page = signed_in(abc["finance"]).get(f"{MONTH}B/").content.decode()
    assert "checkout" in page
    assert "1,500,000" in page
    assert "0.2000 USD" in page  # 300.00 over 1.5M invocations per 1k


def test_exports_from_the_page_and_the_api_match_the_statements(abc, signed_in):
    client = signed_in(abc["finance"])
    xlsx = client.get(f"{MONTH}export/?format=xlsx")
    assert xlsx["Content-Disposition"] == 'attachment; filename="statements-2026-10.xlsx"'
    book = load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == ["Summary", "A", "B", "C", "PLAT"]
    api = api_as(abc["finance"])
    focus = api.get("/api/v1/statements/?month=2026-10&format=focus")
    assert focus.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(focus.streaming_content).decode())))
    allocated = {}
    for row in rows:
        unit = row["x_CapgovBusinessUnit"]
        allocated[unit] = allocated.get(unit, D(0)) + D(row["x_CapgovAllocatedCost"])
    assert allocated == {"A": D("720.00"), "B": D("360.00"), "C": D("120.00"), "PLAT": D("0.00")}
    body = api.get("/api/v1/statements/?month=2026-10").json()
    usd = body["currencies"]["USD"]
    assert {s["business_unit"]: s["total"] for s in usd["statements"]} == {
        "A": "720.00",
        "B": "360.00",
        "C": "120.00",
        "PLAT": "0.00",
    }
    assert usd["reconciles"] is True
    assert api.get("/api/v1/statements/?month=2026-10&format=pdf").status_code == 404
    assert api.get("/api/v1/statements/?month=Oct").status_code == 400


def test_api_lifecycle_and_permissions(abc, member):
    finance, api = abc["finance"], api_as(abc["finance"])
    assert api_as(member).post("/api/v1/statements/2026-10/publish/").status_code == 403
    assert api.post("/api/v1/statements/2026-10/close/").status_code == 409  # not published
    published = api.post("/api/v1/statements/2026-10/publish/")
    assert published.status_code == 200
    assert published.json()["status"] == "published"
    assert api.post("/api/v1/statements/2026-10/close/").json()["status"] == "closed"
    assert api.post("/api/v1/statements/2026-10/publish/").status_code == 409
    one = api_as(member).get("/api/v1/statements/2026-10/B/").json()
    assert one["statements"][0]["total"] == "360.00"
    assert api_as(member).get("/api/v1/statements/2026-10/A/").status_code == 404
    recon = api.get("/api/v1/reconciliation/?month=2026-10").json()
    assert recon[0]["reconciles"] is True
    assert recon[0]["difference"] == "0.0000"
    assert api_as(member).get("/api/v1/reconciliation/?month=2026-10").status_code == 403
    assert abc["finance"] == finance


def test_quotas_api(abc, member):
    pool = CapacityPool.objects.create(
        code="h100",
        name="H100",
        provider="aws",
        hardware_profile=HardwareProfile.objects.create(name="1 x H100"),
        accelerator_count=8,
        owner=abc["PLAT"],
    )
    body = {
        "business_unit": "B",
        "pool": "h100",
        "first_month": "2026-10",
        "gpu_hours": "100",
        "unit_price": "2.00",
        "currency": "usd",
        "multiplier": "1.5",
    }
    assert api_as(member).post("/api/v1/quotas/", body, format="json").status_code == 403
    created = api_as(abc["finance"]).post("/api/v1/quotas/", body, format="json")
    assert created.status_code == 201, created.json()
    assert CapacityQuota.objects.get().currency == "USD"
    bad = api_as(abc["finance"]).post(
        "/api/v1/quotas/", {**body, "first_month": "2026-11", "multiplier": "0.5"}, format="json"
    )
    assert bad.status_code == 400
    assert "at least 1" in str(bad.json())
    assert len(api_as(member).get("/api/v1/quotas/").json()["results"]) == 1
    other = UserFactory(username="c-member", units=[abc["C"]])
    assert api_as(other).get("/api/v1/quotas/").json()["results"] == []
    assert pool.quotas.count() == 1


def test_list_pages_do_not_grow_with_units(abc, signed_in, tmp_path, django_assert_max_num_queries):
    from costs import services

    lines = []
    for i in range(12):
        unit = BusinessUnitFactory(code=f"U{i}", name=f"Unit {i}")
        services.allocation_rule_save(
            business_unit=unit, tag_key="team", tag_values=[f"u{i}"], priority=10
        )
        lines.append(focus_line(cost="10.00", tags={"team": f"u{i}"}, resource=f"u{i}"))
    lines += [
        focus_line(cost="600.00", tags={"team": "a"}, resource="a-gpu"),
        focus_line(cost="200.00", tags={"team": "plat"}, resource="control-plane"),
    ]
    services.billing_import(path=write_focus(tmp_path / "more.csv", lines))
    client = signed_in(abc["finance"])
    with django_assert_max_num_queries(30):
        assert client.get(MONTH).status_code == 200
    api = api_as(abc["finance"])
    with django_assert_max_num_queries(30):
        assert api.get("/api/v1/statements/?month=2026-10").status_code == 200
    api.post("/api/v1/statements/2026-10/publish/")
    with django_assert_max_num_queries(20):
        assert client.get(MONTH).status_code == 200
    with django_assert_max_num_queries(12):
        assert client.get("/costs/statements/").status_code == 200
    assert client.get(MONTH).context["result"].status == PeriodStatus.PUBLISHED
