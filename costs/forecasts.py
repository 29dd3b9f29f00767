"""Forecasts of every business unit's, shared pool's and endpoint's daily cost and GPU-hours:
the series they learn from, their refresh, the anomalies found, the business events that
move them and the days left out of them; with the scoped reads the pages and the API share.

The series (one value per day; a day without data is unknown, not zero, unless said):

==========================  =======================================================================
subject, measure            daily value
==========================  =======================================================================
unit, cost (per currency)   the billed cost of its *usage* charges (FOCUS ChargeCategory Usage)
                            on the usage day: cost rows fall to the unit through their tag set.
                            One-off purchases, credits, taxes and adjustments are left out —
                            they are not a daily pattern to learn. Billed, not effective, cost:
                            a budget on the effective basis keeps its simple trend (see
                            ``costs.selectors.budget_spend``). A day the currency has any usage
                            row in the bill but the unit none counts as zero for the unit.
unit, GPU-hours             its pool usage (``registry.PoolUsage``) summed over the pools
pool, GPU-hours             the pool's usage summed over the units
pool, cost                  its GPU-hours times the price of one GPU-hour on that day: the pool
                            hardware's ``HardwarePrice`` at the pool's provider in force that day
                            (the newest; between regions, the first by name) over its
                            accelerators per replica, in the price's currency
endpoint, cost              the billed usage cost of the cost rows that belong to the endpoint,
                            matched as the cost-per-inference page matches them
                            (``costs.inference``); zero on a billed day without a row
endpoint, GPU-hours         on each day with an ``EndpointUsage`` row: instance count x
                            accelerators per replica x 24 (as ``registry`` derives pool usage);
                            accelerators from the hardware priced for its instance type, else
                            its model version's hardware
==========================  =======================================================================

History is read from ``CAPGOV_FORECAST_HISTORY_DAYS`` before ``now`` up to yesterday (today
is not over). The model and its rules are in :mod:`costs.forecasting`.

Refreshing a forecast first compares the days that now have actuals with the points stored
for them before they happened (the days after the previous refresh's last history day), and
records a :class:`CostAnomaly` for each day outside its interval — once per forecast and day.
It then refits on the history minus the days left out (``ForecastExclusion``) and minus the
anomaly days, replaces the points ahead, and keeps the points of the days already past: they
are what was predicted.

Events (``BusinessEvent``) apply to the forecasts of the subject they name — a unit's event
to that unit's cost and GPU-hours forecasts, a pool's to the pool's, an endpoint's to the
endpoint's — and an event naming no subject to every forecast. Exclusions follow the same
rule. Who may see what follows the cost scope (:func:`forecast_visible_q`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from costs import forecasting
from costs.budgets import month_of, previous_month
from costs.inference import _EndpointMatcher
from costs.models import (
    AnomalyDirection,
    BusinessEvent,
    ChargeCategory,
    CostAnomaly,
    CostRow,
    EventKind,
    Forecast,
    ForecastExclusion,
    ForecastPoint,
    Measure,
    SubjectKind,
)
from governance.exceptions import DomainError, PermissionDeniedError
from governance.models import BusinessUnit, User
from governance.selectors import manages_costs, visible_unit_ids
from registry.models import CapacityPool, Endpoint, EndpointUsage, HardwarePrice, PoolUsage

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
HOURS_PER_DAY = 24
MAX_SPAN_DAYS = 366
MAX_UPLIFT = Decimal(1000)
FIELD = {
    SubjectKind.UNIT: "business_unit",
    SubjectKind.POOL: "pool",
    SubjectKind.ENDPOINT: "endpoint",
}
Series = dict[dt.date, Decimal]
# An event or exclusion naming no subject: it applies to every forecast.
ORGANISATION = Q(business_unit__isnull=True, pool__isnull=True, endpoint__isnull=True)


@dataclass(frozen=True, order=True)
class SeriesKey:
    """One forecast's subject and measure: (unit, cost, USD), (pool 3, GPU-hours, "")…"""

    kind: str
    subject_id: int
    measure: str
    currency: str = ""


# --- The series ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The usage days read: ``first`` to ``last``, both included."""

    first: dt.date
    last: dt.date

    @classmethod
    def ending(cls, now: dt.datetime) -> Window:
        last = now.astimezone(dt.UTC).date() - dt.timedelta(days=1)
        return cls(
            first=last - dt.timedelta(days=settings.CAPGOV_FORECAST_HISTORY_DAYS - 1), last=last
        )


def _usage_rows(window: Window) -> QuerySet[CostRow]:
    # The billing period leads the cost rows' index; a usage day falls in its own month's
    # bill or, for late charges, a later one.
    return CostRow.objects.filter(
        billing_period__gte=previous_month(month_of(window.first)),
        usage_date__gte=window.first,
        usage_date__lte=window.last,
        charge_category=ChargeCategory.USAGE,
    )


def billed_days(window: Window) -> dict[str, set[dt.date]]:
    """Per currency, the usage days the bill has any usage row for."""
    out: dict[str, set[dt.date]] = defaultdict(set)
    for currency, day in _usage_rows(window).values_list("currency", "usage_date").distinct():
        out[currency].add(day)
    return out


