"""Chargeback statements: computing a month, publishing and closing it, reconciling it.

The arithmetic is :mod:`costs.statements` (pure); this module gathers its inputs from the
database — the month's cost rows on the policy's basis, the shared pools, SLO measurements
and penalty bands, quotas and pool usage, and what closed months need adjusting — and keeps
the lifecycle: a draft month is computed live, so a rule fixed from the Unallocated page
shows at once; publishing stores the statements and mails each unit's owner; closing makes
them final. Reads for pages, the API and exports go through :func:`statements_get` so the
rule "a business unit's people see only their own published statements" is written once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Case, Count, Q, Sum, Value, When
from django.db.models.functions import Lower
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from costs import penalties
from costs import statements as engine
from costs.models import (
    AllocationPolicy,
    AllocationRule,
    CapacityQuota,
    ChargebackPeriod,
    ChargeCategory,
    CostRow,
    PeriodStatus,
    QuotaSource,
    SlaPenaltyPolicy,
    Statement,
    StatementLine,
    TagSet,
)
from costs.selectors import basis_field, cost_month_totals
from governance.celery import enqueue
from governance.emails import absolute_url, subject_clean
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import BusinessUnit, SloMeasurement, User
from governance.money import money_format, money_round
from governance.selectors import manages_costs, visible_unit_ids
from registry.models import Endpoint, PoolUsage

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
CREDIT_CATEGORIES = (ChargeCategory.CREDIT, ChargeCategory.ADJUSTMENT)


def month_next(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def month_previous(month: dt.date) -> dt.date:
    return (month - dt.timedelta(days=1)).replace(day=1)


# --- Reading ----------------------------------------------------------------------------------


@dataclass
class StatementSet:
    """A month's statements as one person may see them (all of them for finance)."""

    month: dt.date
    basis: str
    status: str
    currencies: dict[str, engine.CurrencyStatements]
    complete: bool = True
    period: ChargebackPeriod | None = None
    warnings: list[str] = field(default_factory=list)
    error: str = ""  # the policy cannot be applied; nothing is shown until it is fixed
    # Unallocated's adjustments per currency and adjusted month, kept with the stored totals.
    unallocated_adjustments: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def is_draft(self) -> bool:
        return self.status == PeriodStatus.DRAFT

    def statement(self, code: str, currency: str | None = None) -> engine.UnitStatement | None:
        for cur, result in self.currencies.items():
            if currency and cur != currency:
                continue
            for statement in result.statements:
                if statement.unit.code == code:
                    return statement
        return None

    def as_dict(self) -> dict:
        return {
            "month": f"{self.month:%Y-%m}",
            "basis": self.basis,
            "status": self.status,
            "complete": self.complete,
            "warnings": self.warnings if self.complete else [],
            "currencies": {
                currency: {
                    **(
                        {
                            "month_total": str(result.month_total),
                            "unallocated": str(result.unallocated),
                            "unallocated_adjustment": str(result.unallocated_adjustment),
                            "reconciles": result.reconciles,
                        }
                        if self.complete
                        else {}
                    ),
                    "statements": [s.as_dict() for s in result.statements],
                }
                for currency, result in self.currencies.items()
            },
        }


def period_of(month: dt.date) -> ChargebackPeriod | None:
    return ChargebackPeriod.objects.filter(month=month).first()


def policy_for(month: dt.date) -> AllocationPolicy | None:
    """The allocation policy in force in ``month``: the newest that starts on or before it."""
    return (
        AllocationPolicy.objects.filter(first_month__lte=month)
        .prefetch_related("pools__recipients", "pools__shares")
        .order_by("-first_month")
        .first()
    )


def statements_get(*, user: User | None, month: dt.date) -> StatementSet:
    """The month's statements for ``user``: finance and platform admins see every unit and
    drafts; anyone else sees only their units' statements once published."""
    period = period_of(month)
    status = period.status if period else PeriodStatus.DRAFT
    visible = visible_unit_ids(user)
    if status == PeriodStatus.DRAFT:
        if not manages_costs(user):
            basis = period.basis if period and period.basis else "billed"
            return StatementSet(
                month=month, basis=basis, status=status, currencies={}, complete=False
            )
        result = statements_compute(month)
        result.period = period
        return result
    result = _stored(period)
    if visible is not None:
        result.complete = False
        result.warnings = []  # they name other units' SLOs, pools and quotas
        for cur in list(result.currencies):
            kept = [s for s in result.currencies[cur].statements if s.unit.id in visible]
            if kept:
                result.currencies[cur].statements = kept
            else:
                del result.currencies[cur]
    return result


