"""Read queries for costs, scoped to what the person may see.

Every page, API endpoint and export reads costs through these functions, so the rule
"a person without finance or admin role sees only their own business units" is written once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, DecimalField, F, Max, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from costs import budgets as budget_math
from costs.models import BillingImport, Budget, BudgetAlert, CostRow, TagSet
from governance.models import BusinessUnit, DeploymentFreeze, User
from governance.money import money_distribute, money_round
from governance.selectors import freezes_in_force, manages_costs, visible_unit_ids

UNALLOCATED = "UNALLOCATED"
BASES = {"billed": "billed_cost", "effective": "effective_cost", "list": "list_cost"}
ZERO = Decimal(0)


FIRST_YEAR, LAST_YEAR = 1970, 2199


def month_parse(value: str) -> dt.date:
    """``2026-10`` -> 2026-10-01; raises ValueError with a readable message.

    Years outside 1970-2199 are refused: no bill is dated there, and the months either side
    of year 1 or 9999 cannot be computed.
    """
    text = value.strip() if isinstance(value, str) else ""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}", text):
        raise ValueError(f"month {value!r} is not a month written YYYY-MM, e.g. 2026-10")
    try:
        parsed = dt.datetime.strptime(text, "%Y-%m")  # noqa: DTZ007 - a date, no time
    except ValueError as exc:
        raise ValueError(f"month {value!r} is not a month written YYYY-MM, e.g. 2026-10") from exc
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise ValueError(f"month {value!r} is outside {FIRST_YEAR}-{LAST_YEAR}")
    return parsed.date()


def basis_field(basis: str) -> str:
    try:
        return BASES[basis]
    except KeyError as exc:
        raise ValueError(f"basis {basis!r} is not one of {', '.join(BASES)}") from exc


def cost_row_list(*, user: User | None) -> QuerySet[CostRow]:
    """Cost rows the person may read; ``user=None`` is the organisation-wide system view."""
    rows = CostRow.objects.select_related("tag_set__business_unit")
    visible = visible_unit_ids(user)
    return rows if visible is None else rows.filter(tag_set__business_unit__in=visible)


def sees_unallocated(user: User | None) -> bool:
    return visible_unit_ids(user) is None


@dataclass
class ChargebackLine:
    """One business unit's share of a month in one currency, rounded to the minor unit."""

    code: str
    name: str
    amount: Decimal
    by_service: dict[str, Decimal] = field(default_factory=dict)
    by_charge_category: dict[str, Decimal] = field(default_factory=dict)
    business_unit_id: int | None = None


@dataclass
class CurrencyChargeback:
    currency: str
    total: Decimal
    lines: list[ChargebackLine]
    invoice_total: Decimal | None = None

    @property
    def reconciles(self) -> bool:
        return sum((line.amount for line in self.lines), ZERO) == self.total

    @property
    def unallocated(self) -> Decimal:
        return next((line.amount for line in self.lines if line.code == UNALLOCATED), ZERO)

    @property
    def unallocated_percent(self) -> Decimal:
        if not self.total:
            return ZERO
        return (self.unallocated / self.total * 100).quantize(Decimal("0.1"))


@dataclass
class Chargeback:
    month: dt.date
    basis: str
    currencies: dict[str, CurrencyChargeback]
    complete: bool = True

    def as_dict(self) -> dict:
        """The stable JSON shape integrations read (amounts as decimal strings)."""
        return {
            "month": self.month.strftime("%Y-%m"),
            "basis": self.basis,
            "complete": self.complete,
            "currencies": {
                code: {
                    "total": str(cur.total),
                    "business_units": {line.code: str(line.amount) for line in cur.lines},
                    "detail": {
                        line.code: {
                            "name": line.name,
                            "by_charge_category": {
                                k: str(v) for k, v in line.by_charge_category.items()
                            },
                            "by_service": {k: str(v) for k, v in line.by_service.items()},
                        }
                        for line in cur.lines
                    },
                }
                for code, cur in self.currencies.items()
            },
        }