def _zero_filled(
    amounts: Mapping[dt.date, Decimal], billed: Iterable[dt.date], since: dt.date
) -> Series:
    return {day: amounts.get(day, ZERO) for day in sorted(billed) if day >= since}


def unit_cost_series(
    window: Window, *, unit_ids: Iterable[int] | None = None
) -> dict[SeriesKey, Series]:
    """Each unit's billed usage cost per currency and day, in one grouped query."""
    return _unit_costs(window, unit_ids=unit_ids)[0]


def _unit_costs(
    window: Window, *, unit_ids: Iterable[int] | None
) -> tuple[dict[SeriesKey, Series], dict[str, set[dt.date]]]:
    """The units' cost series, and per currency the days billed (:func:`billed_days`): the
    grouped query reads every unit's rows, so it has them too."""
    grouped = (
        _usage_rows(window)
        .values("tag_set__business_unit_id", "currency", "usage_date")
        .annotate(amount=Sum("billed_cost"))
        .order_by()
    )
    wanted = set(unit_ids) if unit_ids is not None else None
    billed: dict[str, set[dt.date]] = defaultdict(set)
    amounts: dict[tuple[int, str], dict[dt.date, Decimal]] = defaultdict(dict)
    for row in grouped:
        billed[row["currency"]].add(row["usage_date"])
        unit = row["tag_set__business_unit_id"]
        if unit is not None and (wanted is None or unit in wanted):
            amounts[(unit, row["currency"])][row["usage_date"]] = row["amount"] or ZERO
    series = {
        SeriesKey(SubjectKind.UNIT, unit, Measure.COST, currency): _zero_filled(
            days, billed[currency], min(days)
        )
        for (unit, currency), days in amounts.items()
    }
    return series, billed


def _pool_usage_series(
    window: Window, *, kind: str, field: str, ids: Iterable[int] | None
) -> dict[SeriesKey, Series]:
    """The pool usage's GPU-hours per day summed by ``field`` (its unit or its pool)."""
    rows = PoolUsage.objects.filter(day__gte=window.first, day__lte=window.last)
    if ids is not None:
        rows = rows.filter(**{f"{field}__in": list(ids)})
    out: dict[SeriesKey, Series] = defaultdict(dict)
    for subject, day, hours in (
        rows.values_list(field, "day").annotate(hours=Sum("gpu_hours")).order_by()
    ):
        out[SeriesKey(kind, subject, Measure.GPU_HOURS)][day] = hours or ZERO
    return dict(out)


def unit_gpu_hours_series(
    window: Window, *, unit_ids: Iterable[int] | None = None
) -> dict[SeriesKey, Series]:
    """Each unit's GPU-hours per day over every pool, in one grouped query."""
    return _pool_usage_series(window, kind=SubjectKind.UNIT, field="business_unit_id", ids=unit_ids)


def pool_gpu_hours_series(
    window: Window, *, pool_ids: Iterable[int] | None = None
) -> dict[SeriesKey, Series]:
    """Each pool's GPU-hours per day over every unit, in one grouped query."""
    return _pool_usage_series(window, kind=SubjectKind.POOL, field="pool_id", ids=pool_ids)


def _gpu_hour_prices(
    pools: Sequence[CapacityPool],
) -> dict[int, list[tuple[dt.date, Decimal, str]]]:
    """Per pool, (first day, price of one GPU-hour, currency), oldest first, in one query."""
    out: dict[int, list[tuple[dt.date, Decimal, str]]] = defaultdict(list)
    by_hardware: dict[tuple[int, str], list[CapacityPool]] = defaultdict(list)
    for pool in pools:
        by_hardware[(pool.hardware_profile_id, pool.provider)].append(pool)
    if not by_hardware:
        return {}
    prices = (
        HardwarePrice.objects.filter(hardware_profile_id__in={k[0] for k in by_hardware})
        .select_related("hardware_profile")
        .order_by("effective_from", "region", "pk")
    )
    for price in prices:
        per_replica = price.hardware_profile.accelerator_count
        if not per_replica:
            continue
        for pool in by_hardware.get((price.hardware_profile_id, price.provider), []):
            starts = price.effective_from.astimezone(dt.UTC).date()
            prior = out[pool.pk]
            if prior and prior[-1][0] == starts:
                continue  # another region's price of the same day: the first by name stands
            prior.append((starts, price.hourly_price / per_replica, price.currency))
    return dict(out)


def pool_cost_series(
    window: Window,
    *,
    pool_ids: Iterable[int] | None = None,
    hours: Mapping[SeriesKey, Series] | None = None,
) -> dict[SeriesKey, Series]:
    """Each pool's GPU-hours priced at the GPU-hour price in force each day."""
    if hours is None:
        hours = pool_gpu_hours_series(window, pool_ids=pool_ids)
    pools = list(
        CapacityPool.objects.select_related("hardware_profile").filter(
            pk__in={k.subject_id for k in hours}
        )
    )
    prices = _gpu_hour_prices(pools)
    out: dict[SeriesKey, Series] = defaultdict(dict)
    for key, days in hours.items():
        schedule = prices.get(key.subject_id, [])
        for day, used in days.items():
            price = next((p for p in reversed(schedule) if p[0] <= day), None)
            if price is not None:
                out[SeriesKey(SubjectKind.POOL, key.subject_id, Measure.COST, price[2])][day] = (
                    used * price[1]
                )
    return dict(out)


