"""Forecast services: the series, the refresh with its anomalies, exclusions and events, and the
budgets' month-end projection from the forecast."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal as D

import pytest
import time_machine
from django.conf import settings

from costs import forecasts, selectors, services
from costs.models import (
    BillingImport,
    Budget,
    BusinessEvent,
    CostAnomaly,
    CostRow,
    Forecast,
    ForecastExclusion,
    ForecastPoint,
    Measure,
    SubjectKind,
    TagSet,
)
from governance.exceptions import DomainError, PermissionDeniedError
from registry.models import (
    CapacityPool,
    Endpoint,
    EndpointUsage,
    HardwarePrice,
    HardwareProfile,
    PoolUsage,
)
from tests.factories import focus_line, write_focus

FIRST = dt.date(2026, 8, 3)  # a Monday: the first day of the bills below
NOW = dt.datetime(2026, 11, 16, 6, 0, tzinfo=dt.UTC)  # history to 15 Nov
WEEK = (0, 40, 50, 30, 10, -120, -150)
ARN = "arn:aws:sagemaker:us-east-1:111122223333:endpoint/ranker-prod"


def usual(day: dt.date, base: int = 1000, seed: int = 0) -> D:
    """A unit's usual day: ``base`` plus a weekly shape and a little noise (fixed)."""
    rng = random.Random(f"{seed}:{day.isoformat()}")  # noqa: S311 - test data
    return D(f"{base + WEEK[day.weekday()] + rng.gauss(0, 15):.2f}")


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


class Bill:
    """Cost rows written straight to the table (the importer's output), per unit and day."""

    def __init__(self) -> None:
        self.imported = BillingImport.objects.create(file_name="bill.csv", file_path="bill.csv")
        self.tag_sets: dict[object, TagSet] = {}

    def add(
        self,
        unit,
        day: dt.date,
        amount: D | str,
        *,
        currency: str = "USD",
        category: str = "Usage",
        resource: str = "",
        effective: D | str | None = None,
    ) -> None:
        key = unit.pk if unit else None
        if key not in self.tag_sets:
            self.tag_sets[key] = TagSet.objects.create(
                digest=f"ts-{key}", tags={"team": unit.code if unit else "?"}, business_unit=unit
            )
        CostRow.objects.create(
            billing_import=self.imported,
            source="focus",
            provider="AWS",
            billing_account_id="1",
            billing_period=day.replace(day=1),
            usage_date=day,
            charge_category=category,
            resource_id=resource,
            tag_set=self.tag_sets[key],
            currency=currency,
            billed_cost=D(amount),
            effective_cost=D(effective if effective is not None else amount),
            list_cost=D(amount),
        )

    def usual(self, unit, first: dt.date, last: dt.date, base: int = 1000, **kwargs) -> None:
        for day in days(first, last):
            self.add(unit, day, usual(day, base, seed=unit.pk), **kwargs)


@pytest.fixture
def bill(db) -> Bill:
    return Bill()


def refresh(at: dt.datetime, **kwargs) -> forecasts.RefreshReport:
    with time_machine.travel(at, tick=False):
        return forecasts.forecasts_refresh_all(now=at, **kwargs)


def unit_forecast(unit, measure: str = Measure.COST, currency: str = "USD") -> Forecast:
    return Forecast.objects.get(
        kind=SubjectKind.UNIT,
        business_unit=unit,
        measure=measure,
        currency=currency if measure == Measure.COST else "",
    )


# --- Series ---------------------------------------------------------------------------------------


