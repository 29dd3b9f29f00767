"""Quarterly capacity planning: cycles, plans pre-filled from forecasts, the board's decisions
on each line, conflicts over a pool's capacity, and what an approved plan becomes.

A cycle moves ``open → review → approved``. While it is open (and in review, for late
plans) each business unit's people edit their draft plan — GPU-hours per pool per month,
each line justified — and file it. In review the board approves, trims or rejects each
line; every answer is a governance Decision about the line. Whenever filed plans ask more
of a pool in a month than it has (accelerators x hours in the month), a capacity conflict
opens with its escalation path, once per cycle, pool and month. Approving the cycle turns
each granted line into a one-month quota (which the chargeback's overage reads) and each
unit's month into a budget (which the freeze reads).

Who: finance and platform admins open and approve cycles; platform admins and the board
start the review; the board decides lines (never those of a unit its member belongs to);
a unit's owner and members edit and file its plan.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import partial

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.template.loader import render_to_string
from django.utils import timezone

from costs import services as cost_services
from costs.budgets import days_in_month, month_of, next_month, previous_month
from costs.fiscal import FiscalError, FiscalQuarter, describe, quarter_of
from costs.models import (
    Budget,
    CapacityPlan,
    CapacityQuota,
    CycleStatus,
    Forecast,
    ForecastPoint,
    LineStatus,
    Measure,
    PlanConflict,
    PlanLine,
    PlanningCycle,
    PlanStatus,
    QuotaSource,
    SubjectKind,
)
from governance.celery import enqueue
from governance.choices import (
    BOARD_ROLES,
    FUNCTION_OF_ROLE,
    ConflictStatus,
    DecisionKind,
    DecisionOutcome,
    Role,
)
from governance.emails import absolute_url, subject_clean
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import BoardMembership, BusinessUnit, Decision, ReviewBoard, User
from governance.money import money_format, money_round
from governance.selectors import TIMES, decision_list_for, manages_costs
from governance.services import decision_record
from governance.services.conflicts import conflict_raise, conflict_withdraw
from registry.models import CapacityPool, HardwarePrice, PoolUsage

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
HOURS = Decimal("0.01")
USAGE_DAYS = 90
AVERAGE_MONTHS = 3
JUSTIFICATION_MAX = 4000
RATIONALE_MAX = 4000
MAX_GPU_HOURS = Decimal("999999999999.99")  # PlanLine.gpu_hours: 14 digits, 2 decimals
BOARD_ROLE_ORDER = (Role.BOARD_INFRA, Role.BOARD_ML, Role.BOARD_PRODUCT)
# Who sees every unit's plans: the board decides them, finance and platform admins run cycles.
PLANNING_WIDE_ROLES = BOARD_ROLES | {Role.FINANCE, Role.PLATFORM_ADMIN}


class LineDecision:
    """What the board may answer on a line."""

    APPROVE = "approve"
    TRIM = "trim"
    REJECT = "reject"
    CHOICES = (
        (APPROVE, "Approve as asked"),
        (TRIM, "Trim (grant less)"),
        (REJECT, "Reject"),
    )
    VALUES = (APPROVE, TRIM, REJECT)


# --- Calendar, capacity and prices -----------------------------------------------------------


def fiscal_start_month() -> int:
    return settings.CAPGOV_FISCAL_YEAR_START_MONTH


def fiscal_calendar_text() -> str:
    """E.g. "Fiscal years run February to January; a fiscal year is named by …"."""
    return f"Fiscal years run {describe(fiscal_start_month())}."


def quarter_upcoming(today: dt.date) -> FiscalQuarter:
    """The fiscal quarter after the one ``today`` falls in, under the calendar in force."""
    return quarter_of(today, start_month=fiscal_start_month()).next()


def quarter_to_plan(today: dt.date) -> FiscalQuarter:
    """The first quarter from the upcoming one on without a cycle (a cancelled one aside):
    what the page offers to open next."""
    quarter = quarter_upcoming(today)
    taken = set(
        PlanningCycle.objects.exclude(status=CycleStatus.CANCELLED)
        .filter(fiscal_year__gte=quarter.fiscal_year)
        .values_list("fiscal_year", "quarter")
    )
    while (quarter.fiscal_year, quarter.quarter) in taken:
        quarter = quarter.next()
    return quarter


def cycle_months(cycle: PlanningCycle) -> list[dt.date]:
    months, cursor = [], cycle.first_month
    while cursor <= cycle.last_month:
        months.append(cursor)
        cursor = next_month(cursor)
    return months


def pool_capacity(pool: CapacityPool, month: dt.date) -> Decimal:
    """GPU-hours a pool has in a month: its accelerators x the month's hours."""
    return (Decimal(pool.accelerator_count) * days_in_month(month) * 24).quantize(HOURS)


@dataclass(frozen=True)
class GpuHourPrice:
    """A pool's on-demand price per accelerator-hour, from its hardware's instance price."""

    amount: Decimal
    currency: str
    source: str  # e.g. "p5 (per GPU) at AWS: 4.10 USD/h ÷ 1 accelerator"


def pool_gpu_hour_price(
    pool: CapacityPool, *, at: dt.datetime | None = None
) -> GpuHourPrice | None:
    """The current hourly price of the pool's hardware at its provider ÷ accelerators per
    replica (a HardwarePrice is per replica: "8 x A100" costs the instance's hourly price)."""
    return pool_gpu_hour_prices([pool], at=at).get(pool.pk)


def pool_gpu_hour_prices(
    pools: list[CapacityPool], *, at: dt.datetime | None = None
) -> dict[int, GpuHourPrice]:
    """:func:`pool_gpu_hour_price` for many pools in one query (pages list several)."""
    at = at or timezone.now()
    profiles = {p.hardware_profile_id for p in pools}
    newest: dict[tuple[int, str], HardwarePrice] = {}
    for price in HardwarePrice.objects.filter(
        hardware_profile_id__in=profiles, effective_from__lte=at
    ).order_by("hardware_profile_id", "provider", "-effective_from", "hourly_price"):
        newest.setdefault((price.hardware_profile_id, price.provider), price)
    out = {}
    for pool in pools:
        price = newest.get((pool.hardware_profile_id, pool.provider))
        profile = pool.hardware_profile
        count = profile.accelerator_count
        if price is None or count < 1:
            continue
        source = (
            f"{price.instance_type or profile} at {price.get_provider_display()}: "
            f"{price.hourly_price.normalize():f} {price.currency}/h ÷ {count} "
            f"accelerator{'s' if count > 1 else ''}"
        )
        out[pool.pk] = GpuHourPrice(price.hourly_price / count, price.currency, source)
    return out


# --- Who may do what -------------------------------------------------------------------------


def plans_see_all(user: User | None) -> bool:
    """Board members, finance and platform admins see every unit's plan."""
    if user is None:
        return True
    if not user.is_authenticated:
        return False
    return user.is_superuser or bool(user.role_set & PLANNING_WIDE_ROLES)


def planning_may_run(user: User | None) -> bool:
    """Open and approve cycles: finance and platform admins."""
    return manages_costs(user)


def planning_may_start_review(user: User) -> bool:
    return user.is_authenticated and (user.has_role(Role.PLATFORM_ADMIN) or user.is_board_member)


def plan_may_edit(user: User, plan: CapacityPlan) -> bool:
    """The unit's own people (owner and members) edit and file its plan."""
    return (
        user.is_authenticated
        and user.is_active
        and plan.business_unit_id in user.scoped_business_unit_ids
    )