def endpoint_cost_series(
    window: Window,
    *,
    endpoints: Sequence[Endpoint],
    billed: Mapping[str, set[dt.date]] | None = None,
) -> dict[SeriesKey, Series]:
    """Each endpoint's billed usage cost per currency and day, in one grouped query (two
    when the billed days are not given)."""
    matcher = _EndpointMatcher(endpoints)
    rows = matcher.rows(_usage_rows(window))
    if rows is None:
        return {}
    grouped = (
        rows.values("rid", "currency", "usage_date").annotate(amount=Sum("billed_cost")).order_by()
    )
    amounts: dict[tuple[int, str], dict[dt.date, Decimal]] = defaultdict(
        lambda: defaultdict(lambda: ZERO)
    )
    for row in grouped:
        endpoint = matcher.match(row["rid"])
        if endpoint is not None:
            amounts[(endpoint.pk, row["currency"])][row["usage_date"]] += row["amount"] or ZERO
    if not amounts:
        return {}
    billed = billed if billed is not None else billed_days(window)
    return {
        SeriesKey(SubjectKind.ENDPOINT, pk, Measure.COST, currency): _zero_filled(
            days, billed.get(currency, set(days)), min(days)
        )
        for (pk, currency), days in amounts.items()
    }


def _accelerators(endpoints: Sequence[Endpoint]) -> dict[int, int]:
    """Accelerators per replica of each endpoint, where known (one query)."""
    per_type: dict[tuple[str, str], set[int]] = defaultdict(set)
    for provider, instance_type, count in HardwarePrice.objects.exclude(
        instance_type=""
    ).values_list("provider", "instance_type", "hardware_profile__accelerator_count"):
        per_type[(provider, instance_type)].add(count)
    out = {}
    for endpoint in endpoints:
        counts = per_type.get((endpoint.provider, endpoint.instance_type), set())
        if len(counts) == 1:
            out[endpoint.pk] = next(iter(counts))
        elif endpoint.model_version and endpoint.model_version.hardware_profile:
            out[endpoint.pk] = endpoint.model_version.hardware_profile.accelerator_count
    return {pk: count for pk, count in out.items() if count}


def endpoint_gpu_hours_series(
    window: Window, *, endpoints: Sequence[Endpoint]
) -> dict[SeriesKey, Series]:
    """Each endpoint's GPU-hours on its usage days (two queries)."""
    gpus = _accelerators(endpoints)
    counts = {e.pk: e.instance_count for e in endpoints if e.instance_count and e.pk in gpus}
    if not counts:
        return {}
    out: dict[SeriesKey, Series] = defaultdict(dict)
    for pk, day in EndpointUsage.objects.filter(
        endpoint_id__in=list(counts), day__gte=window.first, day__lte=window.last
    ).values_list("endpoint_id", "day"):
        out[SeriesKey(SubjectKind.ENDPOINT, pk, Measure.GPU_HOURS)][day] = Decimal(
            counts[pk] * gpus[pk] * HOURS_PER_DAY
        )
    return dict(out)


def _endpoints(ids: Iterable[int] | None = None) -> list[Endpoint]:
    endpoints = Endpoint.objects.select_related("model_version__hardware_profile").order_by("pk")
    if ids is not None:
        endpoints = endpoints.filter(pk__in=list(ids))
    return list(endpoints)


def series_all(
    window: Window, *, measures: Iterable[str] = Measure.values
) -> dict[SeriesKey, Series]:
    """Every subject's series of the measures asked for: a fixed number of queries."""
    measures = set(measures)
    out: dict[SeriesKey, Series] = {}
    endpoints = _endpoints()
    if Measure.COST in measures:
        units, billed = _unit_costs(window, unit_ids=None)
        out |= units
        out |= endpoint_cost_series(window, endpoints=endpoints, billed=billed)
    pool_hours = pool_gpu_hours_series(window)
    if Measure.GPU_HOURS in measures:
        out |= unit_gpu_hours_series(window)
        out |= pool_hours
        out |= endpoint_gpu_hours_series(window, endpoints=endpoints)
    if Measure.COST in measures:
        out |= pool_cost_series(window, hours=pool_hours)
    return {k: v for k, v in out.items() if v}


def series_of(window: Window, key: SeriesKey) -> Series:
    """One subject's series (the forecast page's actuals)."""
    if key.kind == SubjectKind.UNIT:
        read = unit_cost_series if key.measure == Measure.COST else unit_gpu_hours_series
        found = read(window, unit_ids=[key.subject_id])
    elif key.kind == SubjectKind.POOL:
        read = pool_cost_series if key.measure == Measure.COST else pool_gpu_hours_series
        found = read(window, pool_ids=[key.subject_id])
    else:
        endpoints = _endpoints([key.subject_id])
        read = endpoint_cost_series if key.measure == Measure.COST else endpoint_gpu_hours_series
        found = read(window, endpoints=endpoints)
    return found.get(key, {})


