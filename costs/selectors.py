"""Read queries for costs, scoped to what the person may see.

Every page, API endpoint and export reads costs through these functions, so the rule
"a person without finance or admin role sees only their own business units" is written once.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Count,
    DecimalField,
    F,
    Func,
    IntegerField,
    Max,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from costs import budgets as budget_math
from costs.models import (
    AllocationRule,
    BillingImport,
    Budget,
    BudgetAlert,
    CostRow,
    Forecast,
    ForecastPoint,
    ImportStatus,
    Measure,
    RetentionRun,
    SubjectKind,
    TagSet,
)
from governance.models import BusinessUnit, DeploymentFreeze, User
from governance.money import money_distribute, money_round
from governance.selectors import freezes_in_force, manages_costs, visible_unit_ids

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

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


class CostRowQuerySet(QuerySet):
    """Cost rows whose ``count()`` is cached like the month sums: a list page or API page
    counts its filtered rows on every view, which over millions of rows takes a second."""

    def count(self) -> int:
        if (
            self._result_cache is not None
            or self.query.is_empty()
            or settings.CAPGOV_COST_CACHE_SECONDS <= 0
        ):
            return super().count()
        return _cached(("count", str(self.query)), _Stamps.read().overall, super().count)


def cost_row_list(*, user: User | None) -> QuerySet[CostRow]:
    """Cost rows the person may read; ``user=None`` is the organisation-wide system view."""
    rows = CostRowQuerySet(CostRow).select_related("tag_set__business_unit")
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
    exact = _month_parts(month=month, amount_field=basis_field(basis))
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
    """Billing periods that hold costs (of the units the person sees), newest first."""
    visible = visible_unit_ids(user)
    if settings.CAPGOV_COST_CACHE_SECONDS <= 0:
        return _months_with_costs(None if visible is None else tuple(sorted(visible)))
    stamps = _Stamps.read()
    months = list(_cached(("months",), stamps.overall, lambda: _months_with_costs(None)))
    if visible is None:
        return months
    # The months' sums by unit are cached for everyone: which units a month has is in them.
    parts = _month_parts_many(months=months, amount_field="billed_cost", stamps=stamps)
    return [m for m in months if any(visible & set(units) for units in parts[m].values())]


def _months_with_costs(units: tuple[int, ...] | None) -> list[dt.date]:
    rows = CostRow.objects.all()
    if units is not None:
        rows = rows.filter(tag_set__business_unit__in=units)
    return list(
        rows.order_by("-billing_period").values_list("billing_period", flat=True).distinct()
    )


def chargeback_daily(
    *, user: User | None, month: dt.date, basis: str = "billed"
) -> dict[str, dict[str, dict[dt.date, Decimal]]]:
    """currency -> business-unit code -> usage day -> exact amount, for the daily chart."""
    amount_field = basis_field(basis)
    daily = _cached(
        ("daily", month, amount_field),
        _Stamps.read().month(month),
        lambda: _month_units_by(month, amount_field, "usage_date"),
    )
    return _by_code(user, {month: daily})


def monthly_by_unit(
    *, user: User | None, months: list[dt.date], basis: str = "billed"
) -> dict[str, dict[str, dict[dt.date, Decimal]]]:
    """currency -> business-unit code -> billing month -> exact amount (dashboard trend)."""
    parts = _month_parts_many(months=months, amount_field=basis_field(basis))
    return _by_code(
        user,
        {
            month: {
                currency: {unit: {month: sum(p.values(), ZERO)} for unit, p in units.items()}
                for currency, units in by_currency.items()
            }
            for month, by_currency in parts.items()
        },
    )


def _by_code(
    user: User | None, series: dict[dt.date, dict[str, dict[int | None, dict[dt.date, Decimal]]]]
) -> dict[str, dict[str, dict[dt.date, Decimal]]]:
    """Unit ids to codes (Unallocated for none), only the units the person sees, in date order."""
    visible = visible_unit_ids(user)
    codes = dict(BusinessUnit.objects.values_list("pk", "code"))
    out: dict[str, dict[str, dict[dt.date, Decimal]]] = defaultdict(lambda: defaultdict(dict))
    for _, by_currency in sorted(series.items()):
        for currency, units in sorted(by_currency.items()):
            for unit_id, points in units.items():
                if visible is not None and unit_id not in visible:
                    continue
                code = codes.get(unit_id, UNALLOCATED) if unit_id else UNALLOCATED
                for day, amount in sorted(points.items()):
                    out[currency][code][day] = out[currency][code].get(day, ZERO) + amount
    return out


# --- Month aggregates, cached -----------------------------------------------------------------
#
# A month of a large organisation is close to a million cost rows, and adding them up takes a
# second or more: the dashboard (twelve months of trend), the chargeback page and the budgets
# would do it on every view. A month's sums change only when its stored costs or their
# attribution do, so they are cached under a stamp of exactly that (``_Stamps``): the imports
# that stored rows of the month (a new, replacing or deleted import changes it), and what
# attributes every month (allocation rules, tag sets, retention runs). An import of November
# leaves October's sums cached. Amounts are kept per business unit, not per cost row or tag
# set, so a cached month is a few hundred numbers. ``CAPGOV_COST_CACHE_SECONDS`` = 0 (the
# default outside production) reads live.


# Inside ``stamps_read_once`` (a page or API read): the stamps read once, not once per sum.
_STAMPS_MEMO: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "cost_stamps_memo", default=None
)


@contextlib.contextmanager
def stamps_read_once() -> Iterator[None]:
    """Read the cost stamps once for everything inside: for requests that only read (GET,
    HEAD), which ask for several cached sums of the same costs. Never around a write: sums
    read after it would be looked up under the stamps from before it."""
    token = _STAMPS_MEMO.set([])
    try:
        yield
    finally:
        _STAMPS_MEMO.reset(token)


@dataclass(frozen=True)
class _Stamps:
    """What a month's cached sums depend on, read in two small queries."""

    shared: str
    months: dict[str, str]

    @classmethod
    def read(cls) -> _Stamps:
        if settings.CAPGOV_COST_CACHE_SECONDS <= 0:
            return cls(shared="", months={})
        memo = _STAMPS_MEMO.get()
        if memo is None:
            return cls._read()
        if not memo:
            memo.append(cls._read())
        return memo[0]

    @classmethod
    def _read(cls) -> _Stamps:
        # Each import that stored rows of a month, when it finished, and how many notes it
        # carries: deleting the import that replaced its rows, or compacting them, adds one
        # (else deleting the newest import would bring back a stamp whose sums are gone).
        length = "jsonb_array_length" if connection.vendor == "postgresql" else "json_array_length"
        imports = (
            BillingImport.objects.filter(status=ImportStatus.SUCCEEDED)
            .annotate(notes=Func("warnings", function=length, output_field=IntegerField()))
            .order_by()
            .values_list("pk", "finished_at", "notes", "billing_periods")
        )
        per_month: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
        for pk, finished, notes, periods in imports:
            for period in periods or ():
                per_month[str(period)[:7]].append((pk, str(finished), notes))
        tables = [m._meta.db_table for m in (AllocationRule, TagSet, RetentionRun)]
        sql = (  # noqa: S608 - model table names only
            "SELECT (SELECT COUNT(*) FROM {0}), (SELECT MAX(updated_at) FROM {0}),"
            " (SELECT COUNT(*) FROM {1}), (SELECT MAX(id) FROM {1}),"
            " (SELECT COUNT(*) FROM {2}), (SELECT MAX(id) FROM {2})"
        ).format(*tables)
        with connection.cursor() as cursor:
            cursor.execute(sql)
            shared = cursor.fetchone()
        return cls(
            shared=_digest(shared),
            months={m: _digest(sorted(v)) for m, v in per_month.items()},
        )

    def month(self, month: dt.date) -> str:
        return f"{self.shared}.{self.months.get(f'{month:%Y-%m}', '-')}"

    @property
    def overall(self) -> str:
        return f"{self.shared}.{_digest(sorted(self.months.items()))}"