def test_unit_cost_series_is_billed_usage_with_zero_on_billed_days(org, bill):
    day1, day2, day3 = dt.date(2026, 11, 2), dt.date(2026, 11, 3), dt.date(2026, 11, 4)
    bill.add(org.research, day1, "10.00", effective="4.00")
    bill.add(org.research, day1, "5.00")
    bill.add(org.research, day1, "9000.00", category="Purchase")  # one-off: left out
    bill.add(org.research, day1, "-3.00", category="Credit")
    bill.add(None, day2, "7.00")  # Unallocated: the bill covers day 2
    bill.add(org.research, day3, "2.50")
    bill.add(org.ads, day3, "8.00", currency="EUR")
    series = forecasts.unit_cost_series(forecasts.Window(day1, day3))
    research = forecasts.SeriesKey(SubjectKind.UNIT, org.research.pk, Measure.COST, "USD")
    assert series[research] == {day1: D("15.00"), day2: D(0), day3: D("2.50")}
    ads = forecasts.SeriesKey(SubjectKind.UNIT, org.ads.pk, Measure.COST, "EUR")
    assert series[ads] == {day3: D("8.00")}
    assert len(series) == 2


@pytest.fixture
def pools(org, db):
    h100 = HardwareProfile.objects.create(name="1 x H100", accelerator="H100", accelerator_count=1)
    eight = HardwareProfile.objects.create(name="8 x A100", accelerator="A100", accelerator_count=8)
    shared = CapacityPool.objects.create(
        code="h100", name="H100 pool", provider="aws", hardware_profile=h100, accelerator_count=64
    )
    big = CapacityPool.objects.create(
        code="a100", name="A100 pool", provider="aws", hardware_profile=eight, accelerator_count=16
    )
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    HardwarePrice.objects.create(
        hardware_profile=h100, provider="aws", region="us-east-1", hourly_price=D("4.00"),
        effective_from=at, instance_type="p5 (per GPU)",
    )  # fmt: skip
    HardwarePrice.objects.create(
        hardware_profile=h100, provider="aws", region="us-east-1", hourly_price=D("3.00"),
        effective_from=dt.datetime(2026, 11, 3, tzinfo=dt.UTC),
    )  # fmt: skip
    HardwarePrice.objects.create(
        hardware_profile=eight, provider="aws", region="us-east-1", hourly_price=D("32.00"),
        effective_from=at, instance_type="ml.p4d.24xlarge",
    )  # fmt: skip
    return shared, big


def test_pool_and_unit_gpu_hours_and_pool_cost(org, pools):
    shared, big = pools
    day1, day2 = dt.date(2026, 11, 2), dt.date(2026, 11, 3)
    for unit, day, hours in (
        (org.research, day1, "100"),
        (org.ads, day1, "50"),
        (org.research, day2, "80"),
    ):
        PoolUsage.objects.create(pool=shared, business_unit=unit, day=day, gpu_hours=D(hours))
    PoolUsage.objects.create(pool=big, business_unit=org.ads, day=day2, gpu_hours=D("16"))
    window = forecasts.Window(day1, day2)
    hours = forecasts.pool_gpu_hours_series(window)
    assert hours[forecasts.SeriesKey(SubjectKind.POOL, shared.pk, Measure.GPU_HOURS)] == {
        day1: D(150),
        day2: D(80),
    }
    units = forecasts.unit_gpu_hours_series(window)
    assert units[forecasts.SeriesKey(SubjectKind.UNIT, org.ads.pk, Measure.GPU_HOURS)] == {
        day1: D(50),
        day2: D(16),
    }
    cost = forecasts.pool_cost_series(window)
    # 150 h at 4.00, then 80 h at the new 3.00; the A100 pool's 16 h at 32.00 / 8 GPUs.
    assert cost[forecasts.SeriesKey(SubjectKind.POOL, shared.pk, Measure.COST, "USD")] == {
        day1: D(600),
        day2: D(240),
    }
    assert cost[forecasts.SeriesKey(SubjectKind.POOL, big.pk, Measure.COST, "USD")] == {day2: D(64)}