def key_of(forecast: Forecast) -> SeriesKey:
    subject_id = getattr(forecast, f"{FIELD[forecast.kind]}_id")
    return SeriesKey(forecast.kind, subject_id, forecast.measure, forecast.currency)


# --- Events and exclusions per subject -----------------------------------------------------------


def _subject_of(row: BusinessEvent | ForecastExclusion) -> tuple[str, int] | None:
    """(kind, id) of the subject an event or exclusion names; None: the whole organisation."""
    for kind, name in FIELD.items():
        value = getattr(row, f"{name}_id")
        if value is not None:
            return kind, value
    return None


def _by_subject(rows: Iterable) -> tuple[list, dict[tuple[str, int], list]]:
    everyone, per_subject = [], defaultdict(list)
    for row in rows:
        subject = _subject_of(row)
        if subject is None:
            everyone.append(row)
        else:
            per_subject[subject].append(row)
    return everyone, per_subject


def _event(row: BusinessEvent) -> forecasting.Event:
    return forecasting.Event(row.starts_on, row.ends_on, row.uplift_percent, row.name)


@dataclass
class Context:
    """What a refresh reads once for every series: events and exclusions by subject."""

    events: tuple[list, dict]
    exclusions: tuple[list, dict]

    @classmethod
    def load(cls, window: Window) -> Context:
        events = BusinessEvent.objects.filter(ends_on__gte=window.first).order_by("pk")
        exclusions = ForecastExclusion.objects.filter(ends_on__gte=window.first).order_by("pk")
        return cls(_by_subject(events), _by_subject(exclusions))

    def events_for(self, key: SeriesKey) -> list[forecasting.Event]:
        everyone, per = self.events
        return [_event(e) for e in [*everyone, *per.get((key.kind, key.subject_id), [])]]

    def excluded_for(self, key: SeriesKey) -> set[dt.date]:
        everyone, per = self.exclusions
        days: set[dt.date] = set()
        for row in [*everyone, *per.get((key.kind, key.subject_id), [])]:
            days.update(forecasting.days_between(row.starts_on, row.ends_on))
        return days


# --- Refresh -------------------------------------------------------------------------------------


@dataclass
class Refreshed:
    """What one refresh did to one series."""

    key: SeriesKey
    forecast: Forecast | None
    anomalies: list[CostAnomaly] = field(default_factory=list)
    refused: str = ""


@dataclass
class RefreshReport:
    """What a refresh of every forecast did."""

    refreshed: list[Refreshed] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def forecasts(self) -> int:
        return sum(1 for r in self.refreshed if r.forecast is not None and not r.refused)

    @property
    def anomalies(self) -> int:
        return sum(len(r.anomalies) for r in self.refreshed)

    @property
    def refused(self) -> list[Refreshed]:
        return [r for r in self.refreshed if r.refused]


def _forecast_for(key: SeriesKey, *, lock: bool) -> Forecast | None:
    found = Forecast.objects.filter(
        kind=key.kind,
        measure=key.measure,
        currency=key.currency,
        **{f"{FIELD[key.kind]}_id": key.subject_id},
    )
    if lock:
        found = found.select_for_update()
    return found.first()


def _record_anomalies(
    forecast: Forecast, series: Series, history_end: dt.date, now: dt.datetime
) -> list[CostAnomaly]:
    """Compare the days that have actuals since the last refresh with what was predicted."""
    if forecast.pk is None or forecast.history_end is None or history_end <= forecast.history_end:
        return []
    predicted = forecast.points.filter(day__gt=forecast.history_end, day__lte=history_end)
    found = forecasting.detect_anomalies(predicted, series)
    if not found:
        return []
    rows = [
        CostAnomaly(
            forecast=forecast,
            day=a.day,
            actual=a.actual,
            expected=a.expected,
            lower=a.lower,
            upper=a.upper,
            size=a.size,
            direction=AnomalyDirection(a.direction),
            detected_at=now,
        )
        for a in found
    ]
    already = set(
        forecast.anomalies.filter(day__in=[a.day for a in found]).values_list("day", flat=True)
    )
    new = [r for r in rows if r.day not in already]
    CostAnomaly.objects.bulk_create(new, ignore_conflicts=True)
    return new