def _stored(period: ChargebackPeriod) -> StatementSet:
    """A published or closed month, as it was stored."""
    statements = list(
        Statement.objects.filter(period=period)
        .select_related("business_unit")
        .prefetch_related("lines")
        .order_by("currency", "business_unit__code")
    )
    by_currency: dict[str, list[engine.UnitStatement]] = defaultdict(list)
    for row in statements:
        unit = engine.Unit(
            row.business_unit_id,
            row.unit_code or row.business_unit.code,
            row.unit_name or row.business_unit.name,
        )
        by_currency[row.currency].append(
            engine.UnitStatement(
                unit=unit,
                currency=row.currency,
                lines=[
                    engine.Line(
                        line.kind,
                        line.label,
                        money_round(line.amount, row.currency),
                        line.explanation,
                        line.detail,
                    )
                    for line in row.lines.all()
                ],
            )
        )
    currencies = {}
    for currency in sorted(set(by_currency) | set(period.totals)):
        totals = period.totals.get(currency, {})
        currencies[currency] = engine.CurrencyStatements(
            currency=currency,
            month_total=Decimal(totals.get("month_total", "0")),
            unallocated=Decimal(totals.get("unallocated", "0")),
            unallocated_adjustment=Decimal(totals.get("unallocated_adjustment", "0")),
            statements=by_currency.get(currency, []),
        )
    return StatementSet(
        month=period.month,
        basis=period.basis,
        status=period.status,
        currencies=currencies,
        period=period,
        warnings=list(period.warnings),
    )


# --- Computing --------------------------------------------------------------------------------


def statements_compute(month: dt.date, *, with_adjustments: bool = True) -> StatementSet:
    """Compute the month from the current data (the system view: every unit)."""
    policy = policy_for(month)
    basis = policy.basis if policy else "billed"
    units = {u.pk: engine.Unit(u.pk, u.code, u.name) for u in BusinessUnit.objects.all()}
    direct = _direct_costs(month, basis)
    pools = _pools(policy)
    warnings: list[str] = []
    penalty_specs = _penalties(month, basis, warnings)
    surcharge_specs = _surcharges(month, warnings)
    currencies: dict[str, engine.CurrencyStatements] = {}
    status = period.status if (period := period_of(month)) else PeriodStatus.DRAFT
    try:
        adjustments, unallocated_by_month = _adjustments(month) if with_adjustments else ({}, {})
        names = set(direct) | set(penalty_specs) | set(surcharge_specs) | set(adjustments)
        for currency in sorted(names):
            currencies[currency] = engine.statements_build(
                currency=currency,
                units=units,
                direct=direct.get(currency, []),
                pools=pools,
                penalties=penalty_specs.get(currency, []),
                surcharges=surcharge_specs.get(currency, []),
                adjustments=adjustments.get(currency, []),
                basis=basis,
            )
    except engine.ChargebackError as exc:
        return StatementSet(month=month, basis=basis, status=status, currencies={}, error=str(exc))
    return StatementSet(
        month=month,
        basis=basis,
        status=status,
        currencies=currencies,
        warnings=warnings,
        unallocated_adjustments=unallocated_by_month,
    )


def _rule_text(rule: AllocationRule) -> str:
    values = ", ".join(rule.tag_values) or "any value"
    return f"rule #{rule.priority} {rule.tag_key} in [{values}]"