def plan_edit_check(user: User, plan: CapacityPlan) -> None:
    """:func:`plan_may_edit`, or ``PermissionDeniedError`` saying who may (pages and the API
    check it before reading the body, so the refusal is a 403, not a 400)."""
    if not plan_may_edit(user, plan):
        raise PermissionDeniedError(
            f"Only {plan.business_unit.name}'s owner and members edit and file its plan."
        )


def line_may_decide(user: User, plan: CapacityPlan) -> bool:
    """A board member (of the cycle's board, if it names one) from outside the plan's unit."""
    if not (user.is_authenticated and user.is_active and user.is_board_member):
        return False
    if plan.business_unit_id in user.scoped_business_unit_ids:
        return False
    board_id = plan.cycle.board_id
    if board_id is None or user.is_superuser:
        return True
    return BoardMembership.objects.filter(board_id=board_id, user=user).exists()


def line_decide_check(user: User, plan: CapacityPlan) -> None:
    """:func:`line_may_decide`, or ``PermissionDeniedError`` saying who may."""
    if not line_may_decide(user, plan):
        raise PermissionDeniedError(
            "Board members from outside the plan's unit (of the cycle's board, if it names one) "
            "decide its lines."
        )


# --- Reading ---------------------------------------------------------------------------------


def cycle_list() -> QuerySet[PlanningCycle]:
    """Every cycle, newest quarter first, with its plan counts per status."""
    return (
        PlanningCycle.objects.select_related("board", "opened_by", "approved_by")
        .annotate(
            plan_count=Count("plans", distinct=True),
            filed_count=Count(
                "plans",
                filter=Q(plans__status__in=[PlanStatus.FILED, PlanStatus.DECIDED]),
                distinct=True,
            ),
        )
        .order_by("-first_month", "-pk")
    )


def plan_list(*, user: User | None) -> QuerySet[CapacityPlan]:
    """Plans ``user`` may read: all of them for the board, finance and platform admins; the
    plans of their own units for anyone else."""
    plans = CapacityPlan.objects.select_related(
        "cycle", "business_unit", "business_unit__owner", "filed_by"
    )
    if plans_see_all(user):
        return plans
    if not user.is_authenticated:
        return plans.none()
    return plans.filter(business_unit_id__in=user.scoped_business_unit_ids)


def plan_line_list(*, user: User | None) -> QuerySet[PlanLine]:
    lines = PlanLine.objects.select_related(
        "plan__cycle", "plan__business_unit", "pool", "decision", "decision__decided_by"
    )
    if plans_see_all(user):
        return lines
    if not user.is_authenticated:
        return lines.none()
    return lines.filter(plan__business_unit_id__in=user.scoped_business_unit_ids)


def plan_with_lines(*, user: User | None) -> QuerySet[CapacityPlan]:
    return plan_list(user=user).prefetch_related(
        Prefetch(
            "lines",
            queryset=PlanLine.objects.select_related(
                "pool", "pool__hardware_profile", "decision", "decision__decided_by"
            ).order_by("pool__name", "month"),
        )
    )


@dataclass
class PoolMonth:
    """One pool in one month of a cycle: what the plans ask and the board grants, against
    what the pool has."""

    pool: CapacityPool
    month: dt.date
    capacity: Decimal
    asked: Decimal = ZERO  # filed plans
    drafted: Decimal = ZERO  # draft plans, not yet asked
    approved: Decimal = ZERO
    pending: int = 0
    units: dict[str, Decimal] = field(default_factory=dict)
    conflict: PlanConflict | None = None

    @property
    def over(self) -> bool:
        return self.asked > self.capacity

    @property
    def approved_over(self) -> bool:
        return self.approved > self.capacity

    @property
    def asked_percent(self) -> Decimal:
        if not self.capacity:
            return ZERO
        return (self.asked * 100 / self.capacity).quantize(Decimal("0.1"), ROUND_HALF_UP)


def cycle_pool_months(
    cycle: PlanningCycle, *, pool_id: int | None = None, month: dt.date | None = None
) -> list[PoolMonth]:
    """Per pool and month of the cycle (or only ``pool_id`` in ``month``), the totals asked,
    drafted and approved (three queries)."""
    lines = PlanLine.objects.filter(plan__cycle=cycle)
    if pool_id is not None:
        lines = lines.filter(pool_id=pool_id, month=month)
    rows = (
        lines.values("pool_id", "month", "plan__status", "plan__business_unit__code", "status")
        .annotate(hours=Sum("gpu_hours"), granted=Sum("approved_gpu_hours"), lines=Count("id"))
        .order_by()
    )
    rows = list(rows)
    pools = CapacityPool.objects.in_bulk({r["pool_id"] for r in rows})
    conflicts = {
        (c.pool_id, c.month): c
        for c in PlanConflict.objects.filter(cycle=cycle).select_related("conflict")
    }
    table: dict[tuple[int, dt.date], PoolMonth] = {}
    for row in rows:
        key = (row["pool_id"], row["month"])
        pool = pools[row["pool_id"]]
        entry = table.get(key)
        if entry is None:
            entry = table[key] = PoolMonth(
                pool=pool,
                month=row["month"],
                capacity=pool_capacity(pool, row["month"]),
                conflict=conflicts.get(key),
            )
        # Sums keep two decimals (SQLite's come back without the trailing zeros).
        hours = (row["hours"] or ZERO).quantize(HOURS)
        if row["plan__status"] == PlanStatus.DRAFT:
            entry.drafted += hours
            continue
        entry.asked += hours
        code = row["plan__business_unit__code"]
        entry.units[code] = entry.units.get(code, ZERO) + hours
        if row["status"] == LineStatus.PENDING:
            entry.pending += row["lines"]
        elif row["status"] in (LineStatus.APPROVED, LineStatus.TRIMMED):
            entry.approved += (row["granted"] or ZERO).quantize(HOURS)
    return sorted(table.values(), key=lambda e: (e.pool.name, e.month))


def cycle_plans_unfiled(cycle: PlanningCycle) -> QuerySet[CapacityPlan]:
    """Plans still in draft: listed when the review starts (they get no quotas)."""
    return cycle.plans.filter(status=PlanStatus.DRAFT).select_related("business_unit__owner")


def cycle_conflict_list(cycle: PlanningCycle) -> QuerySet[PlanConflict]:
    """The cycle's over-capacity pool-months, each with its capacity conflict."""
    return (
        PlanConflict.objects.filter(cycle=cycle)
        .select_related("pool", "conflict")
        .order_by("pool__name", "month")
    )


def cycle_quota_list(cycle: PlanningCycle) -> QuerySet[CapacityQuota]:
    """The quotas the cycle's approval made from its granted lines."""
    return (
        CapacityQuota.objects.filter(plan_line__plan__cycle=cycle)
        .select_related("business_unit", "pool")
        .order_by("business_unit__code", "pool__name", "first_month")
    )


def cycle_budget_list(cycle: PlanningCycle) -> QuerySet[Budget]:
    """The budgets the cycle's approval made, one per unit, month and currency."""
    return (
        Budget.objects.filter(plan__cycle=cycle)
        .select_related("business_unit")
        .order_by("business_unit__code", "first_month")
    )


def plan_decisions_pending(cycle: PlanningCycle) -> QuerySet[PlanLine]:
    return PlanLine.objects.filter(
        plan__cycle=cycle,
        plan__status__in=[PlanStatus.FILED, PlanStatus.DECIDED],
        status=LineStatus.PENDING,
    ).select_related("plan__business_unit", "pool")


# --- Opening a cycle, pre-filling plans ------------------------------------------------------


@dataclass(frozen=True)
class Prefill:
    pool: CapacityPool
    month: dt.date
    gpu_hours: Decimal
    source: str