def _refresh_one(
    key: SeriesKey, series: Series, *, now: dt.datetime, context: Context
) -> Refreshed:
    horizon = settings.CAPGOV_FORECAST_HORIZON_DAYS
    with transaction.atomic():
        forecast = _forecast_for(key, lock=True) or Forecast(
            kind=key.kind,
            measure=key.measure,
            currency=key.currency,
            **{f"{FIELD[key.kind]}_id": key.subject_id},
        )
        history_end = max(series)
        anomalies = _record_anomalies(forecast, series, history_end, now)
        left_out = context.excluded_for(key)
        if forecast.pk is not None:
            left_out |= set(forecast.anomalies.values_list("day", flat=True))
        try:
            result = forecasting.forecast(
                series,
                history_end=history_end,
                horizon_days=horizon,
                interval_percent=settings.CAPGOV_FORECAST_INTERVAL_PERCENT,
                low_quantile_percent=settings.CAPGOV_FORECAST_LOW_QUANTILE_PERCENT,
                events=context.events_for(key),
                excluded=left_out,
            )
        except forecasting.ForecastRefusedError as exc:
            if forecast.pk is not None:
                forecast.warnings = [f"Not refreshed on {now:%Y-%m-%d}: {exc}"]
                forecast.save(update_fields=["warnings"])
            return Refreshed(key, forecast if forecast.pk else None, anomalies, refused=str(exc))
        forecast.method = result.method
        forecast.interval_percent = result.interval_percent
        forecast.history_start, forecast.history_end = result.history_start, result.history_end
        forecast.horizon_days = horizon
        forecast.mape = result.mape
        notes = list(result.warnings)
        if result.filled_days:
            notes.append(
                f"{len(result.filled_days)} day(s) of the history were filled (left out or "
                "without data) from the same weekday of the weeks around them."
            )
        forecast.warnings = notes
        forecast.generated_at = now
        forecast.save()
        forecast.points.filter(day__gt=result.history_end).delete()
        kept = set(forecast.points.values_list("day", flat=True))
        ForecastPoint.objects.bulk_create(
            [
                ForecastPoint(
                    forecast=forecast,
                    day=p.day,
                    expected=p.expected,
                    lower=p.lower,
                    upper=p.upper,
                    low_quantile=p.low_quantile,
                    uplift_percent=p.uplift_percent,
                )
                for p in result.points
                if p.day not in kept
            ],
            batch_size=500,
        )
    return Refreshed(key, forecast, anomalies)


def _refresh_safely(
    key: SeriesKey, series: Series, *, now: dt.datetime, context: Context
) -> Refreshed:
    try:
        return _refresh_one(key, series, now=now, context=context)
    except Exception as exc:  # one bad series must not stop the others' refresh
        logger.exception("forecast refresh of %s failed", key)
        return Refreshed(key, None, refused=f"internal error ({exc})")


def forecasts_refresh_all(
    *, now: dt.datetime | None = None, measures: Iterable[str] = Measure.values
) -> RefreshReport:
    """Refresh every subject's forecasts of ``measures``: anomalies first, then the refit.

    Idempotent for a given ``now``: a second run records no anomaly twice and stores the same
    points. Each series is refreshed in its own transaction; a series that cannot be forecast
    (too little history) or fails is reported and the others go on.
    """
    started = time.monotonic()
    now = now or timezone.now()
    window = Window.ending(now)
    all_series = series_all(window, measures=measures)
    context = Context.load(window)
    report = RefreshReport()
    for key in sorted(all_series):
        report.refreshed.append(_refresh_safely(key, all_series[key], now=now, context=context))
    report.seconds = time.monotonic() - started
    logger.info(
        "forecasts refreshed: %s, %s anomalies, %s refused, %.1f s",
        report.forecasts,
        report.anomalies,
        len(report.refused),
        report.seconds,
    )
    return report


def forecast_refresh(
    *, kind: str, subject_id: int, measure: str, currency: str = "", now: dt.datetime | None = None
) -> Refreshed:
    """Refresh one subject's forecast of one measure (and currency, for cost)."""
    if kind not in FIELD or measure not in Measure.values:
        raise DomainError(
            f"Nothing to forecast: {kind!r} / {measure!r} is not a subject and measure."
        )
    now = now or timezone.now()
    window = Window.ending(now)
    key = SeriesKey(kind, subject_id, measure, currency if measure == Measure.COST else "")
    series = series_of(window, key)
    if not series:
        return Refreshed(key, _forecast_for(key, lock=False), refused="No history in the window.")
    return _refresh_one(key, series, now=now, context=Context.load(window))


# --- Who may see and change what -----------------------------------------------------------------


def _sees_all_pools(user: User | None) -> bool:
    return visible_unit_ids(user) is None or bool(getattr(user, "is_board_member", False))


def _subject_q(user: User | None, prefix: str = "") -> Q | None:
    """Rows (forecasts, events, exclusions) whose subject the person may see; None: all."""
    units = visible_unit_ids(user)
    if units is None:
        return None
    p = prefix
    endpoint = Q(**{f"{p}endpoint__business_unit__in": units}) | Q(
        **{
            f"{p}endpoint__business_unit__isnull": True,
            f"{p}endpoint__model_version__model__business_unit__in": units,
        }
    )
    pool = (
        Q(**{f"{p}pool__isnull": False})
        if _sees_all_pools(user)
        else Q(**{f"{p}pool__owner__in": units})
    )
    return Q(**{f"{p}business_unit__in": units}) | pool | endpoint


def forecast_list(*, user: User | None) -> QuerySet[Forecast]:
    """Forecasts the person may read, with their subjects.

    Finance and platform admins read all; anyone else the forecasts of their units, of the
    endpoints of their units (an endpoint without a unit goes with its model's), and of the
    pools their units run — board members read every pool's, as they weigh the capacity.
    """
    forecasts = Forecast.objects.select_related(
        "business_unit", "pool__owner", "endpoint__business_unit"
    )
    rule = _subject_q(user)
    return forecasts if rule is None else forecasts.filter(rule)


