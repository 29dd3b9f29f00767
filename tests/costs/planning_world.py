"""The planning tests' organisation, on 3 December 2026 (FY2027 Q1 is January to March 2027).

Ads uses 60 GPU-hours a day of the shared H100 pool (80 GPUs) and Research 20: Ads holds
75 % of the pool's last 90 days. The pool's GPU-hours forecast covers December to
10 February at 1,000 GPU-hours a day, so January is forecast in full and February is not.
Ads has a manual quota of 1,000 GPU-hours a month on the pool (x 1.5) since October.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal as D

import pytest
import time_machine

from costs.models import CapacityQuota, Forecast, ForecastPoint
from governance.choices import Role
from governance.models import BusinessUnit, User
from registry.models import CapacityPool, HardwarePrice, HardwareProfile, PoolUsage
from tests.factories import BusinessUnitFactory, UserFactory

NOW = dt.datetime(2026, 12, 3, 9, tzinfo=dt.UTC)
JAN, FEB, MAR, APR = (dt.date(2027, m, 1) for m in (1, 2, 3, 4))


@dataclass
class World:
    ads: BusinessUnit
    res: BusinessUnit
    srch: BusinessUnit
    plat: BusinessUnit
    idle: BusinessUnit
    finance: User
    admin: User
    ads_owner: User
    ads_member: User
    res_owner: User
    infra: User  # board, infrastructure; member of Platform
    product: User  # board, product; member of Ads
    outsider: User  # ML engineer in Search
    h100: CapacityPool
    a100: CapacityPool
    forecast: Forecast


def _usage(pool, unit, per_day, start, end):
    day, rows = start, []
    while day < end:
        rows.append(PoolUsage(pool=pool, business_unit=unit, day=day, gpu_hours=D(per_day)))
        day += dt.timedelta(days=1)
    PoolUsage.objects.bulk_create(rows)


def world_build() -> World:
    ads = BusinessUnitFactory(code="ADS", name="Ads Ranking")
    res = BusinessUnitFactory(code="RES", name="Research")
    srch = BusinessUnitFactory(code="SRCH", name="Search")
    plat = BusinessUnitFactory(code="PLAT", name="Platform")
    idle = BusinessUnitFactory(code="IDLE", name="Nobody here")
    ads_owner = UserFactory(username="olga", units=[ads])
    res_owner = UserFactory(username="ravi", units=[res])
    ads.owner, res.owner = ads_owner, res_owner
    ads.save()
    res.save()
    plat.owner = UserFactory(username="petra", units=[plat])
    plat.save()
    since = NOW - dt.timedelta(days=400)
    h100_hw = HardwareProfile.objects.create(name="1 x H100", accelerator="NVIDIA H100")
    HardwarePrice.objects.create(
        hardware_profile=h100_hw,
        provider="aws",
        instance_type="p5 (per GPU)",
        hourly_price=D("4.10"),
        effective_from=since,
    )
    a100_hw = HardwareProfile.objects.create(
        name="8 x A100", accelerator="NVIDIA A100", accelerator_count=8
    )
    HardwarePrice.objects.create(
        hardware_profile=a100_hw,
        provider="gcp",
        instance_type="a2-highgpu-8g",
        hourly_price=D("29.38"),
        effective_from=since,
    )
    h100 = CapacityPool.objects.create(
        code="h100",
        name="H100 pool",
        provider="aws",
        hardware_profile=h100_hw,
        accelerator_count=80,
        owner=plat,
    )
    a100 = CapacityPool.objects.create(
        code="a100",
        name="A100 pool",
        provider="gcp",
        hardware_profile=a100_hw,
        accelerator_count=16,
        owner=plat,
    )
    _usage(h100, ads, 60, dt.date(2026, 9, 1), NOW.date())
    _usage(h100, res, 20, dt.date(2026, 9, 1), NOW.date())
    forecast = Forecast.objects.create(
        kind="pool",
        pool=h100,
        measure="gpu_hours",
        method="test",
        history_start=dt.date(2026, 9, 1),
        history_end=dt.date(2026, 12, 2),
        horizon_days=70,
        generated_at=NOW,
    )
    ForecastPoint.objects.bulk_create(
        ForecastPoint(
            forecast=forecast,
            day=dt.date(2026, 12, 3) + dt.timedelta(days=n),
            expected=D(1000),
            lower=D(800),
            upper=D(1200),
            low_quantile=D(900),
        )
        for n in range(70)
    )
    CapacityQuota.objects.create(
        business_unit=ads,
        pool=h100,
        first_month=dt.date(2026, 10, 1),
        gpu_hours=D(1000),
        unit_price=D("4.10"),
        currency="USD",
        multiplier=D("1.5"),
    )
    return World(
        ads=ads,
        res=res,
        srch=srch,
        plat=plat,
        idle=idle,
        finance=UserFactory(username="fin", roles=[Role.FINANCE]),
        admin=UserFactory(username="pat", roles=[Role.PLATFORM_ADMIN]),
        ads_owner=ads_owner,
        ads_member=UserFactory(username="adam", roles=[Role.ML_ENGINEER], units=[ads]),
        res_owner=res_owner,
        infra=UserFactory(username="ines", roles=[Role.BOARD_INFRA], units=[plat]),
        product=UserFactory(username="priya", roles=[Role.BOARD_PRODUCT], units=[ads]),
        outsider=UserFactory(username="sam", roles=[Role.ML_ENGINEER], units=[srch]),
        h100=h100,
        a100=a100,
        forecast=forecast,
    )


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def world(db, clock) -> World:
    return world_build()