def test_endpoint_cost_and_gpu_hours(org, pools, bill):
    endpoint = Endpoint.objects.create(
        provider="aws", account_id="111122223333", region="us-east-1", name="Ranker-Prod",
        resource_id=ARN, instance_type="ml.p4d.24xlarge", instance_count=2,
        business_unit=org.ads,
    )  # fmt: skip
    day1, day2, day3 = dt.date(2026, 11, 2), dt.date(2026, 11, 3), dt.date(2026, 11, 4)
    bill.add(org.ads, day1, "12.00", resource=ARN)
    bill.add(org.ads, day1, "3.00", resource=ARN.upper())
    bill.add(org.research, day2, "1.00", resource="other")
    bill.add(org.ads, day3, "9.00", resource=ARN)
    EndpointUsage.objects.create(endpoint=endpoint, day=day1, invocations=10)
    EndpointUsage.objects.create(endpoint=endpoint, day=day3, invocations=0)
    window = forecasts.Window(day1, day3)
    endpoints = forecasts._endpoints()
    cost = forecasts.endpoint_cost_series(window, endpoints=endpoints)
    key = forecasts.SeriesKey(SubjectKind.ENDPOINT, endpoint.pk, Measure.COST, "USD")
    assert cost[key] == {day1: D(15), day2: D(0), day3: D(9)}
    hours = forecasts.endpoint_gpu_hours_series(window, endpoints=endpoints)
    # 2 instances x 8 GPUs x 24 h on the days with a usage row; the missing day is unknown.
    assert hours[forecasts.SeriesKey(SubjectKind.ENDPOINT, endpoint.pk, Measure.GPU_HOURS)] == {
        day1: D(384),
        day3: D(384),
    }


# --- Refresh --------------------------------------------------------------------------------------


def test_refresh_stores_the_fit_and_the_days_ahead(org, bill):
    bill.usual(org.research, FIRST, dt.date(2026, 11, 15))
    bill.usual(org.ads, dt.date(2026, 11, 12), dt.date(2026, 11, 15))  # four days: too few
    report = refresh(NOW)
    forecast = unit_forecast(org.research)
    assert forecast.method == "ETS(A,Ad,A) weekly"
    assert forecast.history_start == FIRST
    assert forecast.history_end == dt.date(2026, 11, 15)
    assert forecast.horizon_days == settings.CAPGOV_FORECAST_HORIZON_DAYS
    assert forecast.interval_percent == settings.CAPGOV_FORECAST_INTERVAL_PERCENT
    assert forecast.generated_at == NOW
    assert forecast.mape is not None
    assert forecast.mape < 5
    points = list(forecast.points.order_by("day"))
    assert points[0].day == FIRST
    assert points[-1].day == dt.date(2026, 11, 15) + dt.timedelta(days=90)
    assert len(points) == (points[-1].day - FIRST).days + 1
    ahead = [p for p in points if p.day > forecast.history_end]
    assert all(p.lower <= p.low_quantile <= p.expected <= p.upper for p in ahead)
    assert abs(sum(p.expected for p in ahead[:7]) / 7 - 1000) < 60
    refused = [r for r in report.refused if r.key.subject_id == org.ads.pk]
    assert refused
    assert "at least 7 known days" in refused[0].refused
    assert not Forecast.objects.filter(business_unit=org.ads).exists()


def test_anomalies_are_recorded_once_and_what_was_predicted_is_kept(org, bill):
    bill.usual(org.research, FIRST, dt.date(2026, 11, 15))
    refresh(NOW)
    forecast = unit_forecast(org.research)
    predicted = {p.day: p for p in forecast.points.filter(day__gt=dt.date(2026, 11, 15))}
    bill.usual(org.research, dt.date(2026, 11, 16), dt.date(2026, 11, 22))
    spike = dt.date(2026, 11, 19)
    CostRow.objects.filter(usage_date=spike).update(billed_cost=D("3500.00"))

    later = NOW + dt.timedelta(days=7)
    report = refresh(later)
    assert report.anomalies == 1
    anomaly = CostAnomaly.objects.get()
    assert (anomaly.forecast_id, anomaly.day, anomaly.direction) == (forecast.pk, spike, "above")
    assert anomaly.actual == D("3500.00")
    assert anomaly.upper == predicted[spike].upper
    assert anomaly.size == D("3500.00") - predicted[spike].upper
    assert anomaly.detected_at == later
    # The week's points are what was predicted a week ago, not refitted.
    kept = forecast.points.get(day=spike)
    assert (kept.expected, kept.upper) == (predicted[spike].expected, predicted[spike].upper)
    forecast.refresh_from_db()
    assert forecast.history_end == dt.date(2026, 11, 22)
    assert any("filled" in w for w in forecast.warnings)  # the anomaly day is left out

    again = refresh(later)
    assert again.anomalies == 0
    assert CostAnomaly.objects.count() == 1