def anomaly_list(*, user: User | None) -> QuerySet[CostAnomaly]:
    """The anomalies of the forecasts the person may read, newest day first."""
    anomalies = CostAnomaly.objects.select_related(
        "forecast__business_unit", "forecast__pool", "forecast__endpoint"
    ).order_by("-day", "pk")
    rule = _subject_q(user, "forecast__")
    return anomalies if rule is None else anomalies.filter(rule)


def _org_or_subject(user: User | None, queryset: QuerySet) -> QuerySet:
    rule = _subject_q(user)
    return queryset if rule is None else queryset.filter(ORGANISATION | rule)


def event_list(*, user: User | None) -> QuerySet[BusinessEvent]:
    """Business events the person may read: the organisation's and their subjects'."""
    events = BusinessEvent.objects.select_related(
        "business_unit", "pool", "endpoint__model_version__model", "created_by"
    )
    return _org_or_subject(user, events)


def exclusion_list(*, user: User | None) -> QuerySet[ForecastExclusion]:
    """Days left out of forecasts that the person may read, as events are read."""
    rows = ForecastExclusion.objects.select_related(
        "business_unit", "pool", "endpoint__model_version__model", "created_by"
    )
    return _org_or_subject(user, rows)


def _owner_units(user: User) -> frozenset[int]:
    """The units the person owns, read once per user object (a request's)."""
    owned = getattr(user, "_capgov_owned_units", None)
    if owned is None:
        owned = frozenset(BusinessUnit.objects.filter(owner=user).values_list("pk", flat=True))
        user._capgov_owned_units = owned
    return owned


def may_manage(
    *,
    user: User | None,
    business_unit: BusinessUnit | None = None,
    pool: CapacityPool | None = None,
    endpoint: Endpoint | None = None,
) -> bool:
    """May the person add events and leave days out for this subject (none: the whole
    organisation)? Finance and platform admins for any; a unit's owner for the unit, its
    endpoints and the pools it runs; ``user=None`` is the system."""
    if manages_costs(user):
        return True
    if user is None or not user.is_authenticated:
        return False
    owned = _owner_units(user)
    if business_unit is not None:
        return business_unit.pk in owned
    if pool is not None:
        return pool.owner_id in owned
    if endpoint is not None:
        unit_id = endpoint.business_unit_id
        if unit_id is None and endpoint.model_version_id:
            unit_id = endpoint.model_version.model.business_unit_id
        return unit_id in owned
    return False


def manageable_units(*, user: User) -> QuerySet[BusinessUnit]:
    units = BusinessUnit.objects.order_by("code")
    return units if manages_costs(user) else units.filter(owner=user)


def manageable_pools(*, user: User) -> QuerySet[CapacityPool]:
    pools = CapacityPool.objects.order_by("name")
    return pools if manages_costs(user) else pools.filter(owner__owner=user)


def manageable_endpoints(*, user: User) -> QuerySet[Endpoint]:
    endpoints = Endpoint.objects.order_by("name", "pk")
    if manages_costs(user):
        return endpoints
    return endpoints.filter(
        Q(business_unit__owner=user)
        | Q(business_unit__isnull=True, model_version__model__business_unit__owner=user)
    )


# --- Events --------------------------------------------------------------------------------------


def _one_subject(
    business_unit: BusinessUnit | None, pool: CapacityPool | None, endpoint: Endpoint | None
) -> None:
    if sum(x is not None for x in (business_unit, pool, endpoint)) > 1:
        raise DomainError(
            "Name one business unit, pool or endpoint — or none, for the whole organisation."
        )


def _days_in_order(starts_on: dt.date | None, ends_on: dt.date | None, what: str) -> None:
    if starts_on is None or ends_on is None:
        raise DomainError(f"Give the {what}'s first and last day, e.g. 2026-12-01 and 2026-12-14.")
    if ends_on < starts_on:
        raise DomainError(
            f"The {what} ends on {ends_on} before it starts on {starts_on}: swap the days."
        )
    if (ends_on - starts_on).days + 1 > MAX_SPAN_DAYS:
        raise DomainError(
            f"The {what} spans {(ends_on - starts_on).days + 1} days; at most {MAX_SPAN_DAYS}. "
            "Split it."
        )


def _require_manage(by: User | None, action: str, **subject) -> None:
    if not may_manage(user=by, **subject):
        raise PermissionDeniedError(
            f"Only finance, platform admins and the owner of the business unit concerned may "
            f"{action}."
        )


