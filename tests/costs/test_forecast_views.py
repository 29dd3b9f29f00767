"""Forecast pages and API: who sees which forecast, what the pages show, the event calendar,
left-out days, and query counts that do not grow with the rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from costs.models import (
    BusinessEvent,
    CostAnomaly,
    Forecast,
    ForecastExclusion,
    ForecastPoint,
    SubjectKind,
)
from governance.choices import Role
from registry.models import CapacityPool, Endpoint, HardwareProfile
from tests.factories import PASSWORD, BusinessUnitFactory, UserFactory

NOW = dt.datetime(2026, 11, 16, 9, tzinfo=dt.UTC)
END = dt.date(2026, 11, 15)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


def make_forecast(*, measure: str = "cost", currency: str = "USD", level: int = 100, **subject):
    """A stored forecast (as a refresh leaves it): 30 fitted days and 90 ahead."""
    kind = {"business_unit": SubjectKind.UNIT, "pool": SubjectKind.POOL}.get(
        next(iter(subject)), SubjectKind.ENDPOINT
    )
    forecast = Forecast.objects.create(
        kind=kind,
        measure=measure,
        currency=currency if measure == "cost" else "",
        method="ETS(A,Ad,A) weekly",
        interval_percent=D("99.9"),
        history_start=END - dt.timedelta(days=29),
        history_end=END,
        mape=D("4.20"),
        generated_at=NOW,
        **subject,
    )
    ForecastPoint.objects.bulk_create(
        ForecastPoint(
            forecast=forecast,
            day=END + dt.timedelta(days=n),
            expected=D(level),
            lower=D(level - 20),
            upper=D(level + 20),
            low_quantile=D(level - 10),
        )
        for n in range(-29, 91)
    )
    return forecast


@pytest.fixture
def world(org):
    """Research and Ads with a cost forecast each, Ads' endpoint's, a pool's, and an anomaly."""
    org.research.owner = org.researcher
    org.research.save()
    hw = HardwareProfile.objects.create(name="1 x H100", accelerator="H100")
    plat = BusinessUnitFactory(code="PLAT", name="Platform")
    pool = CapacityPool.objects.create(
        code="h100", name="H100 pool", provider="aws", hardware_profile=hw,
        accelerator_count=8, owner=plat,
    )  # fmt: skip
    endpoint = Endpoint.objects.create(
        provider="aws", account_id="1", name="ads-ctr", resource_id="arn:x", business_unit=org.ads
    )
    res = make_forecast(business_unit=org.research, level=1000)
    ads = make_forecast(business_unit=org.ads)
    ads_endpoint = make_forecast(endpoint=endpoint, measure="gpu_hours", level=24)
    pool_hours = make_forecast(pool=pool, measure="gpu_hours", level=500)
    spike = CostAnomaly.objects.create(
        forecast=res, day=dt.date(2026, 11, 12), actual=D(3000), expected=D(1000),
        lower=D(980), upper=D(1020), size=D(1980), direction="above", detected_at=NOW,
    )  # fmt: skip
    board = UserFactory(username="ines", roles=[Role.BOARD_INFRA])
    return {
        "org": org, "res": res, "ads": ads, "endpoint": ads_endpoint, "pool": pool_hours,
        "spike": spike, "board": board, "unit_pool": pool, "ads_endpoint": endpoint,
    }  # fmt: skip


