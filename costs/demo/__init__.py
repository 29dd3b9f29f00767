"""Demo chargeback: a policy with a shared platform pool, endpoints with their traffic, an SLO
missed in a band, a quota gone over, and the earlier demo month published and closed.

Everything goes through the services that production uses (the SLO measurements are derived
from endpoint usage, statements are published and closed by finance), so the demo shows the
real numbers. A second run changes nothing.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from django.db.models.functions import Lower
from django.utils import timezone

from costs import chargeback
from costs.demo.forecasts import seed_forecasts
from costs.demo.planning import seed_planning
from costs.demo.retention import seed_retention
from costs.models import (
    AllocationPolicy,
    CapacityQuota,
    CostRow,
    PeriodStatus,
    SharedPool,
    SlaPenaltyPolicy,
)
from governance.models import BusinessUnit, ServiceLevelObjective, User
from registry.models import CapacityPool, Endpoint, ModelVersion, PoolUsage, RetirementPolicy
from registry.retirement_services import retirement_evaluate
from registry.services import endpoint_upsert, endpoint_usage_record, slo_measurements_from_usage

# name, business unit, daily invocations, server-error rate, model version (model, version)
ENDPOINTS = [
    ("recsys-prod", "ADS", 1_800_000, Decimal("0.004"), ("ads-ranker", "3.0")),
    ("search-rerank-v3", "SRCH", 650_000, Decimal("0.0002"), None),
    ("llm-summarize-beta", "RES", 90_000, Decimal("0.0005"), ("support-assistant", "2.0-fp16")),
    ("embeddings-bge-large", "PLAT", 2_400_000, Decimal("0.0001"), None),
    # Forgotten after the October launch: no traffic since, still billed.
    ("recsys-canary", "ADS", 0, Decimal(0), None),
]


def _days(month: dt.date) -> list[dt.date]:
    following = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return [month + dt.timedelta(days=n) for n in range((following - month).days)]


def _endpoints(months: list[dt.date], units: dict[str, BusinessUnit]) -> list[Endpoint]:
    """The SageMaker endpoints of the demo bill, as the endpoints sync would record them."""
    rng = random.Random(11)  # noqa: S311 - demo traffic, not a secret
    made = []
    for name, code, daily, error_rate, version_key in ENDPOINTS:
        resource = (
            CostRow.objects.annotate(rid=Lower("resource_id"))
            .filter(rid__endswith=f":endpoint/{name}")
            .values_list("resource_id", flat=True)
            .first()
        )
        if resource is None:
            continue
        _, _, region, account, _ = resource.split(":", 4)
        endpoint, _ = endpoint_upsert(
            provider="aws",
            account_id=account,
            region=region,
            name=name,
            resource_id=resource,
            status="InService",
            instance_type="ml.g5.12xlarge",
            instance_count=1,
            config_name=f"{name}-config",
            tags={"team": code.lower()},
            business_unit=units[code],
        )
        if version_key:
            model, version = version_key
            endpoint.model_version = ModelVersion.objects.filter(
                model__name=model, version=version
            ).first()
            endpoint.save(update_fields=["model_version"])
        endpoint.created_in_cloud_at = dt.datetime.combine(months[0], dt.time(), tzinfo=dt.UTC)
        endpoint.save(update_fields=["created_in_cloud_at"])
        invocations, errors = {}, {}
        yesterday = timezone.now().date() - dt.timedelta(days=1)
        day = months[0]
        while day <= yesterday:
            # The last month's recsys-prod had a bad week: 0.4 % of its requests failed.
            rate = error_rate if day >= months[-1] else error_rate / 10
            volume = daily or (5000 if day < months[-1] else 0)  # the canary went quiet
            invocations[day] = int(volume * (0.85 + 0.3 * rng.random())) if volume else 0
            errors[day] = int(invocations[day] * rate)
            day += dt.timedelta(days=1)
        endpoint_usage_record(endpoint=endpoint, invocations=invocations, errors=errors)
        made.append(endpoint)
    return made


def seed_chargeback(*, months: list[dt.date], finance: User) -> str:
    """Seed the demo's chargeback; returns a line saying what the months look like."""
    units = {bu.code: bu for bu in BusinessUnit.objects.all()}
    policy, created = AllocationPolicy.objects.get_or_create(
        first_month=months[0],
        defaults={
            "name": "Demo chargeback policy",
            "basis": "billed",
            "description": "Platform's shared GPU pool and cluster are split across the units "
            "in proportion to their direct spend; untagged cost stays visible as Unallocated.",
        },
    )
    if created:
        SharedPool.objects.create(
            policy=policy,
            name="Platform GPU pool and cluster",
            source_unit=units["PLAT"],
            method="proportional",
        )
    _endpoints(months, units)
    slo, _ = ServiceLevelObjective.objects.get_or_create(
        name="recsys-prod-availability",
        defaults={
            "display_name": "recsys-prod availability",
            "service": "recsys-prod",
            "indicator": "availability",
            "target": Decimal("99.9"),
            "provider": units["PLAT"],
            "description": "Ads' recommendation endpoint, run by the platform team.",
        },
    )
    SlaPenaltyPolicy.objects.get_or_create(slo=slo)
    slo_measurements_from_usage(days=[d for m in months for d in _days(m)])
    pool = CapacityPool.objects.get(code="h100-shared")
    CapacityQuota.objects.get_or_create(
        business_unit=units["SRCH"],
        pool=pool,
        first_month=months[0],
        defaults={
            "gpu_hours": Decimal(2000),
            "unit_price": Decimal("4.10"),
            "currency": "USD",
            "multiplier": Decimal("1.5"),
        },
    )
    for month in months:
        for day in _days(month):
            # Search runs ~80 GPU-hours a day on the shared pool: over its 2,000 a month.
            PoolUsage.objects.get_or_create(
                pool=pool,
                business_unit=units["SRCH"],
                day=day,
                defaults={"gpu_hours": Decimal(80 if month == months[-1] else 60)},
            )
    # Half a year of the other units' pool usage, the event calendar, and the forecasts.
    forecast_line = seed_forecasts(finance=finance)
    # Retirement: a dry-run policy over production and canary endpoints; the evaluation
    # finds recsys-canary idle and mails its owner (the policy changes nothing in a cloud).
    retire, _ = RetirementPolicy.objects.get_or_create(
        name="Idle inference endpoints",
        defaults={
            "description": "Endpoints without traffic for two weeks that cost over $200 a "
            "month are deleted after a week's grace; their configuration is kept for restore.",
            "window_days": 14,
            "max_daily_invocations": 1,
            "min_monthly_cost": Decimal(200),
            "currency": "USD",
            "grace_days": 7,
            "action": "delete",
            "dry_run": True,
        },
    )
    retirement_evaluate()
    first = chargeback.period_of(months[0])
    if first is None or first.status == PeriodStatus.DRAFT:
        chargeback.period_publish(month=months[0], by=finance)
        first = chargeback.period_close(month=months[0], by=finance)
    cases = retire.cases.count()
    # After the forecasts: plans are pre-filled and commitments sized from them.
    planning_line = seed_planning()
    # Old data past the retention policies (not pruned) and a TCO scenario on the assistant.
    retention_line = seed_retention(finance=finance)
    return (
        f"Chargeback: {months[0]:%Y-%m} published and closed; {months[-1]:%Y-%m} is a draft "
        f"for finance to review, publish and close. Retirement: {cases} idle endpoint case(s) "
        f"open (dry run). {forecast_line} {planning_line} {retention_line}"
    )