def _usage_last_days(today: dt.date) -> tuple[dict[tuple[int, int], Decimal], dict[int, Decimal]]:
    """GPU-hours per (unit, pool) and per pool over the last ``USAGE_DAYS`` days."""
    per_unit: dict[tuple[int, int], Decimal] = {}
    per_pool: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for row in (
        PoolUsage.objects.filter(
            day__gte=today - dt.timedelta(days=USAGE_DAYS), day__lt=today, gpu_hours__gt=0
        )
        .values("business_unit_id", "pool_id")
        .annotate(hours=Sum("gpu_hours"))
        .order_by()
    ):
        per_unit[(row["business_unit_id"], row["pool_id"])] = row["hours"]
        per_pool[row["pool_id"]] += row["hours"]
    return per_unit, dict(per_pool)


def _forecast_months(
    pool_ids: set[int], months: list[dt.date]
) -> dict[tuple[int, dt.date], Decimal]:
    """Σ expected GPU-hours per pool and month, where the pool's forecast covers every day."""
    if not pool_ids:
        return {}
    last_day = next_month(months[-1]) - dt.timedelta(days=1)
    forecasts = Forecast.objects.filter(
        kind=SubjectKind.POOL, measure=Measure.GPU_HOURS, pool_id__in=pool_ids
    )
    out: dict[tuple[int, dt.date], Decimal] = {}
    for row in (
        ForecastPoint.objects.filter(forecast__in=forecasts, day__gte=months[0], day__lte=last_day)
        .annotate(month=TruncMonth("day"))
        .values("forecast__pool_id", "month")
        .annotate(total=Sum("expected"), days=Count("day", distinct=True))
        .order_by()
    ):
        month = row["month"]
        if isinstance(month, dt.datetime):
            month = month.date()
        if row["days"] == days_in_month(month):
            out[(row["forecast__pool_id"], month)] = row["total"]
    return out


def _monthly_averages(
    today: dt.date,
) -> tuple[dict[tuple[int, int], Decimal], dict[int, int], tuple[dt.date, dt.date]]:
    """Σ GPU-hours per (unit, pool) over the last ``AVERAGE_MONTHS`` full calendar months,
    and per pool the number of those months with any usage reported (a month the data never
    arrived for is unknown, not zero, so it does not count)."""
    end = month_of(today)
    start = end
    for _ in range(AVERAGE_MONTHS):
        start = previous_month(start)
    sums: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)
    months_with_data: dict[int, set[dt.date]] = defaultdict(set)
    for row in (
        PoolUsage.objects.filter(day__gte=start, day__lt=end)
        .annotate(month=TruncMonth("day"))
        .values("business_unit_id", "pool_id", "month")
        .annotate(hours=Sum("gpu_hours"))
        .order_by()
    ):
        sums[(row["business_unit_id"], row["pool_id"])] += row["hours"]
        months_with_data[row["pool_id"]].add(row["month"])
    return (
        dict(sums),
        {k: len(v) for k, v in months_with_data.items()},
        (start, previous_month(end)),
    )


def _hours(value: Decimal) -> Decimal:
    return value.quantize(HOURS, ROUND_HALF_UP)


def _prefills_for(
    units: list[BusinessUnit], months: list[dt.date], today: dt.date
) -> dict[int, list[Prefill]]:
    """What each unit's plan starts with: a line per pool it used in the last 90 days and month.

    GPU-hours = the pool's GPU-hours forecast summed over the month's days x the unit's share
    of the pool's usage in the last 90 days; where no forecast covers the whole month, the
    unit's average month on the pool over the last three full months.
    """
    per_unit, per_pool = _usage_last_days(today)
    pool_ids = {pool_id for (_, pool_id) in per_unit}
    pools = CapacityPool.objects.select_related("hardware_profile").in_bulk(pool_ids)
    forecast = _forecast_months(pool_ids, months)
    sums, month_counts, (first, last) = _monthly_averages(today)
    window = f"{first:%Y-%m} to {last:%Y-%m}"
    out: dict[int, list[Prefill]] = defaultdict(list)
    unit_ids = {u.pk for u in units}
    codes = {u.pk: u.code for u in units}
    for (unit_id, pool_id), used in sorted(per_unit.items(), key=lambda i: (i[0][0], i[0][1])):
        if unit_id not in unit_ids:
            continue
        pool = pools[pool_id]
        share = used / per_pool[pool_id] if per_pool.get(pool_id) else ZERO
        count = month_counts.get(pool_id, 0)
        if count:
            average = sums.get((unit_id, pool_id), ZERO) / count
            average_text = f"{window}, {count} month{'s' if count > 1 else ''} with data"
        else:
            average = used / AVERAGE_MONTHS
            average_text = f"the last {USAGE_DAYS} days ÷ {AVERAGE_MONTHS}"
        for month in months:
            expected = forecast.get((pool_id, month))
            if expected is not None:
                hours = _hours(expected * share)
                source = (
                    f"Pre-filled from the forecast: {pool.name} is expected to use "
                    f"{_hours(expected):,} GPU-h in {month:%Y-%m}; {codes[unit_id]} used "
                    f"{(share * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)} % of the pool in "
                    f"the last {USAGE_DAYS} days."
                )
            else:
                hours = _hours(average)
                source = (
                    f"Pre-filled from usage (no forecast covers {month:%Y-%m}): "
                    f"{codes[unit_id]}'s average month on {pool.name}, {average_text}."
                )
            out[unit_id].append(Prefill(pool, month, hours, source))
    return dict(out)


def _planning_units() -> QuerySet[BusinessUnit]:
    """The units that plan: those with someone to file (an owner or a member)."""
    return (
        BusinessUnit.objects.filter(Q(owner__isnull=False) | Q(members__isnull=False))
        .distinct()
        .order_by("code")
    )


@transaction.atomic
def cycle_open(
    *,
    fiscal_year: int,
    quarter: int,
    by: User | None,
    board: ReviewBoard | None = None,
    plans_due: dt.date | None = None,
    now: dt.datetime | None = None,
) -> PlanningCycle:
    """Open a quarter's planning: every unit with an owner or members gets a draft plan
    pre-filled from its forecast, and each owner is e-mailed a link to theirs.

    ``by`` None is the beat task. A quarter has one cycle; one that has ended cannot be
    planned.
    """
    if by is not None and not planning_may_run(by):
        raise PermissionDeniedError("Planning cycles are opened by finance and platform admins.")
    try:
        fq = FiscalQuarter(int(fiscal_year), int(quarter), fiscal_start_month())
    except (FiscalError, TypeError, ValueError) as exc:
        raise DomainError(f"Fiscal quarter: {exc}") from exc
    now = now or timezone.now()
    today = now.date()
    if fq.last_day < today:
        raise DomainError(
            f"{fq} ended on {fq.last_day:%d %b %Y}; open a cycle for a quarter still to come "
            f"(the next is {quarter_upcoming(today)})."
        )
    if plans_due is not None:
        if plans_due < today:
            raise DomainError(
                f"Plans due on {plans_due:%d %b %Y} is in the past; choose today or later."
            )
        if plans_due > fq.last_day:
            raise DomainError(
                f"Plans due on {plans_due:%d %b %Y} is after {fq} ends ({fq.last_day:%d %b %Y})."
            )
    if board is not None and not board.is_active:
        raise DomainError(f"The board {board} is not active; choose an active one or none.")
    existing = (
        PlanningCycle.objects.filter(fiscal_year=fq.fiscal_year, quarter=fq.quarter)
        .exclude(status=CycleStatus.CANCELLED)
        .first()
    )
    if existing is not None:
        raise ConflictError(
            f"{fq} already has a planning cycle ({existing.get_status_display().lower()})."
        )
    try:
        with transaction.atomic():
            cycle = PlanningCycle.objects.create(
                fiscal_year=fq.fiscal_year,
                quarter=fq.quarter,
                first_month=fq.first_month,
                last_month=fq.last_month,
                board=board,
                plans_due=plans_due,
                opened_by=by,
                opened_at=now,
            )
    except IntegrityError as exc:
        raise ConflictError(f"{fq} was opened a moment ago by someone else.") from exc
    units = list(_planning_units())
    prefills = _prefills_for(units, list(fq.months), today)
    for unit in units:
        plan = CapacityPlan.objects.create(cycle=cycle, business_unit=unit)
        PlanLine.objects.bulk_create(
            [
                PlanLine(
                    plan=plan,
                    pool=p.pool,
                    month=p.month,
                    gpu_hours=p.gpu_hours,
                    forecast_gpu_hours=p.gpu_hours,
                    justification=p.source,
                )
                for p in prefills.get(unit.pk, [])
            ]
        )
        transaction.on_commit(partial(_plan_notify_send, plan.pk))
    return cycle