def _direct_costs(month: dt.date, basis: str) -> dict[str, list[engine.DirectCost]]:
    """Exact cost per currency, unit, service and credit-or-not, with the rules behind it.

    Credits and refunds that carry no unit of their own follow the usage of the resource they
    correct (in proportion, when several units used it that month).
    """
    amount_field = basis_field(basis)
    tag_sets = {
        pk: (unit, rule)
        for pk, unit, rule in TagSet.objects.values_list("pk", "business_unit_id", "rule_id")
    }
    rules = {rule.pk: _rule_text(rule) for rule in AllocationRule.objects.all()}
    grouped = (
        CostRow.objects.filter(billing_period=month)
        .values("currency", "tag_set_id", "service_name", "charge_category")
        .annotate(amount=Sum(amount_field), rows=Count("pk"))
        .order_by()
    )
    parts: dict[tuple[str, int | None, str, bool], list] = {}

    def add(currency, unit, service, is_credit, amount, rule, rows):
        slot = parts.setdefault((currency, unit, service, is_credit), [ZERO, set(), 0])
        slot[0] += amount
        if rule:
            slot[1].add(rule)
        slot[2] += rows

    for row in grouped:
        unit, rule_id = tag_sets.get(row["tag_set_id"], (None, None))
        is_credit = row["charge_category"] in CREDIT_CATEGORIES
        if unit is None and is_credit:
            continue  # placed below: it may follow its resource's usage
        add(
            row["currency"],
            unit,
            row["service_name"],
            is_credit,
            row["amount"] or ZERO,
            rules.get(rule_id) if unit else None,
            row["rows"],
        )
    for currency, unit, service, amount, how, rows in _credits_placed(
        month, amount_field, tag_sets
    ):
        add(currency, unit, service, True, amount, how, rows)

    out: dict[str, list[engine.DirectCost]] = defaultdict(list)
    for (currency, unit, service, is_credit), (amount, how, rows) in parts.items():
        out[currency].append(
            engine.DirectCost(
                unit, service, amount, credit=is_credit, rules=tuple(sorted(how)), rows=rows
            )
        )
    return out


def _credits_placed(month: dt.date, amount_field: str, tag_sets: dict):
    """Unallocated credits: (currency, unit or None, service, amount, how, rows) each.

    A credit on a resource goes to the units whose usage of that resource it corrects, in
    proportion to that usage; one on no resource, or on a resource nobody's usage carries,
    stays Unallocated.
    """
    unallocated = [pk for pk, (unit, _) in tag_sets.items() if unit is None]
    credits = list(
        CostRow.objects.filter(
            billing_period=month, charge_category__in=CREDIT_CATEGORIES, tag_set_id__in=unallocated
        )
        .values("currency", "resource_id", "service_name")
        .annotate(amount=Sum(amount_field), rows=Count("pk"))
        .order_by()
    )
    resources = {c["resource_id"] for c in credits if c["resource_id"]}
    usage: dict[tuple[str, str], dict[int, Decimal]] = defaultdict(
        lambda: defaultdict(lambda: ZERO)
    )
    if resources:
        rows = (
            CostRow.objects.filter(
                billing_period=month,
                resource_id__in=list(resources),
                charge_category=ChargeCategory.USAGE,
            )
            .exclude(tag_set_id__in=unallocated)
            .values("currency", "resource_id", "tag_set_id")
            .annotate(amount=Sum(amount_field))
            .order_by()
        )
        for row in rows:
            unit = tag_sets.get(row["tag_set_id"], (None, None))[0]
            if unit is not None and (row["amount"] or ZERO) > 0:
                usage[(row["currency"], row["resource_id"])][unit] += row["amount"]
    for credit in credits:
        amount = credit["amount"] or ZERO
        users = (
            usage.get((credit["currency"], credit["resource_id"]))
            if credit["resource_id"]
            else None
        )
        if not users:
            yield credit["currency"], None, credit["service_name"], amount, None, credit["rows"]
            continue
        how = f"follows the usage of {credit['resource_id']}"
        weight = sum(users.values(), ZERO)
        placed = ZERO
        ordered = sorted(users.items(), key=lambda kv: -kv[1])
        for index, (unit, used) in enumerate(ordered):
            share = (
                amount - placed
                if index == len(ordered) - 1
                else (amount * used / weight).quantize(Decimal("1e-10"))
            )
            placed += share
            yield credit["currency"], unit, credit["service_name"], share, how, credit["rows"]


def _pools(policy: AllocationPolicy | None) -> list[engine.Pool]:
    if policy is None:
        return []
    return [
        engine.Pool(
            name=pool.name,
            source_unit_id=pool.source_unit_id,
            method=pool.method,
            recipient_ids=tuple(r.pk for r in pool.recipients.all()),
            shares={s.business_unit_id: s.percent for s in pool.shares.all()},
        )
        for pool in sorted(policy.pools.all(), key=lambda p: (p.source_unit_id is None, p.name))
    ]