@pytest.fixture
def signed_in(client):
    def sign_in(user):
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return sign_in


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- Pages ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/costs/forecasts/", "/costs/anomalies/", "/costs/events/", "/costs/events/new/"]
)
def test_forecast_pages_need_sign_in(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_the_list_shows_each_readable_forecast_with_its_outlook(signed_in, world):
    page = signed_in(world["org"].finance).get("/costs/forecasts/").content.decode()
    assert "RES · Research" in page
    assert "ADS · Ads Ranking" in page
    assert "Pool H100 pool" in page
    assert "Endpoint ads-ctr" in page
    # From today (16 Nov) the next 30 days at 1,000 a day, and 90.
    assert "30,000.00 USD" in page
    assert "90,000.00 USD" in page
    assert "4.20 %" in page
    assert f'href="/costs/anomalies/?forecast={world["res"].pk}"' in page


def test_a_unit_member_reads_only_their_units_forecasts(signed_in, world):
    org = world["org"]
    client = signed_in(org.ads_engineer)
    page = client.get("/costs/forecasts/").content.decode()
    assert "ADS · Ads Ranking" in page
    assert "Endpoint ads-ctr" in page
    assert "RES · Research" not in page
    assert "Pool H100 pool" not in page  # the pool is Platform's
    assert client.get(f"/costs/forecasts/{world['res'].pk}/").status_code == 404
    assert "2026-11-12" not in client.get("/costs/anomalies/").content.decode()
    assert client.get(f"/costs/forecasts/{world['ads'].pk}/").status_code == 200


def test_the_board_reads_every_pools_forecast_but_not_other_units_spend(signed_in, world):
    client = signed_in(world["board"])
    page = client.get("/costs/forecasts/").content.decode()
    assert "Pool H100 pool" in page
    assert "RES · Research" not in page


def test_filters_narrow_the_list(signed_in, world):
    client = signed_in(world["org"].finance)
    page = client.get("/costs/forecasts/?kind=pool").content.decode()
    assert "Pool H100 pool" in page
    assert "RES · Research" not in page
    page = client.get("/costs/forecasts/?measure=gpu_hours&kind=endpoint").content.decode()
    assert "Endpoint ads-ctr" in page
    assert "Pool H100 pool" not in page
    page = client.get("/costs/forecasts/?kind=planet").content.decode()
    assert "cannot be applied" in page


def test_the_forecast_page_draws_the_chart_and_lists_anomalies_and_events(signed_in, world):
    org = world["org"]
    BusinessEvent.objects.create(
        name="Launch", starts_on=dt.date(2026, 11, 20), ends_on=dt.date(2026, 11, 30),
        uplift_percent=D(25), business_unit=org.research,
    )  # fmt: skip
    BusinessEvent.objects.create(
        name="Ads promo", starts_on=dt.date(2026, 11, 20), ends_on=dt.date(2026, 11, 30),
        uplift_percent=D(10), business_unit=org.ads,
    )  # fmt: skip
    response = signed_in(org.researcher).get(f"/costs/forecasts/{world['res'].pk}/")
    page = response.content.decode()
    assert response.status_code == 200
    assert f'data-chart="forecast-{world["res"].pk}"' in page
    assert '"fill": "tonexty"' in page  # the interval band
    assert "Anomaly" in page
    assert "3,000.00 USD" in page
    assert "1,980.00 USD" in page
    assert f'id="anomaly-{world["spike"].pk}"' in page
    assert "Launch" in page
    assert "Ads promo" not in page
    assert "Leave these days out" in page  # the unit's owner may


def test_leaving_days_out_from_the_forecast_page(signed_in, world):
    org = world["org"]
    url = f"/costs/forecasts/{world['res'].pk}/"
    form = {"starts_on": "2026-11-09", "ends_on": "2026-11-10", "reason": "Outage"}
    client = signed_in(org.researcher)  # Research's owner
    assert client.post(url, {**form, "ends_on": "2026-11-01"}).status_code == 400
    response = client.post(url, form)
    assert response.status_code == 302
    exclusion = ForecastExclusion.objects.get()
    assert (exclusion.business_unit, exclusion.reason) == (org.research, "Outage")
    assert "Outage" in client.get(url).content.decode()
    response = client.post(
        f"/costs/forecasts/exclusions/{exclusion.pk}/delete/", {"forecast": world["res"].pk}
    )
    assert response.status_code == 302
    assert not ForecastExclusion.objects.exists()

    client.logout()
    other = signed_in(org.ads_engineer)
    assert other.post(f"/costs/forecasts/{world['ads'].pk}/", form).status_code == 403


def test_the_anomaly_list_filters_and_links_to_the_forecast(signed_in, world):
    client = signed_in(world["org"].finance)
    page = client.get("/costs/anomalies/").content.decode()
    assert f"/costs/forecasts/{world['res'].pk}/#anomaly-{world['spike'].pk}" in page
    assert "1,980.00 USD" in page
    assert "Thu 12 Nov 2026" in page
    assert "12 Nov 2026" not in client.get("/costs/anomalies/?direction=below").content.decode()
    assert "12 Nov 2026" not in client.get("/costs/anomalies/?kind=pool").content.decode()


def test_business_events_are_listed_created_changed_and_deleted(signed_in, world):
    org = world["org"]
    client = signed_in(org.researcher)  # owns Research
    form = {
        "name": "Research summit",
        "kind": "campaign",
        "starts_on": "2026-12-01",
        "ends_on": "2026-12-03",
        "uplift_percent": "15",
        "business_unit": org.research.pk,
    }
    assert client.get("/costs/events/new/").status_code == 200
    refused = client.post("/costs/events/new/", {**form, "business_unit": org.ads.pk})
    assert refused.status_code == 400  # not a unit they own
    whole = client.post("/costs/events/new/", {**form, "business_unit": ""})
    assert whole.status_code == 403  # the whole organisation is finance's
    assert client.post("/costs/events/new/", form).status_code == 302
    event = BusinessEvent.objects.get()
    assert (event.business_unit, event.uplift_percent, event.created_by) == (
        org.research,
        D(15),
        org.researcher,
    )
    page = client.get("/costs/events/").content.decode()
    assert "Research summit" in page
    assert f"/costs/events/{event.pk}/" in page
    response = client.post(f"/costs/events/{event.pk}/", {**form, "uplift_percent": "-5"})
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.uplift_percent == D(-5)
    client.logout()

    ads = signed_in(org.ads_engineer)
    assert "Research summit" not in ads.get("/costs/events/").content.decode()
    assert ads.get(f"/costs/events/{event.pk}/").status_code == 404
    assert ads.get("/costs/events/new/").status_code == 403
    ads.logout()

    finance = signed_in(org.finance)
    assert finance.post(f"/costs/events/{event.pk}/delete/").status_code == 302
    assert not BusinessEvent.objects.exists()


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx)