def _plan_notify_send(plan_id: int) -> bool:
    """Queue the owner's mail. With the broker down the cycle still opens: the mail is not
    sent (``enqueue`` logs it) and the owner finds the plan on the planning page."""
    from costs.tasks import planning_plan_notify_task  # tasks import services: late

    return enqueue(planning_plan_notify_task, plan_id)


def plan_notify(*, plan_id: int) -> bool:
    """E-mail the unit's owner the link to its plan (run by a Celery task, one per plan)."""
    plan = (
        CapacityPlan.objects.select_related("cycle", "business_unit__owner")
        .annotate(line_count=Count("lines"))
        .get(pk=plan_id)
    )
    if plan.cycle.status == CycleStatus.CANCELLED:
        return False  # cancelled before the mail left: nothing to plan
    owner = plan.business_unit.owner
    if owner is None or not owner.email or not owner.is_active:
        logger.warning("plan %s: %s has no owner to e-mail", plan.pk, plan.business_unit.code)
        return False
    context = {
        "plan": plan,
        "cycle": plan.cycle,
        "unit": plan.business_unit,
        "owner": owner,
        "line_count": plan.line_count,
        "url": absolute_url(plan.get_absolute_url()),
    }
    message = EmailMultiAlternatives(
        subject=subject_clean(
            f"[Capgov] Plan {plan.business_unit.name}'s capacity for {plan.cycle}"
        ),
        body=render_to_string("costs/email/planning_plan_open.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[owner.email],
    )
    message.attach_alternative(
        render_to_string("costs/email/planning_plan_open.html", context), "text/html"
    )
    message.send()
    return True


def planning_cycle_open_due(*, now: dt.datetime | None = None) -> PlanningCycle | None:
    """Beat: open the next quarter's cycle ``CAPGOV_PLANNING_OPENS_DAYS_BEFORE`` days before
    it starts. Idempotent: a quarter that has a cycle is left alone, and so is one whose cycle
    was cancelled after its opening day (a person is re-opening it).

    Plans are due halfway between today and the quarter's first day.
    """
    now = now or timezone.now()
    today = now.date()
    upcoming = quarter_upcoming(today)
    opens_on = upcoming.first_month - dt.timedelta(days=settings.CAPGOV_PLANNING_OPENS_DAYS_BEFORE)
    if today < opens_on:
        return None
    cycles = list(
        PlanningCycle.objects.filter(fiscal_year=upcoming.fiscal_year, quarter=upcoming.quarter)
    )
    if any(c.status != CycleStatus.CANCELLED for c in cycles):
        return None
    # A cycle cancelled once the quarter's opening had come is someone's to open again by
    # hand; one cancelled before (opened early by mistake) does not stop the schedule.
    window = dt.datetime.combine(opens_on, dt.time(), tzinfo=dt.UTC)
    if any((d := cycle_cancel_decision(c)) is None or d.decided_at >= window for c in cycles):
        return None
    due = today + dt.timedelta(days=(upcoming.first_month - today).days // 2)
    try:
        return cycle_open(
            fiscal_year=upcoming.fiscal_year,
            quarter=upcoming.quarter,
            by=None,
            board=ReviewBoard.objects.filter(is_active=True).order_by("name").first(),
            plans_due=due,
            now=now,
        )
    except ConflictError:
        return None  # another beat run opened it first


# --- Editing and filing a plan ---------------------------------------------------------------


def _locked_plan(plan: CapacityPlan) -> CapacityPlan:
    """The plan, locked, with its cycle as it is now: the cycle is locked first (the order
    cycle_approve and cycle_cancel take them in), so no change to a plan lands in a cycle
    that a concurrent cancel or approval has just moved on."""
    list(PlanningCycle.objects.select_for_update().filter(pk=plan.cycle_id).values_list("pk"))
    return (
        CapacityPlan.objects.select_for_update(of=("self",))
        .select_related("cycle", "business_unit")
        .get(pk=plan.pk)
    )


def _plan_editable(plan: CapacityPlan, by: User) -> None:
    plan_edit_check(by, plan)
    cycle = plan.cycle
    if cycle.status not in (CycleStatus.OPEN, CycleStatus.REVIEW):
        raise ConflictError(
            f"{cycle} is {cycle.get_status_display().lower()}: its plans no longer change."
        )
    if plan.status != PlanStatus.DRAFT:
        hint = (
            " Take it back to draft first (while the cycle is open for plans)."
            if cycle.status == CycleStatus.OPEN
            else " The board is reviewing it."
        )
        raise ConflictError(f"The plan is {plan.get_status_display().lower()}.{hint}")


def _gpu_hours_clean(value: object) -> Decimal:
    try:
        hours = Decimal(str(value).strip().replace(",", ""))
    except ArithmeticError as exc:
        raise DomainError(f"GPU-hours {value!r} is not a number such as 1200 or 1200.50.") from exc
    if not hours.is_finite() or hours < 0:
        raise DomainError("GPU-hours are a number, 0 or more.")
    if hours.as_tuple().exponent < -2:
        raise DomainError("GPU-hours have at most two decimals.")
    if hours > MAX_GPU_HOURS:
        raise DomainError(f"GPU-hours are at most {MAX_GPU_HOURS:,}.")
    return hours.quantize(HOURS)


def _text_clean(value: str, *, what: str, limit: int = JUSTIFICATION_MAX) -> str:
    text = (value or "").strip()
    if len(text) > limit:
        raise DomainError(f"The {what} is {len(text):,} characters long; at most {limit:,}.")
    return text


def _month_clean(cycle: PlanningCycle, month: dt.date) -> dt.date:
    month = month_of(month)
    if not cycle.first_month <= month <= cycle.last_month:
        raise DomainError(
            f"{month:%Y-%m} is not in {cycle} ({cycle.first_month:%Y-%m} to "
            f"{cycle.last_month:%Y-%m}); choose one of its months."
        )
    return month


@transaction.atomic
def plan_line_add(
    *,
    plan: CapacityPlan,
    by: User,
    pool: CapacityPool,
    month: dt.date,
    gpu_hours: object,
    justification: str,
) -> PlanLine:
    """Ask for GPU-hours on a pool in one month of the cycle (a draft plan only)."""
    plan = _locked_plan(plan)
    _plan_editable(plan, by)
    month = _month_clean(plan.cycle, month)
    hours = _gpu_hours_clean(gpu_hours)
    text = _text_clean(justification, what="justification")
    if PlanLine.objects.filter(plan=plan, pool=pool, month=month).exists():
        raise ConflictError(
            f"The plan already has a line for {pool.name} in {month:%Y-%m}; change that one."
        )
    line = PlanLine.objects.create(
        plan=plan, pool=pool, month=month, gpu_hours=hours, justification=text
    )
    plan.save(update_fields=["updated_at"])
    return line


@transaction.atomic
def plan_line_update(
    *, line: PlanLine, by: User, gpu_hours: object = None, justification: str | None = None
) -> PlanLine:
    """Change a draft line's GPU-hours or justification."""
    plan = _locked_plan(line.plan)
    _plan_editable(plan, by)
    line = PlanLine.objects.select_for_update().get(pk=line.pk)
    fields = []
    if gpu_hours is not None:
        line.gpu_hours = _gpu_hours_clean(gpu_hours)
        fields.append("gpu_hours")
    if justification is not None:
        line.justification = _text_clean(justification, what="justification")
        fields.append("justification")
    if fields:
        line.save(update_fields=fields)
        plan.save(update_fields=["updated_at"])
    return line


@transaction.atomic
def plan_line_delete(*, line: PlanLine, by: User) -> None:
    """Take a pool-month off a draft plan."""
    plan = _locked_plan(line.plan)
    _plan_editable(plan, by)
    PlanLine.objects.filter(pk=line.pk).delete()
    plan.save(update_fields=["updated_at"])


@transaction.atomic
def plan_update(*, plan: CapacityPlan, by: User, justification: str) -> CapacityPlan:
    """The plan's overall justification (what the quarter holds for the unit)."""
    plan = _locked_plan(plan)
    _plan_editable(plan, by)
    plan.justification = _text_clean(justification, what="plan's justification")
    plan.save(update_fields=["justification", "updated_at"])
    return plan


@transaction.atomic
def plan_file(*, plan: CapacityPlan, by: User, now: dt.datetime | None = None) -> CapacityPlan:
    """File a draft plan for the board (while the cycle is open, or late, in review).

    Every line asking for GPU-hours needs a justification. Filing checks the pools: plans
    asking more of a pool in a month than it has open a capacity conflict.
    """
    plan = _locked_plan(plan)
    _plan_editable(plan, by)
    unjustified = [
        f"{line.pool.name} {line.month:%Y-%m}"
        for line in plan.lines.select_related("pool").order_by("pool__name", "month")
        if line.gpu_hours > 0 and not line.justification.strip()
    ]
    if unjustified:
        raise DomainError(
            "Say why each line needs its GPU-hours before filing; no justification on: "
            f"{', '.join(unjustified[:5])}{' …' if len(unjustified) > 5 else ''}."
        )
    plan.status = PlanStatus.FILED
    plan.filed_by = by
    plan.filed_at = now or timezone.now()
    plan.save(update_fields=["status", "filed_by", "filed_at", "updated_at"])
    _conflicts_check(plan.cycle, by=by)
    return plan


@transaction.atomic
def plan_reopen(*, plan: CapacityPlan, by: User) -> CapacityPlan:
    """Take a filed plan back to draft, while the cycle is still open for plans."""
    plan = _locked_plan(plan)
    if not plan_may_edit(by, plan):
        raise PermissionDeniedError(
            f"Only {plan.business_unit.name}'s owner and members take its plan back."
        )
    if plan.cycle.status != CycleStatus.OPEN:
        raise ConflictError(
            f"{plan.cycle} is {plan.cycle.get_status_display().lower()}: a filed plan stays "
            "filed once the review has started."
        )
    if plan.status != PlanStatus.FILED:
        raise ConflictError(f"The plan is {plan.get_status_display().lower()}, not filed.")
    plan.status = PlanStatus.DRAFT
    plan.filed_by = None
    plan.filed_at = None
    plan.save(update_fields=["status", "filed_by", "filed_at", "updated_at"])
    return plan


# --- Conflicts -------------------------------------------------------------------------------


def _conflicts_check(cycle: PlanningCycle, *, by: User) -> list[PlanConflict]:
    """Open a capacity conflict for each pool and month the filed plans over-ask, once.

    One unit alone over a pool's capacity is not a conflict between units (the board trims
    it; the cycle page flags it); two or more are. A later plan joining an open conflict
    adds its unit to it and updates the figure asked.
    """
    opened = []
    for entry in cycle_pool_months(cycle):
        if not entry.over:
            continue
        codes = [code for code, hours in entry.units.items() if hours > 0]
        existing = entry.conflict
        if existing is not None:
            existing.requested_gpu_hours = entry.asked
            existing.save(update_fields=["requested_gpu_hours"])
            if existing.conflict.status != ConflictStatus.RESOLVED:
                existing.conflict.business_units.add(*BusinessUnit.objects.filter(code__in=codes))
            continue
        if len(codes) < 2:
            continue
        units = list(BusinessUnit.objects.filter(code__in=codes).order_by("code"))
        asks = ", ".join(f"{code} {entry.units[code]:,}" for code in sorted(codes))
        conflict = conflict_raise(
            title=f"{cycle}: {entry.pool.name} over capacity in {entry.month:%B %Y}",
            description=(
                f"The filed plans of {cycle} ask {entry.asked:,} GPU-hours of {entry.pool.name} "
                f"in {entry.month:%B %Y} ({asks}); the pool has {entry.capacity:,} "
                f"({entry.pool.accelerator_count:,} accelerators {TIMES} "
                f"{days_in_month(entry.month) * 24} h). Decide who gets what; the board then "
                f"trims the lines in the cycle's review: "
                f"{absolute_url(cycle.get_absolute_url())}"
            ),
            business_units=units,
            by=by,
            subject=entry.pool,
            # Checked when the settings load; empty means conflict_raise's default path.
            escalation_path=settings.CAPGOV_PLAN_CONFLICT_ESCALATION or None,
        )
        opened.append(
            PlanConflict.objects.create(
                cycle=cycle,
                pool=entry.pool,
                month=entry.month,
                requested_gpu_hours=entry.asked,
                capacity_gpu_hours=entry.capacity,
                conflict=conflict,
            )
        )
    return opened


# --- Review and the board's decisions --------------------------------------------------------


def _locked_cycle(cycle: PlanningCycle) -> PlanningCycle:
    return PlanningCycle.objects.select_for_update().get(pk=cycle.pk)


@dataclass
class ReviewStart:
    cycle: PlanningCycle
    unfiled: list[CapacityPlan]
    conflicts: list[PlanConflict]


@transaction.atomic
def cycle_start_review(
    *, cycle: PlanningCycle, by: User, now: dt.datetime | None = None
) -> ReviewStart:
    """Close the cycle to new plans' drafting and put the filed ones before the board.

    Plans not filed by now are listed (they may still be filed late; unfiled ones get no
    quotas). Platform admins and board members start the review.
    """
    if not planning_may_start_review(by):
        raise PermissionDeniedError("Platform admins and the review board start the review.")
    cycle = _locked_cycle(cycle)
    if cycle.status != CycleStatus.OPEN:
        raise ConflictError(
            f"{cycle} is {cycle.get_status_display().lower()}; only a cycle open for plans "
            "goes to review."
        )
    cycle.status = CycleStatus.REVIEW
    cycle.review_started_at = now or timezone.now()
    cycle.save(update_fields=["status", "review_started_at"])
    conflicts = _conflicts_check(cycle, by=by)
    return ReviewStart(cycle, list(cycle_plans_unfiled(cycle)), conflicts)


CANCELLABLE = (CycleStatus.OPEN, CycleStatus.REVIEW)


def cycle_may_cancel(user: User, cycle: PlanningCycle) -> bool:
    return cycle.status in CANCELLABLE and planning_may_run(user)


@transaction.atomic
def cycle_cancel(*, cycle: PlanningCycle, by: User, reason: str) -> Decision:
    """Call off a cycle opened by mistake (the wrong quarter, board or due date) before it is
    approved: its plans can no longer be edited, filed or decided, its open capacity
    conflicts close with this Decision, and the quarter may be opened again by hand (the
    schedule leaves a quarter with a cancelled cycle alone). Finance and platform admins.

    An approved cycle is not cancelled: its quotas and budgets are in force; change those.
    """
    if not planning_may_run(by):
        raise PermissionDeniedError("Planning cycles are cancelled by finance and platform admins.")
    cycle = _locked_cycle(cycle)
    if cycle.status not in CANCELLABLE:
        raise ConflictError(
            f"{cycle} is {cycle.get_status_display().lower()}; only a cycle open for plans or "
            "in review is cancelled"
            + (
                " (its quotas and budgets are in force: change those)."
                if cycle.status == CycleStatus.APPROVED
                else "."
            )
        )
    plans = cycle.plans.values("status").annotate(n=Count("pk")).order_by()
    decision = decision_record(
        subject=cycle,
        kind=DecisionKind.OTHER,
        outcome=DecisionOutcome.REJECTED,
        title=f"Cancel the {cycle} planning cycle",
        rationale=reason,
        by=by,
        decided_as=next((r for r in (Role.FINANCE, Role.PLATFORM_ADMIN) if by.has_role(r)), ""),
        evidence={
            "cycle": str(cycle),
            "status_before": cycle.status,
            "plans": {row["status"]: row["n"] for row in plans},
        },
    )
    cycle.status = CycleStatus.CANCELLED
    cycle.save(update_fields=["status"])
    for entry in PlanConflict.objects.filter(cycle=cycle).select_related("conflict"):
        conflict_withdraw(conflict=entry.conflict, decision=decision)  # locks each
    return decision


def _decider_role(by: User, cycle: PlanningCycle) -> str:
    """The board role ``by`` decides in: their seat's function on the cycle's board, else
    the first board role they hold."""
    if cycle.board_id:
        seat = BoardMembership.objects.filter(board_id=cycle.board_id, user=by).first()
        if seat is not None:
            return next((r for r, f in FUNCTION_OF_ROLE.items() if f == seat.function), "")
    return next((r for r in BOARD_ROLE_ORDER if r in by.role_set), "")


@transaction.atomic
def plan_line_decide(
    *,
    line: PlanLine,
    by: User,
    outcome: str,
    rationale: str,
    approved_gpu_hours: object = None,
    alternatives: str = "",
) -> PlanLine:
    """The board's answer on one line: approve as asked, trim (grant less, with the reason)
    or reject. Each answer is a Decision about the line; a new answer (while the cycle is in
    review) replaces the line's, the earlier Decision stays on record."""
    plan = _locked_plan(line.plan)
    line = PlanLine.objects.select_for_update().select_related("pool").get(pk=line.pk)
    cycle = plan.cycle
    if not (by.is_authenticated and by.is_board_member):
        raise PermissionDeniedError("The capacity review board decides plan lines.")
    if plan.business_unit_id in by.scoped_business_unit_ids:
        raise PermissionDeniedError(
            f"You belong to {plan.business_unit.name}, so another board member decides its lines."
        )
    if not line_may_decide(by, plan):
        raise PermissionDeniedError(f"Only members of {cycle.board} decide {cycle}'s plans.")
    if cycle.status != CycleStatus.REVIEW:
        raise ConflictError(
            f"{cycle} is {cycle.get_status_display().lower()}; the board decides lines while it "
            "is in review."
        )
    if plan.status == PlanStatus.DRAFT:
        raise ConflictError(f"{plan.business_unit.code}'s plan is a draft: it has not been filed.")
    if outcome not in LineDecision.VALUES:
        raise DomainError(f"Decide a line with approve, trim or reject, not {outcome!r}.")
    rationale = _text_clean(rationale, what="rationale", limit=RATIONALE_MAX)
    if not rationale:
        raise DomainError("Give the rationale: it is kept with the decision.")
    asked = line.gpu_hours
    what = f"{plan.business_unit.code}'s {line.pool.name} {line.month:%Y-%m}"
    if outcome == LineDecision.TRIM:
        if approved_gpu_hours in (None, ""):
            raise DomainError("Say how many GPU-hours to grant when trimming a line.")
        granted = _gpu_hours_clean(approved_gpu_hours)
        if not ZERO < granted < asked:
            raise DomainError(
                f"A trim grants more than 0 and less than the {asked:,} GPU-h asked; "
                "to grant all approve it, to grant none reject it."
            )
        status, verdict = LineStatus.TRIMMED, DecisionOutcome.APPROVED
        title = f"Trim {what} to {granted:,} GPU-h (asked {asked:,})"
    elif outcome == LineDecision.APPROVE:
        granted, status, verdict = asked, LineStatus.APPROVED, DecisionOutcome.APPROVED
        title = f"Approve {what}: {asked:,} GPU-h"
    else:
        granted, status, verdict = ZERO, LineStatus.REJECTED, DecisionOutcome.REJECTED
        title = f"Reject {what}: {asked:,} GPU-h asked"
    # The line's own pool-month only: the rest of the cycle does not enter the evidence.
    pool_month = next(iter(cycle_pool_months(cycle, pool_id=line.pool_id, month=line.month)), None)
    decision = decision_record(
        subject=line,
        kind=DecisionKind.OTHER,
        outcome=verdict,
        title=f"{title} — {cycle} plan",
        rationale=rationale,
        alternatives=alternatives,
        by=by,
        decided_as=_decider_role(by, cycle),
        business_unit=plan.business_unit,
        evidence={
            "cycle": str(cycle),
            "unit": plan.business_unit.code,
            "pool": line.pool.code,
            "month": f"{line.month:%Y-%m}",
            "decision": outcome,
            "asked_gpu_hours": f"{asked}",
            "forecast_gpu_hours": None
            if line.forecast_gpu_hours is None
            else f"{line.forecast_gpu_hours}",
            "approved_gpu_hours": f"{granted}",
            "pool_capacity_gpu_hours": f"{pool_capacity(line.pool, line.month)}",
            "pool_asked_gpu_hours": f"{pool_month.asked}" if pool_month else None,
        },
    )
    line.status = status
    line.approved_gpu_hours = granted
    line.decision = decision
    line.save(update_fields=["status", "approved_gpu_hours", "decision"])
    if not plan.lines.filter(status=LineStatus.PENDING).exists():
        plan.status = PlanStatus.DECIDED
        plan.save(update_fields=["status", "updated_at"])
    return line


# --- Approving the cycle: quotas and budgets -------------------------------------------------


@dataclass
class CycleApproval:
    cycle: PlanningCycle
    quotas: list[CapacityQuota] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # manual quotas and budgets made room
    not_filed: list[str] = field(default_factory=list)


def _approval_refusals(cycle: PlanningCycle) -> None:
    pending = list(
        plan_decisions_pending(cycle).order_by("plan__business_unit__code", "pool__name", "month")
    )
    if pending:
        names = ", ".join(
            f"{line.plan.business_unit.code} {line.pool.name} {line.month:%Y-%m}"
            for line in pending[:5]
        )
        raise ConflictError(
            f"{len(pending)} line(s) still wait for the board's decision: {names}"
            f"{' …' if len(pending) > 5 else ''}."
        )
    open_conflicts = list(
        PlanConflict.objects.filter(cycle=cycle)
        .exclude(conflict__status=ConflictStatus.RESOLVED)
        .select_related("pool")
    )
    if open_conflicts:
        names = ", ".join(f"{c.pool.name} in {c.month:%Y-%m}" for c in open_conflicts)
        raise ConflictError(
            f"The capacity conflict over {names} is not resolved yet: the board resolves it on "
            "the conflict's page first."
        )
    for entry in cycle_pool_months(cycle):
        if entry.approved_over:
            raise ConflictError(
                f"The approved lines give {entry.approved:,} GPU-h of {entry.pool.name} in "
                f"{entry.month:%Y-%m}, more than its {entry.capacity:,}: trim lines first."
            )


def _quota_multipliers(lines: list[PlanLine]) -> dict[int, Decimal]:
    """Per line, the multiplier of the unit's manual quota on the pool: the one in force in
    the line's month, else its newest; else ``CAPGOV_PLAN_OVERAGE_MULTIPLIER``. Read before
    any manual quota makes room for the plan's."""
    manual: dict[tuple[int, int], list[CapacityQuota]] = defaultdict(list)
    for quota in CapacityQuota.objects.filter(
        source=QuotaSource.MANUAL,
        business_unit_id__in={line.plan.business_unit_id for line in lines},
        pool_id__in={line.pool_id for line in lines},
    ).order_by("-first_month"):
        manual[(quota.business_unit_id, quota.pool_id)].append(quota)
    out = {}
    for line in lines:
        quotas = manual.get((line.plan.business_unit_id, line.pool_id), [])
        current = next((q for q in quotas if q.is_active_in(line.month)), None)
        chosen = current or (quotas[0] if quotas else None)
        out[line.pk] = chosen.multiplier if chosen else settings.CAPGOV_PLAN_OVERAGE_MULTIPLIER
    return out


def _ranges_without(
    first: dt.date | None, last: dt.date | None, taken: set[dt.date]
) -> list[tuple[dt.date | None, dt.date | None]]:
    """[first, last] (None: open) less the months in ``taken``, as contiguous ranges."""
    inside = sorted(
        m for m in taken if (first is None or first <= m) and (last is None or m <= last)
    )
    if not inside:
        return [(first, last)]
    ranges: list[tuple[dt.date | None, dt.date | None]] = []
    start = first
    for month in inside:
        if start is None or start < month:
            ranges.append((start, previous_month(month)))
        start = next_month(month)
    if last is None or start <= last:
        ranges.append((start, last))
    return ranges


def _make_room_quota(
    unit_id: int, pool_id: int, month: dt.date, planned: set[dt.date], changed: list[str]
) -> None:
    """A manual quota starting in a planned month would share the plan quota's start (one
    quota per unit, pool and first month): it now starts after the planned months — for those
    months the plan's quota wins anyway — or goes, if nothing of it is left to apply."""
    manual = (
        CapacityQuota.objects.filter(
            business_unit_id=unit_id, pool_id=pool_id, first_month=month, source=QuotaSource.MANUAL
        )
        .select_related("business_unit", "pool")
        .first()
    )
    if manual is None:
        return
    start = month
    while start in planned:
        start = next_month(start)
    label = (
        f"Manual quota {manual.business_unit.code} on {manual.pool.name} from "
        f"{manual.first_month:%Y-%m} ({manual.gpu_hours:,} GPU-h a month)"
    )
    clash = CapacityQuota.objects.filter(
        business_unit_id=unit_id, pool_id=pool_id, first_month=start
    ).exists()
    if (manual.last_month is not None and start > manual.last_month) or clash:
        manual.delete()
        changed.append(f"{label}: removed, the plan's quotas and later quotas cover all of it.")
        return
    manual.first_month = start
    manual.save(update_fields=["first_month"])
    changed.append(f"{label}: now starts {start:%Y-%m}, after the plan's months.")


def _span_text(first: dt.date | None, last: dt.date | None) -> str:
    if first and last:
        return f"{first:%Y-%m} to {last:%Y-%m}"
    if first:
        return f"from {first:%Y-%m}"
    return f"until {last:%Y-%m}" if last else "every month"


def _make_room_budgets(
    unit: BusinessUnit, currency: str, months: set[dt.date], by: User, changed: list[str]
) -> None:
    """Budgets of the unit in that currency covering the whole unit (no project tag) may not
    overlap the plan's budgets: they now skip the planned months (split in two if they ran
    across them, removed if nothing is left), so the freeze reads the plan's budget there."""
    for budget in Budget.objects.filter(
        business_unit=unit, currency=currency, tag_key="", plan__isnull=True
    ).order_by("pk"):
        ranges = _ranges_without(budget.first_month, budget.last_month, months)
        if ranges == [(budget.first_month, budget.last_month)]:
            continue
        label = f"Budget {budget.name!r} ({money_format(budget.amount, currency)} a month)"
        if not ranges:
            budget.delete()
            changed.append(f"{label}: removed, the plan's budgets cover all its months.")
            continue
        (first, last), *rest = ranges
        budget.first_month, budget.last_month = first, last
        budget.save(update_fields=["first_month", "last_month", "updated_at"])
        for extra_first, extra_last in rest:
            copy = Budget.objects.get(pk=budget.pk)
            copy.pk = None
            copy.first_month, copy.last_month = extra_first, extra_last
            copy.created_by = by
            copy.save()
        spans = "; ".join(_span_text(a, b) for a, b in ranges)
        changed.append(f"{label}: now covers {spans} (not the planned months).")


@transaction.atomic
def cycle_approve(
    *, cycle: PlanningCycle, by: User, now: dt.datetime | None = None
) -> CycleApproval:
    """Approve a reviewed cycle: granted lines become quotas, each unit's month a budget.

    Refused while a line waits for the board, a capacity conflict of the cycle is open, the
    granted hours exceed a pool's capacity, or a pool has no price. Each approved or trimmed
    line becomes a one-month quota (source *plan*) of the granted GPU-hours at the line's
    price, else the pool hardware's price per accelerator-hour, with the multiplier of the
    unit's manual quota on the pool (else ``CAPGOV_PLAN_OVERAGE_MULTIPLIER``); plan quotas
    of earlier cycles for these months are replaced. Each unit's month becomes a budget of
    the sum of granted GPU-hours x price, freezing at ``CAPGOV_PLAN_BUDGET_FREEZE_PERCENT``. The
    approval is a Decision about the cycle, listing what was made and what made room.
    """
    if not planning_may_run(by):
        raise PermissionDeniedError("Finance and platform admins approve a planning cycle.")
    cycle = _locked_cycle(cycle)
    if cycle.status != CycleStatus.REVIEW:
        hint = {
            CycleStatus.OPEN: " Start the review first, then the board decides each line.",
            CycleStatus.APPROVED: " It was approved already.",
        }.get(cycle.status, "")
        raise ConflictError(f"{cycle} is {cycle.get_status_display().lower()}.{hint}")
    _approval_refusals(cycle)
    now = now or timezone.now()
    granted = list(
        PlanLine.objects.filter(
            plan__cycle=cycle,
            plan__status__in=[PlanStatus.FILED, PlanStatus.DECIDED],
            status__in=[LineStatus.APPROVED, LineStatus.TRIMMED],
        )
        .select_related("plan__business_unit", "pool__hardware_profile")
        .order_by("plan__business_unit__code", "pool__code", "month")
    )
    unpriced = {
        line.pool_id: line.pool for line in granted if line.unit_price is None or not line.currency
    }
    prices = pool_gpu_hour_prices(list(unpriced.values()), at=now)
    for pool in unpriced.values():
        if pool.pk not in prices:
            raise DomainError(
                f"No hourly price for {pool.hardware_profile} at "
                f"{pool.get_provider_display()} (pool {pool.name}): a platform admin "
                "adds one under Hardware prices, or the price sync fills it."
            )
    result = CycleApproval(cycle=cycle)
    months = cycle_months(cycle)
    # Plan quotas of an earlier cycle for these months (a changed fiscal calendar can make
    # quarters overlap) give way to this plan.
    CapacityQuota.objects.filter(source=QuotaSource.PLAN, first_month__in=months).delete()
    planned: dict[tuple[int, int], set[dt.date]] = defaultdict(set)
    for line in granted:
        planned[(line.plan.business_unit_id, line.pool_id)].add(line.month)
    multipliers = _quota_multipliers(granted)
    money: dict[tuple[int, dt.date, str], Decimal] = defaultdict(lambda: ZERO)
    for line in granted:
        unit = line.plan.business_unit
        if line.unit_price is None or not line.currency:
            price = prices[line.pool_id]
            line.unit_price = price.amount.quantize(Decimal("0.000001"), ROUND_HALF_UP)
            line.currency = price.currency
            line.save(update_fields=["unit_price", "currency"])
        _make_room_quota(
            unit.pk, line.pool_id, line.month, planned[(unit.pk, line.pool_id)], result.changed
        )
        result.quotas.append(
            CapacityQuota.objects.create(
                business_unit=unit,
                pool=line.pool,
                first_month=line.month,
                last_month=line.month,
                gpu_hours=line.approved_gpu_hours,
                unit_price=line.unit_price,
                currency=line.currency,
                multiplier=multipliers[line.pk],
                source=QuotaSource.PLAN,
                plan_line=line,
            )
        )
        money[(unit.pk, line.month, line.currency)] += line.approved_gpu_hours * line.unit_price
    units = {line.plan.business_unit_id: line.plan.business_unit for line in granted}
    plans = {line.plan.business_unit_id: line.plan for line in granted}
    by_unit_currency: dict[tuple[int, str], set[dt.date]] = defaultdict(set)
    for (unit_id, month, currency), amount in money.items():
        if money_round(amount, currency) > 0:
            by_unit_currency[(unit_id, currency)].add(month)
    # Likewise an earlier cycle's plan budgets for these months.
    Budget.objects.filter(plan__isnull=False, first_month__in=months).delete()
    for (unit_id, currency), planned_months in sorted(by_unit_currency.items()):
        _make_room_budgets(units[unit_id], currency, planned_months, by, result.changed)
    currencies_of: dict[tuple[int, dt.date], int] = defaultdict(int)
    for unit_id, month, _currency in money:
        currencies_of[(unit_id, month)] += 1
    freeze = settings.CAPGOV_PLAN_BUDGET_FREEZE_PERCENT or None
    for (unit_id, month, currency), amount in sorted(money.items()):
        amount = money_round(amount, currency)
        if amount <= 0:
            continue
        unit = units[unit_id]
        name = f"{cycle} plan — {unit.code} {month:%Y-%m}"
        if currencies_of[(unit_id, month)] > 1:
            name += f" ({currency})"
        budget = cost_services.budget_save(
            name=name,
            business_unit=unit,
            amount=amount,
            currency=currency,
            freeze_at_percent=freeze,
            first_month=month,
            last_month=month,
            by=by,
        )
        Budget.objects.filter(pk=budget.pk).update(plan=plans[unit_id])
        budget.plan = plans[unit_id]
        result.budgets.append(budget)
    result.not_filed = list(
        cycle.plans.filter(status=PlanStatus.DRAFT)
        .order_by("business_unit__code")
        .values_list("business_unit__code", flat=True)
    )
    cycle.plans.filter(status=PlanStatus.FILED).update(status=PlanStatus.DECIDED, updated_at=now)
    cycle.status = CycleStatus.APPROVED
    cycle.approved_at = now
    cycle.approved_by = by
    cycle.save(update_fields=["status", "approved_at", "approved_by"])
    decision_record(
        subject=cycle,
        kind=DecisionKind.OTHER,
        outcome=DecisionOutcome.APPROVED,
        title=f"Approve the {cycle} capacity plan",
        rationale=(
            f"Every filed line decided by the board, no open capacity conflict and every pool "
            f"within capacity: {len(result.quotas)} quota(s) and {len(result.budgets)} "
            "budget(s) from the plan."
        ),
        by=by,
        decided_as=Role.PLATFORM_ADMIN if by.has_role(Role.PLATFORM_ADMIN) else Role.FINANCE,
        evidence={
            "quotas": [
                {
                    "unit": q.business_unit.code,
                    "pool": q.pool.code,
                    "month": f"{q.first_month:%Y-%m}",
                    "gpu_hours": f"{q.gpu_hours}",
                    "unit_price": f"{q.unit_price}",
                    "currency": q.currency,
                    "multiplier": f"{q.multiplier}",
                }
                for q in result.quotas
            ],
            "budgets": [
                {"name": b.name, "amount": f"{b.amount}", "currency": b.currency}
                for b in result.budgets
            ],
            "made_room": result.changed,
            "not_filed": result.not_filed,
        },
        at=now,
    )
    return result


def _cycle_decision(cycle: PlanningCycle, outcome: str) -> Decision | None:
    return (
        decision_list_for(
            subject_type_id=ContentType.objects.get_for_model(PlanningCycle).pk,
            subject_ids=[cycle.pk],
        )
        .filter(outcome=outcome)
        .first()
    )


def cycle_cancel_decision(cycle: PlanningCycle) -> Decision | None:
    """The Decision that cancelled the cycle, if it is cancelled."""
    return _cycle_decision(cycle, DecisionOutcome.REJECTED)


def cycle_approval_decision(cycle: PlanningCycle) -> Decision | None:
    """The Decision that approved the cycle, if it is approved."""
    return _cycle_decision(cycle, DecisionOutcome.APPROVED)


# --- What a page offers ----------------------------------------------------------------------
# The booleans below say, without raising, whether the matching service would accept the move
# now; the pages show a form or button only when it is true.


def cycle_may_start_review(user: User, cycle: PlanningCycle) -> bool:
    """:func:`cycle_start_review` would accept ``user`` now."""
    return cycle.status == CycleStatus.OPEN and planning_may_start_review(user)


def cycle_may_approve(user: User, cycle: PlanningCycle) -> bool:
    """:func:`cycle_approve` would let ``user`` try now (its other refusals aside)."""
    return cycle.status == CycleStatus.REVIEW and planning_may_run(user)


def plan_may_change(user: User, plan: CapacityPlan) -> bool:
    """The plan's lines and justification may be changed and the plan filed by ``user`` now
    (what the writes' own check refuses otherwise)."""
    return (
        plan.status == PlanStatus.DRAFT
        and plan.cycle.status in (CycleStatus.OPEN, CycleStatus.REVIEW)
        and plan_may_edit(user, plan)
    )


def plan_may_reopen(user: User, plan: CapacityPlan) -> bool:
    """:func:`plan_reopen` would accept ``user`` now."""
    return (
        plan.status == PlanStatus.FILED
        and plan.cycle.status == CycleStatus.OPEN
        and plan_may_edit(user, plan)
    )


def plan_lines_may_decide(user: User, plan: CapacityPlan) -> bool:
    """``user`` may answer the plan's lines now (:func:`plan_line_decide`)."""
    return (
        plan.cycle.status == CycleStatus.REVIEW
        and plan.status != PlanStatus.DRAFT
        and line_may_decide(user, plan)
    )