def _penalties(month: dt.date, basis: str, warnings: list[str]) -> dict[str, list[engine.Penalty]]:
    """The month's SLA penalties per currency: one per SLO missed and consumer charged."""
    policies = list(
        SlaPenaltyPolicy.objects.filter(is_active=True).select_related("slo__provider", "consumer")
    )
    if not policies:
        return {}
    measured: dict[int, list[penalties.Measurement]] = defaultdict(list)
    for m in SloMeasurement.objects.filter(
        slo__in=[p.slo_id for p in policies], day__gte=month, day__lt=month_next(month)
    ).order_by("day"):
        measured[m.slo_id].append(penalties.Measurement(m.value, m.good, m.total))
    endpoints = {
        e.name: e for e in Endpoint.objects.filter(name__in=[p.slo.service for p in policies])
    }
    tag_units = dict(TagSet.objects.values_list("pk", "business_unit_id"))
    out: dict[str, list[engine.Penalty]] = defaultdict(list)
    for policy in policies:
        slo = policy.slo
        try:
            bands = penalties.bands_parse(policy.bands)
        except penalties.BandError as exc:
            warnings.append(f"SLO {slo.name}: {exc} No penalty was computed.")
            continue
        reached = penalties.attainment(
            indicator=slo.indicator, target=slo.target, measurements=measured.get(slo.pk, [])
        )
        if reached is None:
            warnings.append(f"SLO {slo.name} has no measurements in {month:%Y-%m}; no penalty.")
            continue
        band = penalties.band_for(reached.percent, bands)
        if band is None:
            continue
        if slo.provider_id is None:
            warnings.append(f"SLO {slo.name} was missed but names no provider team; no penalty.")
            continue
        endpoint = endpoints.get(slo.service)
        rows = CostRow.objects.filter(billing_period=month)
        if policy.charge_service:
            rows = rows.filter(service_name=policy.charge_service)
        if policy.charge_resource:
            rows = rows.filter(resource_id__icontains=policy.charge_resource)
        if not (policy.charge_service or policy.charge_resource):
            if endpoint is None:
                warnings.append(
                    f"SLO {slo.name}: no endpoint is named {slo.service!r} and the penalty "
                    "policy names no service or resource to charge; no penalty."
                )
                continue
            rows = rows.annotate(rid=Lower("resource_id")).filter(
                Q(rid=endpoint.resource_id.lower())
                | Q(rid__endswith=f"endpoint/{endpoint.name.lower()}")
            )
            label = f"endpoint {endpoint.name}"
        else:
            label = " / ".join(x for x in (policy.charge_service, policy.charge_resource) if x)
        consumer = policy.consumer_id or (endpoint.business_unit_id if endpoint else None)
        charges: dict[tuple[str, int], Decimal] = defaultdict(lambda: ZERO)
        for row in (
            rows.values("currency", "tag_set_id")
            .annotate(amount=Sum(basis_field(basis)))
            .order_by()
        ):
            unit = tag_units.get(row["tag_set_id"])
            if unit is not None and (consumer is None or unit == consumer):
                charges[(row["currency"], unit)] += row["amount"] or ZERO
        for (currency, unit), amount in sorted(charges.items()):
            charge = money_round(amount, currency)
            if charge <= 0:
                continue
            out[currency].append(
                engine.Penalty(
                    slo=slo.name,
                    consumer_id=unit,
                    provider_id=slo.provider_id,
                    charge=charge,
                    charge_label=label,
                    target=slo.target,
                    indicator=slo.indicator,
                    attainment=reached.describe(),
                    band=band,
                )
            )
    return out