def test_list_pages_do_not_grow_their_queries_with_the_rows(signed_in, world):
    org = world["org"]
    client = signed_in(org.finance)
    urls = ["/costs/forecasts/", "/costs/anomalies/", "/costs/events/"]
    BusinessEvent.objects.create(
        name="Lull", starts_on=END, ends_on=END, uplift_percent=D(-5), business_unit=org.ads
    )
    for url in urls:
        client.get(url)
    few = {url: _queries(client, url) for url in urls}
    for n in range(5):
        unit = BusinessUnitFactory(code=f"U{n}")
        forecast = make_forecast(business_unit=unit)
        CostAnomaly.objects.create(
            forecast=forecast, day=END, actual=D(1), expected=D(100), lower=D(80),
            upper=D(120), size=D(-79), direction="below", detected_at=NOW,
        )  # fmt: skip
        BusinessEvent.objects.create(
            name=f"E{n}", starts_on=END, ends_on=END, uplift_percent=D(5), business_unit=unit
        )
    for url in urls:
        assert _queries(client, url) == few[url], url
        assert few[url] <= 12, url
    detail = f"/costs/forecasts/{world['res'].pk}/"
    assert _queries(client, detail) <= 14


# --- API ------------------------------------------------------------------------------------------


def test_the_api_lists_forecasts_in_scope_with_their_points(world):
    org = world["org"]
    body = api(org.ads_engineer).get("/api/v1/forecasts/").json()
    assert {r["id"] for r in body["results"]} == {world["ads"].pk, world["endpoint"].pk}
    assert api(org.ads_engineer).get(f"/api/v1/forecasts/{world['res'].pk}/").status_code == 404

    every = api(org.finance).get("/api/v1/forecasts/?kind=unit&measure=cost").json()
    assert {r["id"] for r in every["results"]} == {world["res"].pk, world["ads"].pk}
    one = api(org.finance).get(f"/api/v1/forecasts/{world['res'].pk}/").json()
    assert one["business_unit"] == "RES"
    assert one["pool"] is None
    assert one["subject"] == "RES — Research"
    assert (one["mape"], one["interval_percent"], one["anomalies"]) == ("4.20", "99.90", 1)
    assert len(one["points"]) == 120
    first_ahead = next(p for p in one["points"] if p["ahead"])
    assert first_ahead == {
        "day": "2026-11-16",
        "expected": "1000.0000",
        "lower": "980.0000",
        "upper": "1020.0000",
        "low_quantile": "990.0000",
        "uplift_percent": "0.00",
        "ahead": True,
    }
    pools = api(org.finance).get("/api/v1/forecasts/?pool=h100").json()
    assert [r["id"] for r in pools["results"]] == [world["pool"].pk]


def test_the_api_lists_anomalies_in_scope(world):
    org = world["org"]
    body = api(org.researcher).get("/api/v1/anomalies/").json()
    assert [a["id"] for a in body["results"]] == [world["spike"].pk]
    anomaly = body["results"][0]
    assert (anomaly["kind"], anomaly["measure"], anomaly["size"]) == ("unit", "cost", "1980.0000")
    assert api(org.ads_engineer).get("/api/v1/anomalies/").json()["count"] == 0
    assert api(org.finance).get("/api/v1/anomalies/?direction=below").json()["count"] == 0
    since = api(org.finance).get("/api/v1/anomalies/?date_from=2026-11-13").json()
    assert since["count"] == 0