def test_left_out_days_do_not_distort_the_next_forecast(org, bill):
    bill.usual(org.research, FIRST, dt.date(2026, 11, 8))
    for day in days(dt.date(2026, 11, 9), dt.date(2026, 11, 15)):
        bill.add(org.research, day, "10.00")  # an outage week
    refresh(NOW)
    distorted = unit_forecast(org.research).points.filter(day__gt=dt.date(2026, 11, 15))
    low = sum(p.expected for p in distorted[:7]) / 7
    forecasts.exclusion_add(
        by=org.finance,
        starts_on=dt.date(2026, 11, 9),
        ends_on=dt.date(2026, 11, 15),
        reason="Outage",
        business_unit=org.research,
    )
    refresh(NOW)
    fixed = unit_forecast(org.research).points.filter(day__gt=dt.date(2026, 11, 15))
    level = sum(p.expected for p in fixed[:7]) / 7
    assert low < 700
    assert abs(level - 1000) < 80
    assert any("7 day(s)" in w for w in unit_forecast(org.research).warnings)


def test_events_move_their_subjects_forecasts_at_once(org, bill):
    bill.usual(org.research, FIRST, dt.date(2026, 11, 15))
    bill.usual(org.ads, FIRST, dt.date(2026, 11, 15), base=500)
    refresh(NOW)
    res, ads = unit_forecast(org.research), unit_forecast(org.ads)
    day = dt.date(2026, 11, 25)
    before = {f.pk: f.points.get(day=day).expected for f in (res, ads)}

    launch = forecasts.event_save(
        by=org.finance, name="Launch", kind="launch", starts_on=dt.date(2026, 11, 20),
        ends_on=dt.date(2026, 11, 30), uplift_percent=D(25), business_unit=org.research,
    )  # fmt: skip
    point = res.points.get(day=day)
    assert point.uplift_percent == 25
    assert point.expected == (before[res.pk] * D("1.25")).quantize(D("0.0001"))
    assert ads.points.get(day=day).expected == before[ads.pk]

    lull = forecasts.event_save(
        by=org.finance, name="Lull", starts_on=day, ends_on=day, uplift_percent=D(-10)
    )
    assert res.points.get(day=day).uplift_percent == 15  # the two add up
    assert ads.points.get(day=day).uplift_percent == -10
    # A refit keeps them.
    refresh(NOW)
    assert unit_forecast(org.research).points.get(day=day).uplift_percent == 15

    forecasts.event_delete(event=launch, by=org.finance)
    forecasts.event_delete(event=lull, by=org.finance)
    assert res.points.get(day=day).uplift_percent == 0
    assert abs(res.points.get(day=day).expected - before[res.pk]) < D("0.01")
    assert not BusinessEvent.objects.exists()


def test_refresh_reads_each_series_in_queries_that_do_not_grow_with_the_days(
    org, bill, django_assert_max_num_queries
):
    bill.usual(org.research, dt.date(2026, 10, 5), dt.date(2026, 11, 15))
    refresh(NOW)
    with django_assert_max_num_queries(40) as short:
        refresh(NOW)
    CostRow.objects.all().delete()
    bill.usual(org.research, FIRST, dt.date(2026, 11, 15))
    with django_assert_max_num_queries(40) as long:
        refresh(NOW)
    assert len(long.captured_queries) <= len(short.captured_queries) + 1