@transaction.atomic
def event_save(
    *,
    by: User | None,
    event: BusinessEvent | None = None,
    name: str,
    kind: str = EventKind.OTHER,
    starts_on: dt.date | None,
    ends_on: dt.date | None,
    uplift_percent: Decimal | None,
    business_unit: BusinessUnit | None = None,
    pool: CapacityPool | None = None,
    endpoint: Endpoint | None = None,
    notes: str = "",
) -> BusinessEvent:
    """Create or change a business event; the days ahead of the forecasts it touches (before
    and after the change) take the new uplift at once, the history at the next refresh."""
    name = (name or "").strip()
    if not name:
        raise DomainError("Give the event a name, e.g. Spring catalogue launch.")
    if len(name) > 200:
        raise DomainError("The event's name is longer than 200 characters.")
    if kind not in EventKind.values:
        raise DomainError(f"{kind!r} is not an event kind: one of {', '.join(EventKind.values)}.")
    _days_in_order(starts_on, ends_on, "event")
    if uplift_percent is None:
        raise DomainError("Give the expected uplift in percent, e.g. 25 (or -10 for a drop).")
    uplift = Decimal(uplift_percent)
    if not uplift.is_finite() or not Decimal(-100) < uplift <= MAX_UPLIFT:
        raise DomainError(
            f"The uplift must be above -100 % and at most {MAX_UPLIFT} %, not {uplift_percent} %."
        )
    if uplift != uplift.quantize(Decimal("0.01")):
        raise DomainError("Give the uplift with at most two decimals, e.g. 12.5.")
    _one_subject(business_unit, pool, endpoint)
    _require_manage(
        by, "set business events for it", business_unit=business_unit, pool=pool, endpoint=endpoint
    )
    before = None
    if event is not None and event.pk:
        stored = BusinessEvent.objects.select_for_update().get(pk=event.pk)
        _require_manage(
            by,
            "change this event",
            business_unit=stored.business_unit,
            pool=stored.pool,
            endpoint=stored.endpoint,
        )
        before = _subject_of(stored)
    event = event or BusinessEvent(created_by=by)
    event.name, event.kind = name, kind
    event.starts_on, event.ends_on, event.uplift_percent = starts_on, ends_on, uplift
    event.business_unit, event.pool, event.endpoint = business_unit, pool, endpoint
    event.notes = (notes or "").strip()
    event.save()
    _events_reapply(subjects=[before, _subject_of(event)])
    return event


@transaction.atomic
def event_delete(*, event: BusinessEvent, by: User | None) -> None:
    """Remove an event; the days ahead of its forecasts lose its uplift at once."""
    _require_manage(
        by,
        "delete this event",
        business_unit=event.business_unit,
        pool=event.pool,
        endpoint=event.endpoint,
    )
    subject = _subject_of(event)
    event.delete()
    _events_reapply(subjects=[subject])


def _events_reapply(*, subjects: Iterable[tuple[str, int] | None]) -> int:
    """Give the days ahead of the forecasts of these subjects (None: every forecast) the
    uplift of the events now covering them; returns the points changed."""
    subjects = list(subjects)
    forecasts = Forecast.objects.filter(history_end__isnull=False)
    if None not in subjects:
        rule = Q(pk__in=[])
        for kind, pk in {s for s in subjects if s is not None}:
            rule |= Q(kind=kind, **{f"{FIELD[kind]}_id": pk})
        forecasts = forecasts.filter(rule)
    forecasts = list(forecasts)
    if not forecasts:
        return 0
    context = Context.load(Window(first=min(f.history_end for f in forecasts), last=dt.date.max))
    events = {f.pk: context.events_for(key_of(f)) for f in forecasts}
    changed = []
    # Only the days ahead: the history's points keep what was predicted then.
    points = ForecastPoint.objects.filter(
        forecast__in=forecasts, day__gt=F("forecast__history_end")
    )
    for point in points:
        uplift = forecasting.uplift_on(point.day, events[point.forecast_id])
        if uplift == point.uplift_percent:
            continue
        for name in ("expected", "lower", "upper", "low_quantile"):
            value = getattr(point, name)
            if value is not None:
                setattr(
                    point,
                    name,
                    forecasting.with_uplift(value, uplift, replacing=point.uplift_percent),
                )
        point.uplift_percent = uplift
        changed.append(point)
    ForecastPoint.objects.bulk_update(
        changed, ["expected", "lower", "upper", "low_quantile", "uplift_percent"], batch_size=500
    )
    return len(changed)


# --- Exclusions ----------------------------------------------------------------------------------


def _exclusion_checked(
    starts_on: dt.date | None, ends_on: dt.date | None, reason: str, source: str
) -> tuple[str, str]:
    _days_in_order(starts_on, ends_on, "left-out period")
    reason = " ".join((reason or "").split())
    if not reason:
        raise DomainError("Say why these days are left out, e.g. the outage of 12 November.")
    if len(reason) > 300:
        raise DomainError("The reason is longer than 300 characters.")
    source = (source or "").strip()
    if len(source) > 64:
        raise DomainError("The source is longer than 64 characters.")
    return reason, source


@transaction.atomic
def exclusion_add(
    *,
    by: User | None,
    starts_on: dt.date | None,
    ends_on: dt.date | None,
    reason: str,
    business_unit: BusinessUnit | None = None,
    pool: CapacityPool | None = None,
    endpoint: Endpoint | None = None,
    source: str = "",
) -> ForecastExclusion:
    """Leave the days ``starts_on`` to ``ends_on`` out of the forecasts of a subject (none:
    every forecast) from their next refresh on. The same days, subject and source twice are
    stored once."""
    reason, source = _exclusion_checked(starts_on, ends_on, reason, source)
    _one_subject(business_unit, pool, endpoint)
    _require_manage(
        by,
        "leave days out of its forecasts",
        business_unit=business_unit,
        pool=pool,
        endpoint=endpoint,
    )
    return _exclusion_store(
        by=by,
        starts_on=starts_on,
        ends_on=ends_on,
        reason=reason,
        source=source,
        business_unit=business_unit,
        pool=pool,
        endpoint=endpoint,
    )


