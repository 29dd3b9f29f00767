"""Demo planning: commitment offers on the shared pools, the next quarter's planning cycle with
plans pre-filled from the forecasts, and the commitment recommendations.

Search files its pre-filled plan; Research asks for a pre-training run on the shared H100 pool
in the quarter's second month and files, which takes the pool over its capacity beside Search
and opens a capacity conflict (the board is mailed); Ads' plan stays a draft with a batch
line added. Everything goes through the services (opened by the platform admin, filed by the
units' people), so the pages show the real flow. A second run changes nothing.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_CEILING, Decimal

from django.utils import timezone

from costs import commitment_services, planning
from costs.models import (
    CapacityPlan,
    CommitmentOffer,
    CommitmentRecommendation,
    CycleStatus,
    PlanConflict,
    PlanLine,
    PlanningCycle,
    PlanStatus,
    RecommendationStatus,
)
from governance.models import ReviewBoard, User
from registry.models import CapacityPool

OFFERS = [
    # pool, kind, term, discount
    ("h100-shared", "committed_use", 1, Decimal(35)),
    ("h100-shared", "reserved", 3, Decimal(55)),
    ("l4-inference", "committed_use", 1, Decimal(35)),
    ("l4-inference", "reserved", 3, Decimal(55)),
]
PRETRAINING = "Pre-training run of ranker-30b on the spring click logs (most of the pool)."
BATCH = "Batch re-scoring of the summer catalogue before the campaign."


def _offers() -> int:
    pools = {p.code: p for p in CapacityPool.objects.filter(code__in={o[0] for o in OFFERS})}
    made = 0
    for code, kind, years, discount in OFFERS:
        if code in pools:
            _, created = CommitmentOffer.objects.get_or_create(
                pool=pools[code],
                kind=kind,
                term_years=years,
                defaults={"discount_percent": discount},
            )
            made += created
    return made


def _plans(cycle: PlanningCycle, people: dict[str, User]) -> None:
    plans = {p.business_unit.code: p for p in cycle.plans.select_related("business_unit")}
    pool = CapacityPool.objects.get(code="h100-shared")
    month = planning.cycle_months(cycle)[1]
    capacity = planning.pool_capacity(pool, month)
    search = plans.get("SRCH")
    if search is not None and "alex" in people:
        planning.plan_update(
            plan=search,
            by=people["alex"],
            justification="Steady re-ranking traffic; nothing new this quarter.",
        )
        planning.plan_file(plan=search, by=people["alex"])
    research = plans.get("RES")
    if research is not None and "rhea" in people:
        others = sum(
            PlanLine.objects.filter(plan__cycle=cycle, pool=pool, month=month)
            .exclude(plan__status=PlanStatus.DRAFT)
            .values_list("gpu_hours", flat=True),
            Decimal(0),
        )
        # Enough to fill the pool beside the plans filed so far, and 1,500 GPU-hours more.
        ask = ((capacity - others + 1500) / 100).to_integral_value(ROUND_CEILING) * 100
        line = PlanLine.objects.filter(plan=research, pool=pool, month=month).first()
        if line is None:
            planning.plan_line_add(
                plan=research,
                by=people["rhea"],
                pool=pool,
                month=month,
                gpu_hours=ask,
                justification=PRETRAINING,
            )
        else:
            planning.plan_line_update(
                line=line,
                by=people["rhea"],
                gpu_hours=max(ask, line.gpu_hours),
                justification=f"{line.justification}\n{PRETRAINING}",
            )
        planning.plan_file(plan=research, by=people["rhea"])
    ads = plans.get("ADS")
    l4 = CapacityPool.objects.filter(code="l4-inference").first()
    if ads is not None and l4 is not None and "adam" in people:
        last = planning.cycle_months(cycle)[-1]
        line = PlanLine.objects.filter(plan=ads, pool=l4, month=last).first()
        if line is None:
            planning.plan_line_add(
                plan=ads, by=people["adam"], pool=l4, month=last, gpu_hours=480, justification=BATCH
            )
        elif BATCH not in line.justification:
            planning.plan_line_update(
                line=line,
                by=people["adam"],
                gpu_hours=line.gpu_hours + 480,
                justification=f"{line.justification}\nPlus 480 GPU-hours: {BATCH}",
            )


def seed_planning() -> str:
    """Seed the demo's planning and commitments; returns a line saying what there is."""
    offers = _offers()
    people = {
        u.username: u for u in User.objects.filter(username__in=["pat", "alex", "rhea", "adam"])
    }
    upcoming = planning.quarter_upcoming(timezone.now().date())
    cycle = (
        PlanningCycle.objects.filter(fiscal_year=upcoming.fiscal_year, quarter=upcoming.quarter)
        .exclude(status=CycleStatus.CANCELLED)
        .first()
    )
    if cycle is None and "pat" in people:
        due = upcoming.first_month - dt.timedelta(days=7)
        cycle = planning.cycle_open(
            fiscal_year=upcoming.fiscal_year,
            quarter=upcoming.quarter,
            by=people["pat"],
            board=ReviewBoard.objects.filter(is_active=True).order_by("name").first(),
            plans_due=due if due >= timezone.now().date() else None,
        )
        _plans(cycle, people)
    if not CommitmentRecommendation.objects.exists():
        run = commitment_services.commitment_recommendations_compute()
        recommendations = len(run.made)
    else:
        recommendations = CommitmentRecommendation.objects.filter(
            status=RecommendationStatus.OPEN
        ).count()
    if cycle is None:
        return f"Planning: {offers} commitment offer(s); {recommendations} recommendation(s)."
    filed = CapacityPlan.objects.filter(cycle=cycle).exclude(status=PlanStatus.DRAFT).count()
    conflicts = PlanConflict.objects.filter(cycle=cycle).count()
    return (
        f"Planning: {cycle} is open ({filed} of {cycle.plans.count()} plans filed, "
        f"{conflicts} capacity conflict(s)); {recommendations} commitment recommendation(s)."
    )
