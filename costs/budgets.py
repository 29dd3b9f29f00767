"""Budget arithmetic: spend against a monthly amount, the month-end trend, thresholds crossed.

Pure: plain ``Decimal`` and ``date`` in, plain data out; the services and selectors gather the
numbers. Float appears only in the chart, at the plotly boundary.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

import plotly.graph_objects as go

from costs.allocation import normalise_key, normalise_tags, normalise_value
from costs.charts import _LAYOUT as CHART_LAYOUT  # one look for every cost chart

ACTUAL = "actual"
FORECAST = "forecast"
# How the month-end projection was made: the unit's cost forecast, or the simple trend.
BY_FORECAST = "forecast"
BY_TREND = "trend"
DEFAULT_THRESHOLDS = (50, 80, 100)
MAX_THRESHOLD = 1000
_STORED = Decimal("1e-10")  # the precision cost amounts are stored with
ZERO = Decimal(0)


# --- Months ------------------------------------------------------------------------------------


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def previous_month(month: dt.date) -> dt.date:
    return (month.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def days_in_month(month: dt.date) -> int:
    return calendar.monthrange(month.year, month.month)[1]


def days_elapsed(*, month: dt.date, data_until: dt.date | None) -> int:
    """Days of the month up to and including the last day that has cost data (0: none yet)."""
    if data_until is None or data_until < month:
        return 0
    if data_until >= next_month(month):
        return days_in_month(month)
    return data_until.day


# --- Spend, trend and thresholds ---------------------------------------------------------------


def days_after_data(*, month: dt.date, data_until: dt.date | None) -> list[dt.date]:
    """The days of the month after the last day with data (every day when none has data)."""
    done = days_elapsed(month=month, data_until=data_until)
    return [month + dt.timedelta(days=n) for n in range(done, days_in_month(month))]


def projection(*, spend: Decimal, month: dt.date, data_until: dt.date | None) -> Decimal | None:
    """Month-end spend on a simple trend: spend to date / days with data * days in the month.

    None before the month has any data: there is no trend to extend.
    """
    days = days_elapsed(month=month, data_until=data_until)
    if days == 0:
        return None
    return (spend * days_in_month(month) / days).quantize(_STORED)


def percent(part: Decimal, amount: Decimal) -> Decimal:
    """``part`` as a percentage of ``amount``, exact to the stored precision."""
    return (part * 100 / amount).quantize(_STORED) if amount else ZERO


def whole_percent(part: Decimal, amount: Decimal) -> int:
    """Rounded down, so a message never says 100 % before 100 % is reached."""
    return int((part * 100 / amount).to_integral_value(rounding=ROUND_FLOOR)) if amount else 0


def reached(part: Decimal, amount: Decimal, threshold: int) -> bool:
    """Has ``part`` reached ``threshold`` % of ``amount``? Compared exactly, without rounding."""
    return part * 100 >= amount * threshold


@dataclass(frozen=True, order=True)
class Crossing:
    """A threshold reached in a month: ``measure`` is actual or forecast spend."""

    measure: str
    threshold: int


@dataclass(frozen=True)
class Standing:
    """Where a budget stands in a month."""

    month: dt.date
    amount: Decimal
    currency: str
    spend: Decimal
    data_until: dt.date | None
    projection: Decimal | None
    crossings: tuple[Crossing, ...]
    enforcement: Crossing | None
    projection_method: str = BY_TREND
    forecast_days: int = 0  # the days ahead the forecast added (BY_FORECAST only)

    @property
    def days_elapsed(self) -> int:
        return days_elapsed(month=self.month, data_until=self.data_until)

    @property
    def days_in_month(self) -> int:
        return days_in_month(self.month)

    @property
    def percent(self) -> Decimal:
        return percent(self.spend, self.amount)

    @property
    def whole_percent(self) -> int:
        return whole_percent(self.spend, self.amount)

    @property
    def projected_percent(self) -> Decimal | None:
        return None if self.projection is None else percent(self.projection, self.amount)

    @property
    def remaining(self) -> Decimal:
        return max(self.amount - self.spend, ZERO)

    @property
    def over(self) -> Decimal:
        return max(self.spend - self.amount, ZERO)

    @property
    def projected_whole_percent(self) -> int | None:
        return None if self.projection is None else whole_percent(self.projection, self.amount)

    @property
    def breached(self) -> bool:
        return self.enforcement is not None and self.enforcement in self.crossings


def standing(
    *,
    month: dt.date,
    amount: Decimal,
    currency: str,
    spend: Decimal,
    data_until: dt.date | None,
    thresholds: Iterable[int],
    forecast_thresholds: Iterable[int],
    freeze_at: int | None,
    forecast_rest: tuple[Decimal, int] | None = None,
) -> Standing:
    """Spend, trend and every threshold reached. The enforcement threshold is a threshold of
    actual spend even when it is not among the alert thresholds.

    ``forecast_rest`` — the forecast's expected spend of the days of the month after the
    last day with data, and how many days that is — makes the projection spend to date plus
    that; without it the projection is the simple trend.
    """
    if forecast_rest is not None and forecast_rest[1] > 0:
        trend = (spend + forecast_rest[0]).quantize(_STORED)
        method, ahead = BY_FORECAST, forecast_rest[1]
    else:
        trend = projection(spend=spend, month=month, data_until=data_until)
        method, ahead = BY_TREND, 0
    actual = set(thresholds) | ({freeze_at} if freeze_at else set())
    crossings = [Crossing(ACTUAL, t) for t in sorted(actual) if reached(spend, amount, t)]
    if trend is not None:
        crossings += [
            Crossing(FORECAST, t)
            for t in sorted(set(forecast_thresholds))
            if reached(trend, amount, t)
        ]
    return Standing(
        month=month,
        amount=amount,
        currency=currency,
        spend=spend,
        data_until=data_until,
        projection=trend,
        crossings=tuple(crossings),
        enforcement=Crossing(ACTUAL, freeze_at) if freeze_at else None,
        projection_method=method,
        forecast_days=ahead,
    )


def thresholds_parse(values: Iterable[object]) -> list[int]:
    """Whole percentages from 1 to 1000, sorted, each once; ValueError says what is wrong."""
    out: set[int] = set()
    for value in values:
        text = str(value).strip().rstrip("%").strip()
        if not text:
            continue
        try:
            number = int(text)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a whole percentage, e.g. 80") from exc
        if not 1 <= number <= MAX_THRESHOLD:
            raise ValueError(f"{number} % is outside 1 to {MAX_THRESHOLD} %")
        out.add(number)
    return sorted(out)


# --- Tags --------------------------------------------------------------------------------------


def tag_matches(tags: Mapping[str, str], *, key: str, value: str) -> bool:
    """Does a tag set carry ``key=value``? Matched as allocation rules match: case does not
    matter, nor the AWS ``user:`` prefix; an empty ``key`` matches every tag set."""
    if not key:
        return True
    return normalise_tags(tags).get(normalise_key(key)) == normalise_value(value)


# --- Words and pictures ------------------------------------------------------------------------


def cumulative(
    daily: Mapping[dt.date, Decimal], *, month: dt.date, data_until: dt.date | None
) -> list[tuple[dt.date, Decimal]]:
    """Spend to date at the end of each day of the month that has data so far."""
    days = days_elapsed(month=month, data_until=data_until)
    total, out = ZERO, []
    for offset in range(days):
        day = month + dt.timedelta(days=offset)
        total += daily.get(day, ZERO)
        out.append((day, total))
    return out


def burn_chart(
    points: list[tuple[dt.date, Decimal]],
    *,
    month: dt.date,
    amount: Decimal,
    currency: str,
    trend: Decimal | None,
    freeze_at: int | None,
) -> dict:
    """Cumulative spend by day against the budget line, and the trend to month end."""
    last_day = month + dt.timedelta(days=days_in_month(month) - 1)
    hover = f"%{{y:,.2f}} {currency}"
    fig = go.Figure()
    fig.add_scatter(
        name="Spend to date",
        x=[d.isoformat() for d, _ in points],
        y=[float(v) for _, v in points],
        mode="lines+markers",
        line_color="#2856c7",
        hovertemplate=f"{hover}<extra>spend to date</extra>",
    )
    if points and trend is not None and points[-1][0] < last_day:
        fig.add_scatter(
            name="Projected to month end",
            x=[points[-1][0].isoformat(), last_day.isoformat()],
            y=[float(points[-1][1]), float(trend)],
            mode="lines",
            line={"color": "#2856c7", "dash": "dot"},
            hovertemplate=f"{hover}<extra>trend</extra>",
        )
    edges = [month.isoformat(), last_day.isoformat()]
    fig.add_scatter(
        name="Budget",
        x=edges,
        y=[float(amount)] * 2,
        mode="lines",
        line={"color": "#1e7b34", "width": 2},
        hovertemplate=f"{hover}<extra>budget</extra>",
    )
    if freeze_at and freeze_at != 100:
        fig.add_scatter(
            name=f"Freeze at {freeze_at} %",
            x=edges,
            y=[float(amount * freeze_at / 100)] * 2,
            mode="lines",
            line={"color": "#c0392b", "dash": "dash"},
            hovertemplate=f"{hover}<extra>freeze</extra>",
        )
    fig.update_layout(
        xaxis_title="Usage day (UTC)",
        xaxis_type="date",
        xaxis_range=edges,
        xaxis_tickformat="%d %b",
        yaxis_title=f"Cumulative cost ({currency})",
        yaxis_tickformat=",.2~f",
        yaxis_rangemode="tozero",
        **CHART_LAYOUT,
    )
    return json.loads(fig.to_json())