def _surcharges(month: dt.date, warnings: list[str]) -> dict[str, list[engine.Surcharge]]:
    # One quota applies per unit and pool: an approved plan's quota for the month first,
    # else the newest by first month (a unit, pool and first month have one quota).
    quotas = list(
        CapacityQuota.objects.filter(first_month__lte=month)
        .filter(Q(last_month__isnull=True) | Q(last_month__gte=month))
        .select_related("pool", "business_unit")
        .order_by(
            "pool_id",
            "business_unit_id",
            Case(When(source=QuotaSource.PLAN, then=Value(0)), default=Value(1)),
            "-first_month",
        )
    )
    if not quotas:
        return {}
    used = {
        (row["pool_id"], row["business_unit_id"]): row["hours"] or ZERO
        for row in PoolUsage.objects.filter(day__gte=month, day__lt=month_next(month))
        .values("pool_id", "business_unit_id")
        .annotate(hours=Sum("gpu_hours"))
        .order_by()
    }
    out: dict[str, list[engine.Surcharge]] = defaultdict(list)
    seen = set()
    for quota in quotas:
        key = (quota.pool_id, quota.business_unit_id)
        if key in seen:
            continue  # the newest quota of the unit on the pool applies
        seen.add(key)
        hours = used.get(key, ZERO)
        if hours <= quota.gpu_hours:
            continue
        if quota.pool.owner_id is None:
            warnings.append(f"Pool {quota.pool} has no owner to receive overage surcharges.")
            continue
        out[quota.currency].append(
            engine.Surcharge(
                consumer_id=quota.business_unit_id,
                owner_id=quota.pool.owner_id,
                pool=quota.pool.name,
                reserved=quota.gpu_hours,
                used=hours,
                unit_price=quota.unit_price,
                multiplier=quota.multiplier,
            )
        )
    return out


def _adjustments(
    month: dt.date,
) -> tuple[dict[str, list[engine.Adjustment]], dict[str, dict[str, str]]]:
    """What changed in the closed months whose next open month is ``month``.

    For each such month: its figure now (recomputed) minus what was closed, minus what earlier
    adjustments already carried. Also returns Unallocated's share per currency and month, which
    the stored totals keep so later adjustments know what was carried.
    """
    closed = {
        p.month: p
        for p in ChargebackPeriod.objects.filter(month__lt=month, status=PeriodStatus.CLOSED)
    }
    months = []
    cursor = month_previous(month)
    while cursor in closed:
        months.append(cursor)
        cursor = month_previous(cursor)
    if not months:
        return {}, {}
    carried: dict[tuple[str, int | None, str], Decimal] = defaultdict(lambda: ZERO)
    for line in StatementLine.objects.filter(
        kind="adjustment",
        statement__period__month__gt=min(months),
        statement__period__month__lt=month,
    ).select_related("statement"):
        key = (line.statement.currency, line.statement.business_unit_id, line.detail.get("month"))
        carried[key] += line.amount
    for period in closed.values():
        if period.month <= min(months):
            continue
        for currency, totals in period.totals.items():
            for adjusted, amount in totals.get("unallocated_adjustments", {}).items():
                carried[(currency, None, adjusted)] += Decimal(amount)

    out: dict[str, list[engine.Adjustment]] = defaultdict(list)
    unallocated: dict[str, dict[str, str]] = defaultdict(dict)
    for adjusted in sorted(months):
        key_month = f"{adjusted:%Y-%m}"
        was: dict[tuple[str, int | None], Decimal] = defaultdict(lambda: ZERO)
        for row in Statement.objects.filter(period=closed[adjusted]).prefetch_related("lines"):
            was[(row.currency, row.business_unit_id)] = money_round(
                sum((line.amount for line in row.lines.all() if line.kind != "adjustment"), ZERO),
                row.currency,
            )
        for currency, totals in closed[adjusted].totals.items():
            was[(currency, None)] = Decimal(totals.get("unallocated", "0"))
        now: dict[tuple[str, int | None], Decimal] = defaultdict(lambda: ZERO)
        fresh = statements_compute(adjusted, with_adjustments=False)
        if fresh.error:
            # Without the closed month's figure now, every unit would look reversed.
            raise engine.ChargebackError(
                f"The closed month {adjusted:%Y-%m} can no longer be computed, so its "
                f"adjustments cannot be: {fresh.error}"
            )
        for currency, result in fresh.currencies.items():
            now[(currency, None)] = result.unallocated
            for statement in result.statements:
                now[(currency, statement.unit.id)] = statement.total
        for key in sorted(set(was) | set(now), key=lambda k: (k[0], k[1] is None, k[1] or 0)):
            currency, unit = key
            before = was[key] + carried[(currency, unit, key_month)]
            if now[key] == before:
                continue
            out[currency].append(engine.Adjustment(unit, adjusted, before, now[key]))
            if unit is None:
                unallocated[currency][key_month] = str(now[key] - before)
    return out, unallocated