def chargeback_get(*, user: User | None, month: dt.date, basis: str = "billed") -> Chargeback:
    """The month's cost per business unit and currency, reconciled to the cent.

    Rounding is done over the whole organisation (every BU plus Unallocated) so each BU's
    amount is the same number whoever looks; a scoped person then sees only their lines.
    """
    amount_field = basis_field(basis)
    # Group by tag set, not by business unit: no join over the month's rows, and the few
    # hundred tag sets map to their unit in memory.
    grouped = (
        CostRow.objects.filter(billing_period=month)
        .values("currency", "tag_set_id", "service_name", "charge_category")
        .annotate(amount=Sum(amount_field))
        .order_by()
    )
    unit_of = dict(TagSet.objects.values_list("pk", "business_unit_id"))
    exact: dict[str, dict[int | None, dict[tuple[str, str], Decimal]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for row in grouped:
        bucket = exact[row["currency"]][unit_of.get(row["tag_set_id"])]
        key = (row["service_name"], row["charge_category"])
        bucket[key] = bucket.get(key, ZERO) + (row["amount"] or ZERO)

    units = {bu.pk: bu for bu in BusinessUnit.objects.all()}
    visible = visible_unit_ids(user)
    currencies: dict[str, CurrencyChargeback] = {}
    for currency in sorted(exact):
        per_unit = exact[currency]
        unit_totals = money_distribute(
            {bu: sum(parts.values(), ZERO) for bu, parts in per_unit.items()}, currency
        )
        lines = []
        for bu_id, parts in per_unit.items():
            if visible is not None and bu_id not in visible:
                continue
            services: dict[str, Decimal] = defaultdict(lambda: ZERO)
            categories: dict[str, Decimal] = defaultdict(lambda: ZERO)
            for (service, category), amount in parts.items():
                services[service or "(no service)"] += amount
                categories[category] += amount
            line = ChargebackLine(
                code=units[bu_id].code if bu_id else UNALLOCATED,
                name=units[bu_id].name if bu_id else "Unallocated",
                business_unit_id=bu_id,
                amount=unit_totals[bu_id],
                by_service=_largest_first(
                    money_distribute(services, currency, total=unit_totals[bu_id])
                ),
                by_charge_category=_largest_first(
                    money_distribute(categories, currency, total=unit_totals[bu_id])
                ),
            )
            lines.append(line)
        if not lines:
            continue  # nothing of this currency is visible to a scoped person
        lines.sort(key=lambda line: (line.code == UNALLOCATED, -line.amount, line.code))
        total = (
            money_round(sum((sum(p.values(), ZERO) for p in per_unit.values()), ZERO), currency)
            if visible is None
            else sum((line.amount for line in lines), ZERO)
        )
        currencies[currency] = CurrencyChargeback(currency=currency, total=total, lines=lines)
    return Chargeback(month=month, basis=basis, currencies=currencies, complete=visible is None)


def _largest_first(amounts: dict[str, Decimal]) -> dict[str, Decimal]:
    return dict(sorted(amounts.items(), key=lambda kv: -abs(kv[1])))


def chargeback_months(*, user: User | None) -> list[dt.date]:
    """Billing periods that hold costs, newest first."""
    return list(
        cost_row_list(user=user)
        .order_by("-billing_period")
        .values_list("billing_period", flat=True)
        .distinct()
    )


def chargeback_daily(
    *, user: User | None, month: dt.date, basis: str = "billed"
) -> dict[str, dict[str, dict[dt.date, Decimal]]]:
    """currency -> business-unit code -> usage day -> exact amount, for the daily chart."""
    rows = cost_row_list(user=user).filter(billing_period=month)
    return _series_by_unit(rows, "usage_date", basis)


def monthly_by_unit(
    *, user: User | None, months: list[dt.date], basis: str = "billed"
) -> dict[str, dict[str, dict[dt.date, Decimal]]]:
    """currency -> business-unit code -> billing month -> exact amount (dashboard trend)."""
    rows = cost_row_list(user=user).filter(billing_period__in=months)
    return _series_by_unit(rows, "billing_period", basis)


def _series_by_unit(
    rows: QuerySet[CostRow], date_field: str, basis: str
) -> dict[str, dict[str, dict[dt.date, Decimal]]]:
    grouped = (
        rows.values("currency", "tag_set__business_unit__code", date_field)
        .annotate(amount=Sum(basis_field(basis)))
        .order_by(date_field)
    )
    out: dict[str, dict[str, dict[dt.date, Decimal]]] = defaultdict(lambda: defaultdict(dict))
    for row in grouped:
        code = row["tag_set__business_unit__code"] or UNALLOCATED
        out[row["currency"]][code][row[date_field]] = row["amount"] or ZERO
    return out


def chargeback_resources(
    *,
    user: User | None,
    month: dt.date,
    basis: str,
    business_unit: BusinessUnit | None,
    service: str,
    limit: int = 200,
) -> list[dict]:
    """Resources behind one business unit's service line, largest first."""
    rows = cost_row_list(user=user).filter(billing_period=month)
    rows = (
        rows.filter(tag_set__business_unit=business_unit)
        if business_unit
        else rows.filter(tag_set__business_unit__isnull=True)
    )
    rows = rows.filter(service_name="" if service == "(no service)" else service)
    return list(
        rows.values("currency", "resource_id", "sub_account_id", "region")
        .annotate(amount=Sum(basis_field(basis)), days=Count("usage_date", distinct=True))
        .order_by("-amount")[:limit]
    )


GROUPINGS = {
    "business_unit": "tag_set__business_unit__code",
    "service": "service_name",
    "service_category": "service_category",
    "account": "sub_account_id",
    "billing_account": "billing_account_id",
    "provider": "provider",
    "region": "region",
    "charge_category": "charge_category",
    "usage_date": "usage_date",
    "billing_period": "billing_period",
    "resource": "resource_id",
    "sku": "sku_id",
}


def cost_summary(*, rows: QuerySet[CostRow], group_by: str, basis: str = "billed") -> QuerySet:
    """Filtered cost rows grouped by one dimension and currency, largest first."""
    column = GROUPINGS[group_by]
    amount = basis_field(basis)
    ordering = ["key"] if group_by in {"usage_date", "billing_period"} else ["-amount"]
    key = Coalesce(F(column), Value(UNALLOCATED)) if group_by == "business_unit" else F(column)
    return (
        rows.values("currency", key=key)
        .annotate(
            amount=Coalesce(Sum(amount), Value(ZERO), output_field=DecimalField()),
            rows=Count("pk"),
        )
        .order_by(*ordering, "currency", "key")
    )


def cost_totals(*, rows: QuerySet[CostRow], basis: str = "billed") -> list[dict]:
    """Total of the filtered rows per currency (the explorer's footer)."""
    return list(
        rows.order_by()
        .values("currency")
        .annotate(amount=Sum(basis_field(basis)), rows=Count("pk"))
        .order_by("currency")
    )


def billing_import_list(*, user: User | None) -> QuerySet[BillingImport]:
    imports = BillingImport.objects.select_related("created_by")
    if manages_costs(user):
        return imports
    return imports.none()


def unallocated_by_tag(*, month: dt.date | None, basis: str = "billed") -> list[dict]:
    """What carries Unallocated: each tag set with its tags and amount, largest first."""
    rows = CostRow.objects.filter(tag_set__business_unit__isnull=True)
    if month:
        rows = rows.filter(billing_period=month)
    grouped = (
        rows.values("tag_set", "currency")
        .annotate(amount=Sum(basis_field(basis)), rows=Count("pk"))
        .order_by("-amount")
    )
    grouped = list(grouped[:500])
    tag_sets = TagSet.objects.in_bulk([g["tag_set"] for g in grouped])
    services = defaultdict(set)
    for tag_set_id, service in (
        rows.filter(tag_set__in=list(tag_sets))
        .values_list("tag_set", "service_name")
        .distinct()[:5000]
    ):
        services[tag_set_id].add(service)
    for group in grouped:
        tag_set = tag_sets[group["tag_set"]]
        group["tags"] = tag_set.tags
        group["services"] = sorted(s for s in services[tag_set.pk] if s)[:5]
    return grouped


def unallocated_by_key(*, month: dt.date | None, basis: str = "billed") -> list[dict]:
    """Unallocated grouped by each tag key=value it carries (a row with two tags counts twice)."""
    out: dict[tuple[str, str, str], dict] = {}
    for group in unallocated_by_tag(month=month, basis=basis):
        pairs = list(group["tags"].items()) or [("(untagged)", "")]
        for key, value in pairs:
            slot = out.setdefault(
                (key, value, group["currency"]),
                {
                    "key": key,
                    "value": value,
                    "currency": group["currency"],
                    "amount": ZERO,
                    "rows": 0,
                    "services": set(),
                },
            )
            slot["amount"] += group["amount"] or ZERO
            slot["rows"] += group["rows"]
            slot["services"].update(group["services"])
    items = sorted(out.values(), key=lambda s: -s["amount"])
    for item in items:
        item["services"] = sorted(item["services"])[:5]
    return items


# --- Budgets ----------------------------------------------------------------------------------


def budget_list(*, user: User | None) -> QuerySet[Budget]:
    """Budgets of the business units the person may see, by unit then name."""
    budgets = Budget.objects.select_related("business_unit__owner").order_by(
        "business_unit__code", "name", "pk"
    )
    visible = visible_unit_ids(user)
    return budgets if visible is None else budgets.filter(business_unit__in=visible)


def budget_active_list(*, month: dt.date) -> QuerySet[Budget]:
    """Every budget whose months include ``month`` (the system view, for evaluation)."""
    return (
        Budget.objects.select_related("business_unit__owner")
        .filter(Q(first_month__isnull=True) | Q(first_month__lte=month))
        .filter(Q(last_month__isnull=True) | Q(last_month__gte=month))
        .order_by("pk")
    )


def budget_manageable_units(*, user: User) -> QuerySet[BusinessUnit]:
    """Units the person may set budgets for: all for finance and platform admins, else none
    (an owner reads their unit's budget; finance sets it)."""
    units = BusinessUnit.objects.order_by("code")
    return units if manages_costs(user) else units.none()


def budget_may_edit(*, user: User | None) -> bool:
    """Finance and platform admins set budgets (see ``services.budget_save``)."""
    return manages_costs(user)


@dataclass(frozen=True)
class BudgetSpend:
    """A budget's spend in a month and the last day its currency has data for."""

    spend: Decimal
    data_until: dt.date | None


def budget_spend(*, budgets: Sequence[Budget], month: dt.date) -> dict[int, BudgetSpend]:
    """Spend of each budget in the billing month, on its basis, in its currency only.

    One grouped query over the month's cost rows however many budgets (both bases summed at
    once), plus one over tag sets, which map to their unit and project tag in memory. The last
    day with data is taken per currency, across all units, so a unit that spent nothing
    yesterday does not look as if its data stopped.
    """
    if not budgets:
        return {}
    grouped = (
        CostRow.objects.filter(billing_period=month, currency__in={b.currency for b in budgets})
        .values("currency", "tag_set_id")
        .annotate(
            billed=Sum("billed_cost"), effective=Sum("effective_cost"), last_day=Max("usage_date")
        )
        .order_by()
    )
    needs_tags = any(b.tag_key for b in budgets)
    fields = ("pk", "business_unit_id", "tags") if needs_tags else ("pk", "business_unit_id")
    tag_sets = {
        row[0]: row
        for row in TagSet.objects.filter(
            business_unit__in={b.business_unit_id for b in budgets}
        ).values_list(*fields)
    }
    by_unit: dict[tuple[str, int], list[tuple[int, Decimal, Decimal]]] = defaultdict(list)
    data_until: dict[str, dt.date] = {}
    for row in grouped:
        currency = row["currency"]
        if row["last_day"] and (
            currency not in data_until or row["last_day"] > data_until[currency]
        ):
            data_until[currency] = row["last_day"]
        tag_set = tag_sets.get(row["tag_set_id"])
        if tag_set is not None:
            by_unit[(currency, tag_set[1])].append(
                (tag_set[0], row["billed"] or ZERO, row["effective"] or ZERO)
            )
    out = {}
    for budget in budgets:
        total = ZERO
        for tag_set_id, billed, effective in by_unit.get(
            (budget.currency, budget.business_unit_id), ()
        ):
            if budget.tag_key and not budget_math.tag_matches(
                tag_sets[tag_set_id][2], key=budget.tag_key, value=budget.tag_value
            ):
                continue
            total += billed if budget.basis == "billed" else effective
        out[budget.pk] = BudgetSpend(spend=total, data_until=data_until.get(budget.currency))
    return out


def budget_standing(*, budget: Budget, month: dt.date, spend: BudgetSpend) -> budget_math.Standing:
    return budget_math.standing(
        month=month,
        amount=budget.amount,
        currency=budget.currency,
        spend=spend.spend,
        data_until=spend.data_until,
        thresholds=budget.thresholds,
        forecast_thresholds=budget.forecast_thresholds,
        freeze_at=budget.freeze_at_percent,
    )


@dataclass
class BudgetStatus:
    """One budget in one month, as the list, the detail page and the API show it."""

    budget: Budget
    month: dt.date
    standing: budget_math.Standing | None  # None: the budget does not cover this month
    freeze: DeploymentFreeze | None  # the freeze in force on the unit, whatever started it
    alerts: list[BudgetAlert] = field(default_factory=list)  # this month's

    @property
    def active(self) -> bool:
        return self.standing is not None

    @property
    def status(self) -> str:
        """inactive, frozen (the unit may not deploy), alert (a threshold reached) or ok."""
        if self.standing is None:
            return "inactive"
        if self.freeze is not None:
            return "frozen"
        if self.alerts or self.standing.crossings:
            return "alert"
        return "ok"


def budget_statuses(*, budgets: Sequence[Budget], month: dt.date) -> list[BudgetStatus]:
    """The status of each budget in the month in four queries, however many budgets."""
    budgets = list(budgets)
    active = [b for b in budgets if b.is_active_in(month)]
    spend = budget_spend(budgets=active, month=month)
    freezes = freezes_in_force(business_unit_ids={b.business_unit_id for b in budgets})
    alerts: dict[int, list[BudgetAlert]] = defaultdict(list)
    for alert in BudgetAlert.objects.filter(budget__in=budgets, month=month):
        alerts[alert.budget_id].append(alert)
    return [
        BudgetStatus(
            budget=b,
            month=month,
            standing=budget_standing(budget=b, month=month, spend=spend[b.pk])
            if b.pk in spend
            else None,
            freeze=freezes.get(b.business_unit_id),
            alerts=alerts.get(b.pk, []),
        )
        for b in budgets
    ]


def budget_daily(*, budget: Budget, month: dt.date) -> dict[dt.date, Decimal]:
    """The budget's spend per usage day of the billing month (its basis and currency)."""
    tag_sets = TagSet.objects.filter(business_unit_id=budget.business_unit_id)
    if budget.tag_key:
        ids = [
            pk
            for pk, tags in tag_sets.values_list("pk", "tags")
            if budget_math.tag_matches(tags, key=budget.tag_key, value=budget.tag_value)
        ]
    else:
        ids = list(tag_sets.values_list("pk", flat=True))
    rows = (
        CostRow.objects.filter(billing_period=month, currency=budget.currency, tag_set_id__in=ids)
        .values("usage_date")
        .annotate(amount=Sum(basis_field(budget.basis)))
        .order_by("usage_date")
    )
    return {row["usage_date"]: row["amount"] or ZERO for row in rows}


def budget_alert_list(*, budget: Budget) -> QuerySet[BudgetAlert]:
    """Every threshold the budget reached, newest month first, with the freezes they started."""
    return budget.alerts.select_related("freeze__lifted_by", "freeze__created_by")