def _digest(value: object) -> str:
    return hashlib.blake2b(repr(value).encode(), digest_size=10).hexdigest()


def _cache_key(name: tuple, stamp: str) -> str:
    return f"costs:{_digest(name)}:{stamp}"


# Set while the cache is warmed: entries found are kept another full lifetime, so those that
# are read stay cached and only a change of the costs (a new stamp) makes anyone wait.
_KEEPING: contextvars.ContextVar[bool] = contextvars.ContextVar("cost_cache_keeping", default=False)


def _keep(keys: Sequence[str], seconds: int) -> None:
    if not _KEEPING.get():
        return
    try:
        for key in keys:
            cache.touch(key, seconds)
    except Exception as exc:  # any backend's connection error: the entries just expire
        logger.warning("cost cache unavailable, not kept: %s", exc)


def _cached(name: tuple, stamp: str, compute: Callable[[], _T]) -> _T:
    """``compute()``, kept in the cache under ``stamp``; a cache that cannot be reached (a
    stopped Redis) costs speed, never the page."""
    seconds = settings.CAPGOV_COST_CACHE_SECONDS
    if seconds <= 0:
        return compute()
    key = _cache_key(name, stamp)
    try:
        found = cache.get(key)
    except Exception as exc:  # any backend's connection error
        logger.warning("cost cache unavailable, reading live: %s", exc)
        return compute()
    if found is not None:
        _keep([key], seconds)
        return found
    value = compute()
    try:
        cache.set(key, value, seconds)
    except Exception as exc:
        logger.warning("cost cache unavailable, not kept: %s", exc)
    return value