def _exclusion_store(
    *, by: User | None, starts_on, ends_on, reason, source, **subject
) -> ForecastExclusion:
    found = ForecastExclusion.objects.filter(
        starts_on=starts_on,
        ends_on=ends_on,
        source=source,
        **{name: subject.get(name) for name in FIELD.values()},
    ).first()
    if found is not None:
        return found
    return ForecastExclusion.objects.create(
        starts_on=starts_on,
        ends_on=ends_on,
        reason=reason,
        source=source,
        created_by=by,
        **{name: subject.get(name) for name in FIELD.values()},
    )


@transaction.atomic
def exclusions_record(
    *,
    by: User | None,
    starts_on: dt.date,
    ends_on: dt.date,
    reason: str,
    source: str,
    business_units: Iterable[BusinessUnit] = (),
    pools: Iterable[CapacityPool] = (),
    endpoints: Iterable[Endpoint] = (),
) -> list[ForecastExclusion]:
    """Leave the same days out of several subjects' forecasts at once, for a caller that has
    decided who may (an incident's editors, on the incident page). Idempotent per subject,
    days and source."""
    reason, source = _exclusion_checked(starts_on, ends_on, reason, source)
    out = []
    for name, subjects in (
        ("business_unit", business_units),
        ("pool", pools),
        ("endpoint", endpoints),
    ):
        for subject in subjects:
            out.append(
                _exclusion_store(
                    by=by,
                    starts_on=starts_on,
                    ends_on=ends_on,
                    reason=reason,
                    source=source,
                    **{name: subject},
                )
            )
    return out


@transaction.atomic
def exclusion_delete(*, exclusion: ForecastExclusion, by: User | None) -> None:
    """Take the days back into the forecasts (from their next refresh)."""
    _require_manage(
        by,
        "take these days back",
        business_unit=exclusion.business_unit,
        pool=exclusion.pool,
        endpoint=exclusion.endpoint,
    )
    exclusion.delete()


# --- Reads for pages and the API -----------------------------------------------------------------


@dataclass(frozen=True)
class Outlook:
    """A forecast's totals ahead from ``today``: the next 30 and 90 days."""

    next_30: Decimal | None
    next_90: Decimal | None
    lower_90: Decimal | None
    upper_90: Decimal | None
    anomalies: int


def outlooks(forecasts: Sequence[Forecast], *, today: dt.date) -> dict[int, Outlook]:
    """The totals of each forecast's days ahead and its anomaly count, in two queries."""
    ids = [f.pk for f in forecasts]
    if not ids:
        return {}
    day30, day90 = today + dt.timedelta(days=30), today + dt.timedelta(days=90)
    sums = {
        row["forecast_id"]: row
        for row in ForecastPoint.objects.filter(forecast_id__in=ids, day__gte=today, day__lt=day90)
        .values("forecast_id")
        .annotate(
            next_30=Sum("expected", filter=Q(day__lt=day30)),
            next_90=Sum("expected"),
            lower_90=Sum("lower"),
            upper_90=Sum("upper"),
        )
        .order_by()
    }
    counts = dict(
        CostAnomaly.objects.filter(forecast_id__in=ids)
        .values_list("forecast_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    totals = ("next_30", "next_90", "lower_90", "upper_90")
    return {
        pk: Outlook(
            **{name: sums.get(pk, {}).get(name) for name in totals},
            anomalies=counts.get(pk, 0),
        )
        for pk in ids
    }


def _applying_to(forecast: Forecast) -> Q:
    """Events and exclusions that apply to the forecast: its subject's and the organisation's."""
    name = FIELD[forecast.kind]
    return ORGANISATION | Q(**{f"{name}_id": getattr(forecast, f"{name}_id")})


def events_for_forecast(forecast: Forecast) -> QuerySet[BusinessEvent]:
    """The events that apply to the forecast: its subject's and the organisation's."""
    return BusinessEvent.objects.filter(_applying_to(forecast)).select_related(
        "business_unit", "pool", "endpoint"
    )


def exclusions_for_forecast(forecast: Forecast) -> QuerySet[ForecastExclusion]:
    """The days left out of the forecast: its subject's and the organisation's."""
    return ForecastExclusion.objects.filter(_applying_to(forecast)).select_related(
        "business_unit", "pool", "endpoint__model_version__model", "created_by"
    )


def event_may_create(*, user: User | None) -> bool:
    """May the person set some business event? Finance and platform admins, and the owner of
    a unit (for it, its endpoints and the pools it runs: :func:`may_manage`)."""
    if manages_costs(user):
        return True
    return user is not None and user.is_authenticated and bool(_owner_units(user))