# --- Lifecycle --------------------------------------------------------------------------------


def _require_finance(by: User | None, action: str) -> None:
    if not manages_costs(by):
        raise PermissionDeniedError(f"Only finance and platform admins may {action}.")


def _lock_period(month: dt.date) -> ChargebackPeriod:
    period, _ = ChargebackPeriod.objects.get_or_create(month=month)
    return ChargebackPeriod.objects.select_for_update().get(pk=period.pk)


@transaction.atomic
def period_publish(*, month: dt.date, by: User | None) -> ChargebackPeriod:
    """Store the month's statements as they are computed now and mail each unit's owner.

    Refused when the month is already published or closed, has nothing to charge, or the
    policy cannot be applied (the error says what to change).
    """
    _require_finance(by, "publish statements")
    period = _lock_period(month)
    if period.status != PeriodStatus.DRAFT:
        raise ConflictError(
            f"{month:%Y-%m} is already {period.status}; "
            + (
                "a closed month never changes — late data becomes adjustments next month."
                if period.status == PeriodStatus.CLOSED
                else "return it to draft first to publish it again."
            )
        )
    result = statements_compute(month)
    if result.error:
        raise DomainError(f"{month:%Y-%m} cannot be published: {result.error}")
    if not result.currencies:
        raise DomainError(f"{month:%Y-%m} has no costs to charge; import its bill first.")
    totals = {
        currency: {
            "month_total": str(r.month_total),
            "unallocated": str(r.unallocated),
            "unallocated_adjustment": str(r.unallocated_adjustment),
            "unallocated_adjustments": result.unallocated_adjustments.get(currency, {}),
            "statements_total": str(r.statements_total),
        }
        for currency, r in result.currencies.items()
    }
    policy = policy_for(month)
    pending = [
        (
            Statement(
                period=period,
                business_unit_id=unit_statement.unit.id,
                unit_code=unit_statement.unit.code,
                unit_name=unit_statement.unit.name,
                currency=currency,
                total=unit_statement.total,
            ),
            unit_statement,
        )
        for currency, r in result.currencies.items()
        for unit_statement in r.statements
    ]
    Statement.objects.bulk_create([statement for statement, _ in pending])
    lines = []
    for statement, unit_statement in pending:
        lines.extend(
            StatementLine(
                statement=statement,
                position=position,
                kind=line.kind,
                label=line.label[:300],
                amount=line.amount,
                explanation=line.explanation,
                detail=dict(line.detail),
            )
            for position, line in enumerate(unit_statement.lines, start=1)
        )
    StatementLine.objects.bulk_create(lines, batch_size=1000)
    period.status = PeriodStatus.PUBLISHED
    period.basis = result.basis
    period.policy = policy
    period.totals = totals
    period.warnings = result.warnings
    period.published_at = timezone.now()
    period.published_by = by
    period.save()
    transaction.on_commit(lambda: _notify_later(period.pk))
    logger.info("chargeback %s published by %s", f"{month:%Y-%m}", by)
    return period


def _notify_later(period_id: int) -> None:
    from costs.tasks import statements_notify_task

    enqueue(statements_notify_task, period_id)


@transaction.atomic
def period_unpublish(*, month: dt.date, by: User | None) -> ChargebackPeriod:
    """Take a published month back to draft (to correct it before closing)."""
    _require_finance(by, "return statements to draft")
    period = _lock_period(month)
    if period.status != PeriodStatus.PUBLISHED:
        raise ConflictError(
            f"Only a published month returns to draft; {month:%Y-%m} is {period.status}."
        )
    period.statements.all().delete()
    period.status = PeriodStatus.DRAFT
    period.totals = {}
    period.warnings = []
    period.published_at = None
    period.published_by = None
    period.save()
    return period


@transaction.atomic
def period_close(*, month: dt.date, by: User | None) -> ChargebackPeriod:
    """Make a published month final. From now on its statements never change."""
    _require_finance(by, "close a month")
    period = _lock_period(month)
    if period.status != PeriodStatus.PUBLISHED:
        raise ConflictError(
            f"{month:%Y-%m} is {period.status}; "
            + (
                "publish it before closing it."
                if period.status == PeriodStatus.DRAFT
                else "it is already closed."
            )
        )
    period.status = PeriodStatus.CLOSED
    period.closed_at = timezone.now()
    period.closed_by = by
    period.save()
    logger.info("chargeback %s closed by %s", f"{month:%Y-%m}", by)
    return period


