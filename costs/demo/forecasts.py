"""Demo forecasts: half a year of GPU-hours on the shared pools, a launch and a year-end lull on
the business-event calendar, and forecasts refreshed the way the daily task does.

The demo bill covers only its two months, and evenly (no weekly shape), so on its own it makes
short, flat histories. The pools' GPU-hours are generated here instead, for the 180 days up to
yesterday: Research trains on the shared H100 pool on weekdays, on a rising trend; Ads serves
on both pools with busier weekends; Platform runs embeddings on the L4 pool. Two days ago a
large batch job of Research's tripled its GPU-hours on the H100 pool — the day before the
demo incident on that pool. The cluster's maintenance three weeks before paused Research's
jobs for two days, which are left out of its forecasts.

Forecasts are refreshed twice, as the daily task would have done: a week ago (so the stored
points predate the last week) and now, which compares the last week's actual days with what
was predicted and records the batch job's day as an anomaly; the incident's post-mortem then
suggests it. Usage goes through the registry's service and events through ours, so the demo
shows the real numbers. A second run adds nothing and only refreshes.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal

from django.utils import timezone

from costs import forecasts
from costs.models import BusinessEvent, EventKind
from governance.models import BusinessUnit, User
from registry.models import CapacityPool, PoolUsage
from registry.services import pool_usage_record

DAYS = 180
SPIKE_DAYS_AGO = 2
SPIKE = 3  # the batch job's day: three times Research's usual
MAINTENANCE_DAYS_AGO = (26, 25)  # the H100 cluster's maintenance: Research's jobs paused
LAUNCH = "recsys v4 launch"
SPRINT = "Research fine-tuning sprint"
LULL = "Year-end lull"

# pool, unit, GPU-hours a weekday at the start, daily growth, weekend factor, noise (sd)
STREAMS = [
    ("h100-shared", "RES", 330.0, 0.0035, 0.55, 0.05),
    ("h100-shared", "ADS", 240.0, 0.0008, 1.12, 0.03),
    ("l4-inference", "ADS", 150.0, 0.0010, 1.15, 0.03),
    ("l4-inference", "PLAT", 110.0, 0.0005, 0.85, 0.04),
]


def _usage(today: dt.date) -> int:
    """The streams' daily GPU-hours where none is recorded yet; returns rows stored."""
    pools = {p.code: p for p in CapacityPool.objects.filter(code__in={s[0] for s in STREAMS})}
    units = {u.code: u for u in BusinessUnit.objects.filter(code__in={s[1] for s in STREAMS})}
    start = today - dt.timedelta(days=DAYS)
    taken = set(
        PoolUsage.objects.filter(day__gte=start, day__lt=today).values_list(
            "pool__code", "business_unit__code", "day"
        )
    )
    rng = random.Random(29)  # noqa: S311 - demo usage, not a secret
    rows = []
    spike_day = today - dt.timedelta(days=SPIKE_DAYS_AGO)
    maintenance = {today - dt.timedelta(days=n) for n in MAINTENANCE_DAYS_AGO}
    for code, unit, weekday, growth, weekend, noise in STREAMS:
        if code not in pools or unit not in units:
            continue
        for n in range(DAYS):
            day = start + dt.timedelta(days=n)
            level = weekday * math.exp(growth * n)
            hours = level * (weekend if day.weekday() >= 5 else 1.0) * (1 + rng.gauss(0, noise))
            if (code, unit) == ("h100-shared", "RES") and day == spike_day:
                hours *= SPIKE
            if (code, unit) == ("h100-shared", "RES") and day in maintenance:
                hours *= 0.1
            if (code, unit, day) in taken:
                continue
            rows.append(
                {
                    "pool": code,
                    "business_unit": unit,
                    "day": day.isoformat(),
                    "gpu_hours": f"{max(hours, 0):.3f}",
                }
            )
    return pool_usage_record(rows=rows, source="demo") if rows else 0


def _events(today: dt.date, finance: User) -> None:
    ads = BusinessUnit.objects.filter(code="ADS").first()
    res = BusinessUnit.objects.filter(code="RES").first()
    lull_start = dt.date(today.year, 12, 24)
    if lull_start < today - dt.timedelta(days=7):
        lull_start = dt.date(today.year + 1, 12, 24)
    for name, values in (
        (
            LAUNCH,
            {
                "kind": EventKind.LAUNCH,
                "starts_on": today + dt.timedelta(days=14),
                "ends_on": today + dt.timedelta(days=34),
                "uplift_percent": Decimal(25),
                "business_unit": ads,
                "notes": "The new ranker serves every market at once; traffic is expected "
                "to settle a quarter higher for the first three weeks.",
            },
        ),
        (
            SPRINT,
            {
                "kind": EventKind.CAMPAIGN,
                "starts_on": today + dt.timedelta(days=3),
                "ends_on": today + dt.timedelta(days=10),
                "uplift_percent": Decimal(30),
                "business_unit": res,
                "notes": "Research fine-tunes the ranker family on the new click logs.",
            },
        ),
        (
            LULL,
            {
                "kind": EventKind.OTHER,
                "starts_on": lull_start,
                "ends_on": lull_start + dt.timedelta(days=8),
                "uplift_percent": Decimal(-20),
                "notes": "Most teams are off between the holidays; training jobs pause.",
            },
        ),
    ):
        if not BusinessEvent.objects.filter(name=name).exists():
            forecasts.event_save(by=finance, name=name, **values)
    first, last = (today - dt.timedelta(days=n) for n in MAINTENANCE_DAYS_AGO)
    forecasts.exclusions_record(
        by=finance,
        starts_on=first,
        ends_on=last,
        reason="H100 cluster maintenance: Research's training jobs were paused.",
        source="demo",
        business_units=[res] if res else [],
        pools=CapacityPool.objects.filter(code="h100-shared"),
    )


def seed_forecasts(*, finance: User, now: dt.datetime | None = None) -> str:
    """Seed the demo's usage history and events, then refresh the forecasts; returns a line
    saying what they show."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    first_run = not BusinessEvent.objects.filter(name=LAUNCH).exists()
    stored = _usage(today)
    _events(today, finance)
    if first_run:
        # As the daily task would have done a week ago: those points predate the last week.
        forecasts.forecasts_refresh_all(now=now - dt.timedelta(days=7))
    report = forecasts.forecasts_refresh_all(now=now)
    anomalies = forecasts.anomaly_list(user=None)
    spike = anomalies.filter(forecast__pool__code="h100-shared").first()
    found = f"; the batch job on {spike.day:%d %b} is an anomaly on the H100 pool" if spike else ""
    return (
        f"Forecasts: {stored} days of pool usage generated, {report.forecasts} forecasts "
        f"refreshed in {report.seconds:.1f} s, {anomalies.count()} anomalies recorded{found}."
    )