def test_business_events_through_the_api(world):
    org = world["org"]
    payload = {
        "name": "recsys v4",
        "kind": "launch",
        "starts_on": "2026-12-01",
        "ends_on": "2026-12-21",
        "uplift_percent": "25.00",
        "business_unit": "RES",
    }
    created = api(org.researcher).post("/api/v1/business-events/", payload, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["business_unit"], body["uplift_percent"], body["created_by"]) == (
        "RES",
        "25.00",
        "rhea",
    )
    refused = api(org.ads_engineer).post("/api/v1/business-events/", payload, format="json")
    assert refused.status_code == 403
    assert "owner of the business unit" in refused.json()["detail"]
    bad = api(org.finance).post(
        "/api/v1/business-events/", {**payload, "ends_on": "2026-11-01"}, format="json"
    )
    assert bad.status_code == 400
    assert "before it starts" in bad.json()["detail"]
    unknown = api(org.finance).post(
        "/api/v1/business-events/", {**payload, "business_unit": "NOPE"}, format="json"
    )
    assert unknown.status_code == 400
    assert "business_unit" in unknown.json()
    pk = body["id"]
    patched = api(org.researcher).patch(
        f"/api/v1/business-events/{pk}/", {"uplift_percent": "30"}, format="json"
    )
    assert patched.status_code == 200
    assert patched.json()["uplift_percent"] == "30.00"
    assert patched.json()["name"] == "recsys v4"
    listed = api(org.ads_engineer).get("/api/v1/business-events/").json()
    assert listed["count"] == 0
    org_wide = api(org.finance).post(
        "/api/v1/business-events/",
        {**payload, "business_unit": None, "uplift_percent": "-10"},
        format="json",
    )
    assert org_wide.status_code == 201
    assert org_wide.json()["subject"] == "Whole organisation"
    assert api(org.ads_engineer).get("/api/v1/business-events/").json()["count"] == 1
    assert api(org.ads_engineer).delete(f"/api/v1/business-events/{pk}/").status_code == 404
    assert api(org.researcher).delete(f"/api/v1/business-events/{pk}/").status_code == 204
    assert BusinessEvent.objects.count() == 1


def test_forecast_exclusions_through_the_api(world):
    org = world["org"]
    payload = {
        "starts_on": "2026-11-09",
        "ends_on": "2026-11-10",
        "reason": "Outage",
        "business_unit": "RES",
    }
    created = api(org.researcher).post("/api/v1/forecast-exclusions/", payload, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert (
        api(org.ads_engineer)
        .post("/api/v1/forecast-exclusions/", payload, format="json")
        .status_code
        == 403
    )
    missing = api(org.finance).post(
        "/api/v1/forecast-exclusions/", {**payload, "reason": ""}, format="json"
    )
    assert missing.status_code == 400
    assert api(org.researcher).get("/api/v1/forecast-exclusions/").json()["count"] == 1
    assert api(org.ads_engineer).get("/api/v1/forecast-exclusions/").json()["count"] == 0
    assert (
        api(org.finance).get("/api/v1/forecast-exclusions/?active_on=2026-11-10").json()["count"]
        == 1
    )
    assert api(org.researcher).delete(f"/api/v1/forecast-exclusions/{pk}/").status_code == 204
    assert not ForecastExclusion.objects.exists()


def test_api_lists_do_not_grow_their_queries_with_the_rows(world):
    client = api(world["org"].finance)
    urls = [
        "/api/v1/forecasts/",
        "/api/v1/anomalies/",
        "/api/v1/business-events/",
        "/api/v1/forecast-exclusions/",
    ]
    BusinessEvent.objects.create(name="Lull", starts_on=END, ends_on=END, uplift_percent=D(-5))
    ForecastExclusion.objects.create(starts_on=END, ends_on=END, reason="x")
    for url in urls:
        client.get(url)
    few = {url: _queries(client, url) for url in urls}
    for n in range(4):
        unit = BusinessUnitFactory(code=f"V{n}")
        forecast = make_forecast(business_unit=unit)
        CostAnomaly.objects.create(
            forecast=forecast, day=END, actual=D(1), expected=D(100), lower=D(80),
            upper=D(120), size=D(-79), direction="below", detected_at=NOW,
        )  # fmt: skip
        BusinessEvent.objects.create(
            name=f"E{n}", starts_on=END, ends_on=END, uplift_percent=D(5), business_unit=unit
        )
        ForecastExclusion.objects.create(starts_on=END, ends_on=END, reason="x", business_unit=unit)
    for url in urls:
        assert _queries(client, url) == few[url], url
        assert few[url] <= 6, url