def statement_url(month: dt.date, code: str) -> str:
    return reverse("costs:statement-detail", args=[f"{month:%Y-%m}", code])


def statements_notify(*, period_id: int) -> int:
    """E-mail each unit's owner a link to their published statement, once. Returns mails sent.

    Each unit is its own transaction: its statements are locked, mailed and marked, so a
    failure part-way (an SMTP error, retried by the task) never mails a unit twice.
    """
    units = (
        Statement.objects.filter(period_id=period_id, notified_at=None)
        .values_list("business_unit_id", flat=True)
        .distinct()
        .order_by("business_unit_id")
    )
    sent = 0
    for unit_id in list(units):
        with transaction.atomic():
            group = list(
                Statement.objects.filter(
                    period_id=period_id,
                    business_unit_id=unit_id,
                    notified_at=None,
                    period__status__in=[PeriodStatus.PUBLISHED, PeriodStatus.CLOSED],
                )
                .select_related("business_unit__owner", "period")
                .select_for_update(of=("self",))
                .order_by("currency")
            )
            if not group:
                continue  # another run mailed it, or the month went back to draft
            unit = group[0].business_unit
            owner = unit.owner
            if owner is None or not owner.email or not owner.is_active:
                logger.warning("statement of %s has no owner to e-mail", unit.code)
                continue
            _statement_message(group, owner).send()
            Statement.objects.filter(pk__in=[s.pk for s in group]).update(
                notified_at=timezone.now(), notified_to=[owner.email]
            )
            sent += 1
    return sent


def _statement_message(group: list[Statement], owner: User) -> EmailMultiAlternatives:
    unit = group[0].business_unit
    month = group[0].period.month
    context = {
        "unit": unit,
        "month": month,
        "owner": owner,
        "statements": [
            {"currency": s.currency, "total": money_format(s.total, s.currency)} for s in group
        ],
        "url": absolute_url(statement_url(month, unit.code)),
    }
    message = EmailMultiAlternatives(
        subject=subject_clean(
            f"[Capgov] Your chargeback statement for {month:%B %Y} · {unit.name}"
        ),
        body=render_to_string("costs/email/statement_published.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[owner.email],
    )
    message.attach_alternative(
        render_to_string("costs/email/statement_published.html", context), "text/html"
    )
    return message


# --- Reconciliation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reconciliation:
    """One month and currency: what the bill says against what the statements charge."""

    month: dt.date
    currency: str
    status: str
    basis: str
    month_total: Decimal  # the month's cost on the basis, as charged
    bill_now: Decimal  # the same from the cost rows today (differs after late data)
    statements_total: Decimal
    unallocated: Decimal
    adjustments_in: Decimal  # carried into this month from closed ones

    @property
    def difference(self) -> Decimal:
        return self.statements_total + self.unallocated - self.month_total - self.adjustments_in

    @property
    def reconciles(self) -> bool:
        return self.difference == 0

    @property
    def late(self) -> Decimal:
        """What arrived (or changed) after the month was published."""
        return self.bill_now - self.month_total


def reconciliation(
    *, month: dt.date, user: User | None, result: StatementSet | None = None
) -> list[Reconciliation]:
    """Per currency: Σ statements + Unallocated against the month's total, to the cent.

    ``result`` is the month's complete statement set when the caller already has it.
    """
    _require_finance(user, "see the reconciliation")
    if result is None or not result.complete:
        result = statements_get(user=None, month=month)
    bill = {
        currency: money_round(total, currency)
        for currency, total in cost_month_totals(month=month, basis=result.basis).items()
    }
    return [
        Reconciliation(
            month=month,
            currency=currency,
            status=result.status,
            basis=result.basis,
            month_total=r.month_total,
            bill_now=bill.get(currency, ZERO),
            statements_total=r.statements_total,
            unallocated=r.unallocated + r.unallocated_adjustment,
            adjustments_in=r.adjustments,
        )
        for currency, r in result.currencies.items()
    ]
