"""Demo retention and TCO: the default retention policies (pruning off), an old bill and pool
usage past the 400-day policy, an old benchmark file past the 730-day one, and a TCO scenario
of the support assistant attached to its assessment and the board's decision.

Nothing is pruned here: the audit page (/costs/retention/) shows what is past policy, and the
dry run seeded beside it what pruning would do. A second run changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from costs import chargeback, sampledata, services
from costs.budgets import previous_month
from costs.models import CostRow, DataClass, PeriodStatus, RetentionRun, TcoScenario
from costs.retention import policy_cutoff, retention_policies_ensure, retention_prune_all
from costs.tco_services import tco_scenario_attach, tco_scenario_save
from governance.models import BusinessUnit, User
from registry import services as registry_services
from registry.models import (
    BenchmarkProtocol,
    CapacityAssessment,
    CapacityPool,
    EfficiencyBenchmark,
    ModelVersion,
    PoolUsage,
)

OLD_BILL_ROWS = 6_000
OLD_BENCHMARK = "assistant-2.0-fp16-pilot.json"
TCO_NAME = "Support assistant: an H100 node on-prem vs p5.48xlarge"


def _old_months(today: dt.date) -> list[dt.date]:
    """The two calendar months just before the billing-detail policy's cutoff month."""
    policy = retention_policies_ensure()[DataClass.BILLING_DETAIL]
    last = previous_month(policy_cutoff(policy, today))
    return [previous_month(last), last]


def _old_bill(months: list[dt.date], finance: User) -> int:
    if not CostRow.objects.filter(billing_period=months[0]).exists():
        folder = Path(settings.VAR_DIR) / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"focus-demo-{months[0]:%Y-%m}-{months[-1]:%Y-%m}.csv"
        sampledata.write_focus_csv(
            path,
            rows=OLD_BILL_ROWS,
            seed=3,
            months=tuple(f"{m:%Y-%m}" for m in months),
            profile="demo",
        )
        services.billing_import(path=path, fmt="auto")
    # Long since closed, as a year-old month would be.
    for month in months:
        period = chargeback.period_of(month)
        if period is None or period.status == PeriodStatus.DRAFT:
            chargeback.period_publish(month=month, by=finance)
            chargeback.period_close(month=month, by=finance)
    return CostRow.objects.filter(billing_period__in=months).count()


def _old_pool_usage(months: list[dt.date]) -> None:
    pool = CapacityPool.objects.filter(code="h100-shared").first()
    search = BusinessUnit.objects.filter(code="SRCH").first()
    if pool is None or search is None:
        return
    for month in months:
        day = month
        while day.month == month.month:
            PoolUsage.objects.get_or_create(
                pool=pool,
                business_unit=search,
                day=day,
                defaults={"gpu_hours": Decimal(55), "source": "upload"},
            )
            day += dt.timedelta(days=1)


def _old_benchmark(now: dt.datetime) -> EfficiencyBenchmark | None:
    """A pilot run of the support assistant's 2.0-fp16, uploaded over two years ago."""
    found = EfficiencyBenchmark.objects.filter(file_name=OLD_BENCHMARK).first()
    if found is not None:
        return found
    version = (
        ModelVersion.objects.filter(model__name="support-assistant", version="2.0-fp16")
        .select_related("model", "hardware_profile")
        .first()
    )
    protocol = BenchmarkProtocol.objects.filter(status="approved").order_by("pk").first()
    owner = User.objects.filter(username="rhea").first()
    if version is None or protocol is None or owner is None:
        return None
    then = now - dt.timedelta(days=800)
    data = {
        "capgov_benchmark": 1,
        "tool": "vllm bench serve (converted)",
        "hardware": "1 x H100 80GB",
        "points": [
            {
                "label": f"concurrency {c}",
                "concurrency": c,
                "completed": 1000,
                "failed": 0,
                "metrics": {
                    "requests_per_s": rps,
                    "output_tokens_per_s": rps * 250,
                    "latency_p50_ms": p95 * 0.6,
                    "latency_p95_ms": p95,
                    "latency_p99_ms": p95 * 1.3,
                    "ttft_p95_ms": p95 / 5,
                    "peak_memory_gb": 70.5,
                },
            }
            for c, rps, p95 in ((4, 3.9, 250.0), (8, 7.1, 470.0))
        ],
    }
    benchmark = registry_services.benchmark_upload(
        version=version,
        protocol=protocol,
        hardware_profile=version.hardware_profile,
        data=json.dumps(data).encode(),
        file_name=OLD_BENCHMARK,
        by=owner,
        measured_at=then,
    )
    EfficiencyBenchmark.objects.filter(pk=benchmark.pk).update(uploaded_at=then)
    return benchmark


def seed_tco(*, finance: User) -> TcoScenario | None:
    """The worked example of the TCO issue, for the support assistant's INT8 variant."""
    found = TcoScenario.objects.filter(name=TCO_NAME).first()
    if found is not None:
        return found
    research = BusinessUnit.objects.filter(code="RES").first()
    assessment = (
        CapacityAssessment.objects.filter(version__model__name="support-assistant")
        .order_by("-submitted_at")
        .first()
    )
    scenario = tco_scenario_save(
        scenario=None,
        by=finance,
        name=TCO_NAME,
        description="8 x H100 in our own racks against a p5.48xlarge (8 x H100) rented all year; "
        "the node serves 8 replicas of 2.1-int8 at 12 req/s each within the 500 ms p95 SLO.",
        business_unit=research,
        currency="USD",
        capex=Decimal(300_000),
        depreciation_years=4,
        power_kw=Decimal("10.2"),
        pue=Decimal("1.4"),
        price_per_kwh=Decimal("0.12"),
        operations_per_year=Decimal(20_000),
        utilisation_percent=Decimal(70),
        hours_per_year=8760,
        cloud_on_demand_hourly=Decimal("98.32"),
        cloud_committed_hourly=Decimal("63.91"),
        requests_per_second=Decimal(96),
    )
    decided = (
        CapacityAssessment.objects.filter(
            version__model__name="support-assistant", decision__isnull=False
        )
        .select_related("decision")
        .first()
    )
    if assessment is not None:
        tco_scenario_attach(scenario=scenario, by=finance, assessment=assessment)
    if decided is not None:
        tco_scenario_attach(scenario=scenario, by=finance, decision=decided.decision)
    return scenario


def seed_retention(*, finance: User, now: dt.datetime | None = None) -> str:
    """Seed the retention demo and the TCO scenario; returns a line saying what they show."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    retention_policies_ensure()
    months = _old_months(today)
    rows = _old_bill(months, finance)
    _old_pool_usage(months)
    benchmark = _old_benchmark(now)
    scenario = seed_tco(finance=finance)
    if not RetentionRun.objects.exists():
        # A dry run, as a platform admin's first step would be: it shows what pruning would
        # remove and changes nothing.
        retention_prune_all(dry_run=True, today=today)
    parts = [
        f"Retention: {rows:,} billing rows of {months[0]:%Y-%m} and {months[-1]:%Y-%m} are past "
        "the 400-day policy"
    ]
    if benchmark is not None:
        parts.append("one benchmark file past the 730-day one")
    line = "; ".join(parts) + " (pruning off: see /costs/retention/)."
    if scenario is not None:
        line += f" TCO: {scenario.name}, break-even at {scenario.results['break_even_percent']} %."
    return line