def cost_cache_warm(*, months: Sequence[dt.date] | None = None) -> int:
    """Compute and cache what the dashboard, the chargeback page and the statement pages read
    of these months (every month with costs when None): the month list, the billed sums by
    unit and day, budget spend and endpoint costs. What is cached already is kept another
    lifetime, so a schedule warming every third of it means nobody waits for a sum that did
    not change. Returns the months warmed (0 when nothing is cached)."""
    if settings.CAPGOV_COST_CACHE_SECONDS <= 0:
        return 0
    from costs.inference import endpoint_inference_list  # it reads these selectors

    token = _KEEPING.set(True)
    try:
        every = chargeback_months(user=None)
        months = every if months is None else months
        _month_parts_many(months=months, amount_field=BASES["billed"])
        for month in months:
            chargeback_daily(user=None, month=month)
            budgets = list(budget_active_list(month=month))
            if budgets:
                budget_spend(budgets=budgets, month=month)
            endpoint_inference_list(user=None, month=month)
    finally:
        _KEEPING.reset(token)
    return len(months)


def cost_month_totals(*, month: dt.date, basis: str = "billed") -> dict[str, Decimal]:
    """The month's exact total per currency (every unit and Unallocated), from the cached
    sums: what a reconciliation compares the statements with."""
    parts = _month_parts(month=month, amount_field=basis_field(basis))
    return {
        currency: sum((sum(p.values(), ZERO) for p in units.values()), ZERO)
        for currency, units in parts.items()
    }


def cost_months_cached(name: tuple, months: Sequence[dt.date], compute: Callable[[], _T]) -> _T:
    """``compute()``, anything read from these months' cost rows and their attribution (put
    whatever else it depends on, such as the person's units, in ``name``), kept until one of
    the months changes."""
    stamps = _Stamps.read()
    # The months are in the key: two months one import stored share a stamp.
    ordered = sorted(months)
    return _cached((*name, *ordered), ".".join(stamps.month(m) for m in ordered), compute)


def cost_series_cached(
    name: str, series: dict[str, dict[dt.date, Decimal]], compute: Callable[[], _T], *extra: str
) -> _T:
    """``compute()`` (a chart of ``series``), kept under a digest of the series itself.

    The figure is a pure function of the sums, so equal sums share it; building one costs a
    tenth of a second of CPU (plotly validates every property), more than reading the sums.
    """
    content = sorted((code, sorted(points.items())) for code, points in series.items())
    return _cached((name, *extra), _digest(content), compute)


MonthParts = dict[str, dict[int | None, dict[tuple[str, str], Decimal]]]


def _month_parts(*, month: dt.date, amount_field: str) -> MonthParts:
    """currency -> unit id (None: Unallocated) -> (service, charge category) -> exact amount."""
    return _month_parts_many(months=[month], amount_field=amount_field)[month]


def _month_parts_many(
    *, months: Sequence[dt.date], amount_field: str, stamps: _Stamps | None = None
) -> dict[dt.date, MonthParts]:
    """``_month_parts`` of several months, read from the cache in one round trip (under
    ``stamps`` when the caller has just read them)."""
    seconds = settings.CAPGOV_COST_CACHE_SECONDS
    if seconds <= 0:
        return {month: _month_parts_compute(month, amount_field) for month in months}
    stamps = stamps or _Stamps.read()
    keys = {m: _cache_key(("parts", m, amount_field), stamps.month(m)) for m in months}
    try:
        found = cache.get_many(list(keys.values()))
    except Exception as exc:
        logger.warning("cost cache unavailable, reading live: %s", exc)
        found = None
    out, missing = {}, {}
    for month, key in keys.items():
        if found and key in found:
            out[month] = found[key]
        else:
            out[month] = missing[key] = _month_parts_compute(month, amount_field)
    if found:
        _keep(list(found), seconds)
    if missing and found is not None:
        try:
            cache.set_many(missing, seconds)
        except Exception as exc:
            logger.warning("cost cache unavailable, not kept: %s", exc)
    return out