def test_refresh_one_subject(org, bill):
    bill.usual(org.research, FIRST, dt.date(2026, 11, 15))
    done = forecasts.forecast_refresh(
        kind=SubjectKind.UNIT, subject_id=org.research.pk, measure=Measure.COST,
        currency="USD", now=NOW,
    )  # fmt: skip
    assert done.forecast == unit_forecast(org.research)
    nothing = forecasts.forecast_refresh(
        kind=SubjectKind.UNIT, subject_id=org.ads.pk, measure=Measure.COST, currency="USD", now=NOW
    )
    assert nothing.forecast is None
    assert nothing.refused
    with pytest.raises(DomainError, match="Nothing to forecast"):
        forecasts.forecast_refresh(kind="planet", subject_id=1, measure="cost")


def test_the_daily_task_is_scheduled_and_a_billing_import_refreshes_cost_forecasts(
    org, tmp_path, django_capture_on_commit_callbacks
):
    assert settings.CAPGOV_SCHEDULES["forecasts-refresh"]["task"] == (
        "costs.tasks.forecasts_refresh_task"
    )
    services.allocation_rule_save(
        business_unit=org.research, tag_key="team", tag_values=["research"], priority=10
    )
    lines = [
        focus_line(
            cost=f"{usual(day)}", tags={"team": "research"}, day=f"{day}", period="2026-11-01"
        )
        for day in days(dt.date(2026, 11, 1), dt.date(2026, 11, 14))
    ]
    with (
        time_machine.travel(NOW, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        result = services.billing_import(path=write_focus(tmp_path / "nov.csv", lines))
    assert result.status == "succeeded", result.error
    forecast = unit_forecast(org.research)
    assert forecast.history_end == dt.date(2026, 11, 14)
    assert not Forecast.objects.exclude(measure=Measure.COST).exists()


# --- Exclusions and events: rules -----------------------------------------------------------------


def test_exclusion_add_checks_its_input_and_who_asks(org):
    org.research.owner = org.researcher
    org.research.save()
    good = {"starts_on": dt.date(2026, 11, 9), "ends_on": dt.date(2026, 11, 10), "reason": "Outage"}
    with pytest.raises(DomainError, match="before it starts"):
        forecasts.exclusion_add(
            by=org.finance, **{**good, "ends_on": dt.date(2026, 11, 1)}, business_unit=org.ads
        )
    with pytest.raises(DomainError, match="Say why"):
        forecasts.exclusion_add(by=org.finance, **{**good, "reason": "  "}, business_unit=org.ads)
    with pytest.raises(DomainError, match="at most 366"):
        forecasts.exclusion_add(
            by=org.finance, **{**good, "ends_on": dt.date(2028, 1, 1)}, business_unit=org.ads
        )
    with pytest.raises(DomainError, match="Name one"):
        forecasts.exclusion_add(
            by=org.finance, **good, business_unit=org.ads, pool=CapacityPool(pk=1)
        )
    with pytest.raises(PermissionDeniedError):
        forecasts.exclusion_add(by=org.ads_engineer, **good, business_unit=org.ads)
    with pytest.raises(PermissionDeniedError):
        forecasts.exclusion_add(by=org.researcher, **good)  # the whole organisation
    mine = forecasts.exclusion_add(by=org.researcher, **good, business_unit=org.research)
    assert mine.created_by == org.researcher
    assert forecasts.exclusion_add(by=org.researcher, **good, business_unit=org.research) == mine
    everyone = forecasts.exclusion_add(by=org.finance, **good)
    assert ForecastExclusion.objects.count() == 2
    with pytest.raises(PermissionDeniedError):
        forecasts.exclusion_delete(exclusion=everyone, by=org.researcher)
    forecasts.exclusion_delete(exclusion=mine, by=org.researcher)
    assert list(ForecastExclusion.objects.all()) == [everyone]


def test_event_save_checks_its_input(org):
    base = {
        "name": "Launch",
        "starts_on": dt.date(2026, 12, 1),
        "ends_on": dt.date(2026, 12, 7),
        "uplift_percent": D(20),
    }
    for change, message in (
        ({"name": " "}, "Give the event a name"),
        ({"uplift_percent": D(-100)}, "above -100"),
        ({"uplift_percent": D(1001)}, "at most 1000"),
        ({"uplift_percent": D("1.234")}, "two decimals"),
        ({"uplift_percent": None}, "expected uplift"),
        ({"kind": "party"}, "not an event kind"),
        ({"starts_on": None}, "first and last day"),
    ):
        with pytest.raises(DomainError, match=message):
            forecasts.event_save(by=org.finance, **{**base, **change})
    with pytest.raises(PermissionDeniedError):
        forecasts.event_save(by=org.researcher, **base, business_unit=org.research)
    event = forecasts.event_save(by=org.finance, **base, business_unit=org.research)
    assert (event.created_by, event.uplift_percent) == (org.finance, D(20))


# --- Budgets --------------------------------------------------------------------------------------


def _budget(org, **kwargs) -> Budget:
    values = {
        "name": "Research",
        "business_unit": org.research,
        "amount": D(60000),
        "currency": "USD",
        **kwargs,
    }
    return Budget.objects.create(**values)


def test_the_month_end_projection_is_spend_to_date_plus_the_forecast(org, bill):
    bill.usual(org.research, FIRST, dt.date(2026, 11, 15))
    refresh(NOW)
    whole = _budget(org)
    tagged = _budget(org, name="Project", tag_key="team", tag_value="RES")
    effective = _budget(org, name="Effective", basis="effective")
    month = dt.date(2026, 11, 1)
    statuses = {
        s.budget.pk: s.standing
        for s in selectors.budget_statuses(budgets=[whole, tagged, effective], month=month)
    }
    spend = sum(
        CostRow.objects.filter(billing_period=month).values_list("billed_cost", flat=True), D(0)
    )
    rest = sum(
        unit_forecast(org.research)
        .points.filter(day__gte=dt.date(2026, 11, 16), day__lte=dt.date(2026, 11, 30))
        .values_list("expected", flat=True),
        D(0),
    )
    standing = statuses[whole.pk]
    assert standing.projection_method == "forecast"
    assert standing.forecast_days == 15
    assert standing.spend == spend
    assert standing.projection == spend + rest
    trend = spend * 30 / 15
    for other in (tagged, effective):
        assert statuses[other.pk].projection_method == "trend"
        assert statuses[other.pk].projection == trend.quantize(D("1e-10"))


def test_without_a_forecast_covering_the_month_the_trend_stays(org, bill):
    bill.usual(org.research, dt.date(2026, 11, 1), dt.date(2026, 11, 15))
    budget = _budget(org)
    month = dt.date(2026, 11, 1)
    standing = selectors.budget_statuses(budgets=[budget], month=month)[0].standing
    assert standing.projection_method == "trend"
    # A forecast whose points stop short of the month's end does not count either.
    refresh(NOW)
    ForecastPoint.objects.filter(day__gt=dt.date(2026, 11, 28)).delete()
    standing = selectors.budget_statuses(budgets=[budget], month=month)[0].standing
    assert standing.projection_method == "trend"


def test_budget_evaluation_alerts_on_the_forecast_projection(org, bill):
    bill.usual(org.research, FIRST, dt.date(2026, 11, 15))
    refresh(NOW)
    # About 15,000 spent by 15 Nov and as much again expected: 30,000 of 32,000 is over 80 %.
    budget = _budget(org, amount=D(32000), thresholds=[100], forecast_thresholds=[80, 100])
    with time_machine.travel(NOW, tick=False):
        result = services.budgets_evaluate(month=dt.date(2026, 11, 1), now=NOW)
    assert [(a.measure, a.threshold) for a in result.alerts] == [("forecast", 80)]
    alert = result.alerts[0]
    rest = sum(
        unit_forecast(org.research)
        .points.filter(day__gte=dt.date(2026, 11, 16), day__lt=dt.date(2026, 12, 1))
        .values_list("expected", flat=True),
        D(0),
    )
    assert alert.projection == (alert.spend + rest).quantize(D("1e-10"))
    assert alert.budget == budget