def _month_parts_compute(month: dt.date, amount_field: str) -> MonthParts:
    # Group by tag set, not by business unit: no join over the month's rows, and the few
    # hundred tag sets map to their unit in memory.
    grouped = (
        CostRow.objects.filter(billing_period=month)
        .values("currency", "tag_set_id", "service_name", "charge_category")
        .annotate(amount=Sum(amount_field))
        .order_by()
    )
    unit_of = dict(TagSet.objects.values_list("pk", "business_unit_id"))
    exact: MonthParts = {}
    for row in grouped:
        bucket = exact.setdefault(row["currency"], {}).setdefault(
            unit_of.get(row["tag_set_id"]), {}
        )
        key = (row["service_name"], row["charge_category"])
        bucket[key] = bucket.get(key, ZERO) + (row["amount"] or ZERO)
    return exact


def _month_units_by(
    month: dt.date, amount_field: str, date_field: str
) -> dict[str, dict[int | None, dict[dt.date, Decimal]]]:
    """currency -> unit id -> ``date_field`` value -> exact amount, over one billing month."""
    grouped = (
        CostRow.objects.filter(billing_period=month)
        .values("currency", "tag_set__business_unit_id", date_field)
        .annotate(amount=Sum(amount_field))
        .order_by()
    )
    out: dict[str, dict[int | None, dict[dt.date, Decimal]]] = {}
    for row in grouped:
        points = out.setdefault(row["currency"], {}).setdefault(
            row["tag_set__business_unit_id"], {}
        )
        points[row[date_field]] = row["amount"] or ZERO
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
    """A budget's spend in a month and the last day its currency has data for; and, when its
    unit's cost forecast covers the rest of the month, the expected spend of those days and
    how many they are."""

    spend: Decimal
    data_until: dt.date | None
    forecast_rest: tuple[Decimal, int] | None = None


def _forecast_rest(
    budgets: Sequence[Budget], month: dt.date, data_until: dict[str, dt.date]
) -> dict[int, tuple[Decimal, int]]:
    """Per budget, the expected spend of the month's days after its currency's last day with
    data, from its unit's cost forecast in its currency (one query).

    Only for budgets of a whole unit on the billed basis, which is what the forecast learns
    (its usage charges, billed; see ``costs.forecasts``); a project-tag budget or one on the
    effective basis keeps the simple trend, as does a budget whose forecast does not cover
    every remaining day.
    """
    eligible = [b for b in budgets if not b.tag_key and b.basis == "billed"]
    if not eligible:
        return {}
    points: dict[tuple[int, str], dict[dt.date, Decimal]] = defaultdict(dict)
    for unit_id, currency, day, expected in ForecastPoint.objects.filter(
        forecast__in=Forecast.objects.filter(
            kind=SubjectKind.UNIT,
            measure=Measure.COST,
            business_unit_id__in={b.business_unit_id for b in eligible},
            currency__in={b.currency for b in eligible},
        ),
        day__gte=month,
        day__lt=budget_math.next_month(month),
    ).values_list("forecast__business_unit_id", "forecast__currency", "day", "expected"):
        points[(unit_id, currency)][day] = expected
    out = {}
    for budget in eligible:
        days = budget_math.days_after_data(month=month, data_until=data_until.get(budget.currency))
        expected = points.get((budget.business_unit_id, budget.currency), {})
        if days and all(day in expected for day in days):
            out[budget.pk] = (sum((expected[d] for d in days), ZERO), len(days))
    return out


def budget_spend(*, budgets: Sequence[Budget], month: dt.date) -> dict[int, BudgetSpend]:
    """Spend of each budget in the billing month, on its basis, in its currency only.

    One grouped query over the month's cost rows however many budgets (both bases summed at
    once), plus one over tag sets, which map to their unit and project tag in memory. The last
    day with data is taken per currency, across all units, so a unit that spent nothing
    yesterday does not look as if its data stopped.
    """
    if not budgets:
        return {}
    currencies = tuple(sorted({b.currency for b in budgets}))
    grouped = _cached(
        ("tag-spend", month, currencies),
        _Stamps.read().month(month),
        lambda: _month_tag_spend(month, currencies),
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
    rest = _forecast_rest(budgets, month, data_until)
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
        out[budget.pk] = BudgetSpend(
            spend=total,
            data_until=data_until.get(budget.currency),
            forecast_rest=rest.get(budget.pk),
        )
    return out


def _month_tag_spend(month: dt.date, currencies: tuple[str, ...]) -> list[dict]:
    """Billed and effective spend and the last usage day per currency and tag set."""
    return list(
        CostRow.objects.filter(billing_period=month, currency__in=currencies)
        .values("currency", "tag_set_id")
        .annotate(
            billed=Sum("billed_cost"), effective=Sum("effective_cost"), last_day=Max("usage_date")
        )
        .order_by()
    )


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
        forecast_rest=spend.forecast_rest,
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
