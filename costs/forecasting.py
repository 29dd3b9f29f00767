"""Daily forecasts with prediction intervals, and the days that fall outside them. Pure.

The model is statsmodels' ETS (:class:`~statsmodels.tsa.exponential_smoothing.ets.ETSModel`):
additive error, additive damped trend and additive weekly seasonality (``ETS(A,Ad,A)``,
seasonal period 7). Shorter histories get simpler models: under two full weeks of known days
there is no seasonality (``ETS(A,Ad,N)``), under a week there is no forecast at all
(:class:`ForecastRefusedError` says why). A history whose every known day has the same value is
forecast as that constant, with a zero-width interval.

The series the model learns from is regular — one value per day from the first known day to
``history_end`` — although the history given may have holes:

- a day left out (an exclusion: an incident, an outage, an anomaly already recorded) or
  missing (no data) is *filled*: with the mean of the known values on the same weekday one
  week before and one week after; failing those, two, three, then four weeks away; failing
  all of those, by straight-line interpolation between the nearest known days before and
  after (or the nearest known day, at an end). Filled days never count in the back-test;
- a day inside a business event is divided by the event's uplift before training, so the
  model learns the baseline; the uplift is applied again to the days ahead.

Each day ahead gets the expected value, the prediction interval (``interval_percent``, by
default 99.9 %), and a low quantile (by default the 10th percentile, which commitments are
sized from); business events raise or lower all four by their uplift (overlapping events add
up: +20 % and +10 % make +30 %), and nothing is below zero. The days of the history get the
model's one-step-ahead fit with the same interval, for the chart.

The back-test holds out the last 14 to 28 days of the history (a fifth of it, within those
bounds), fits the same kind of model on the rest, and reports the mean absolute percentage
error of its forecast over the held-out known days with a value above zero.

Inputs and outputs are ``Decimal``; floats exist only at the statsmodels boundary.
Convergence and other warnings from statsmodels are caught and returned, never printed.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

ZERO = Decimal(0)
HUNDRED = Decimal(100)
PLACES = Decimal("0.0001")  # what the points are stored with
MAPE_PLACES = Decimal("0.01")
SEASON = 7
MIN_DAYS = 7  # fewer known days than this: no forecast
SEASONAL_DAYS = 2 * SEASON  # fewer: no weekly seasonality
BACKTEST_MIN, BACKTEST_MAX = 14, 28
FILL_WEEKS = 4
DEFAULT_INTERVAL = Decimal("99.9")  # see CAPGOV_FORECAST_INTERVAL_PERCENT
DEFAULT_LOW_QUANTILE = Decimal(10)

SEASONAL = "ETS(A,Ad,A) weekly"
TREND_ONLY = "ETS(A,Ad,N)"
CONSTANT = "constant"


class ForecastRefusedError(ValueError):
    """There is no forecast to make; the message says why and what would change it."""


@dataclass(frozen=True)
class Event:
    """A business event: from ``starts_on`` to ``ends_on`` (both included) the subject's values
    are ``uplift_percent`` higher (negative: lower)."""

    starts_on: dt.date
    ends_on: dt.date
    uplift_percent: Decimal
    name: str = ""

    def covers(self, day: dt.date) -> bool:
        return self.starts_on <= day <= self.ends_on


@dataclass(frozen=True)
class Point:
    """One day of a forecast. ``fitted``: a day of the history (the model's one-step fit),
    not a day ahead."""

    day: dt.date
    expected: Decimal
    lower: Decimal
    upper: Decimal
    low_quantile: Decimal
    uplift_percent: Decimal = ZERO
    fitted: bool = False


@dataclass(frozen=True)
class Result:
    """A fitted forecast: the method, the days it learnt from, its points and back-test."""

    method: str
    history_start: dt.date
    history_end: dt.date
    interval_percent: Decimal
    low_quantile_percent: Decimal
    points: tuple[Point, ...]
    mape: Decimal | None
    known_days: int
    filled_days: tuple[dt.date, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def ahead(self) -> tuple[Point, ...]:
        return tuple(p for p in self.points if not p.fitted)

    @property
    def fitted(self) -> tuple[Point, ...]:
        return tuple(p for p in self.points if p.fitted)


class Interval(Protocol):
    """Anything with a day and an interval: a :class:`Point` or a stored forecast point."""

    day: dt.date
    expected: Decimal
    lower: Decimal
    upper: Decimal


@dataclass(frozen=True)
class Anomaly:
    """A day whose actual value fell outside its interval. ``size`` is the actual minus the
    nearer bound: positive above the interval, negative below it."""

    day: dt.date
    actual: Decimal
    expected: Decimal
    lower: Decimal
    upper: Decimal
    size: Decimal
    direction: str  # "above" or "below"


# --- Events --------------------------------------------------------------------------------------


def uplift_on(day: dt.date, events: Iterable[Event]) -> Decimal:
    """The summed uplift of the events covering ``day``, in percent (never -100 or below)."""
    total = sum((e.uplift_percent for e in events if e.covers(day)), ZERO)
    return max(total, Decimal(-99))


def with_uplift(value: Decimal, uplift: Decimal, *, replacing: Decimal = ZERO) -> Decimal:
    """``value`` carrying ``uplift`` percent instead of the ``replacing`` percent it carries,
    as a point stores it (never below zero)."""
    return max(value * (HUNDRED + uplift) / (HUNDRED + replacing), ZERO).quantize(PLACES)


# --- The regular series -----------------------------------------------------------------------


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from ``first`` to ``last``, both included."""
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def regular_series(
    history: Mapping[dt.date, Decimal],
    *,
    history_end: dt.date,
    excluded: Iterable[dt.date] = (),
    events: Sequence[Event] = (),
) -> tuple[list[dt.date], list[Decimal], set[dt.date]]:
    """The days from the first known day to ``history_end``, one value each, and the days
    filled (see the module's docstring). Known days inside events are deflated."""
    left_out = set(excluded)
    known = {
        day: Decimal(value) * HUNDRED / (HUNDRED + uplift_on(day, events))
        for day, value in history.items()
        if day <= history_end and day not in left_out
    }
    if not known:
        return [], [], set()
    days = days_between(min(known), history_end)
    values: list[Decimal] = []
    filled: set[dt.date] = set()
    ordered = sorted(known)
    for day in days:
        if day in known:
            values.append(known[day])
            continue
        filled.add(day)
        values.append(_fill(day, known, ordered))
    return days, values, filled


def _fill(day: dt.date, known: Mapping[dt.date, Decimal], ordered: list[dt.date]) -> Decimal:
    for weeks in range(1, FILL_WEEKS + 1):
        step = dt.timedelta(days=SEASON * weeks)
        around = [known[d] for d in (day - step, day + step) if d in known]
        if around:
            return sum(around, ZERO) / len(around)
    before = [d for d in ordered if d < day]
    after = [d for d in ordered if d > day]
    if before and after:
        a, b = before[-1], after[0]
        share = Decimal((day - a).days) / Decimal((b - a).days)
        return known[a] + (known[b] - known[a]) * share
    return known[before[-1]] if before else known[after[0]]


# --- Fitting ------------------------------------------------------------------------------------


def method_for(known_days: int) -> str:
    """The model a history of ``known_days`` gets (ForecastRefusedError under a week)."""
    if known_days < MIN_DAYS:
        raise ForecastRefusedError(
            f"Only {known_days} day{'s' if known_days != 1 else ''} of history: a forecast "
            f"needs at least {MIN_DAYS} known days (and {SEASONAL_DAYS} for weekly "
            "seasonality). It will be made once more days have data."
        )
    return TREND_ONLY if known_days < SEASONAL_DAYS else SEASONAL


@dataclass
class _Fit:
    method: str
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    low: np.ndarray
    params: np.ndarray | None


def _fit(
    values: Sequence[Decimal],
    *,
    method: str,
    steps: int,
    alpha: float,
    low_alpha: float,
    caught: list[str],
    start_params: np.ndarray | None = None,
) -> _Fit:
    """Fit ``values`` and predict them (one step ahead) and ``steps`` days beyond."""
    # Imported here, not with the module: statsmodels and pandas take seconds to load, and
    # every process (web, worker, command) loads this module at start-up (through
    # costs.forecasts, which the URLs and the incidents app import); only a refresh fits.
    import numpy as np
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    # A pandas series, not an array: statsmodels' prediction results need an index.
    y = pd.Series([float(v) for v in values], dtype=float)
    total = len(y) + steps
    if float(y.max() - y.min()) == 0.0:
        flat = np.full(total, float(y.iloc[-1]))
        return _Fit(CONSTANT, flat, flat, flat, flat, None)
    seasonal = method == SEASONAL
    options = {
        "error": "add",
        "trend": "add",
        "damped_trend": True,
        "seasonal": "add" if seasonal else None,
        "seasonal_periods": SEASON if seasonal else None,
    }
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            model = ETSModel(y, initialization_method="heuristic", **options)
        except ValueError:  # too short for the heuristic start: estimate it instead
            model = ETSModel(y, initialization_method="estimated", **options)
        try:
            result = model.fit(disp=False, start_params=start_params)
        except ValueError:
            result = model.fit(disp=False)
        prediction = result.get_prediction(start=0, end=total - 1)
        band = prediction.summary_frame(alpha=alpha)
        low = prediction.summary_frame(alpha=low_alpha)["pi_lower"].to_numpy()
    for warning in seen:
        caught.append(f"{warning.category.__name__}: {warning.message}")
    mean = band["mean"].to_numpy()
    lower, upper = band["pi_lower"].to_numpy(), band["pi_upper"].to_numpy()
    if not (np.isfinite(mean).all() and np.isfinite(lower).all() and np.isfinite(upper).all()):
        raise ForecastRefusedError(
            f"The {method} model did not give finite predictions for this history; "
            "check the history for extreme values or leave the odd days out."
        )
    return _Fit(method, mean, lower, upper, low, np.asarray(result.params))


def _decimal(value: float) -> Decimal:
    return max(Decimal(repr(float(value))), ZERO).quantize(PLACES)


def _mape(actual: Sequence[Decimal], predicted: Sequence[Decimal]) -> Decimal | None:
    errors = [abs(a - p) / a for a, p in zip(actual, predicted, strict=True) if a > 0]
    if not errors:
        return None
    return (sum(errors, ZERO) / len(errors) * HUNDRED).quantize(MAPE_PLACES)


def backtest_days(known_days: int) -> int:
    """How many of the last days the back-test holds out: a fifth, from 14 to 28."""
    return min(BACKTEST_MAX, max(BACKTEST_MIN, known_days // 5))


def _backtest(
    days: list[dt.date],
    values: list[Decimal],
    filled: set[dt.date],
    *,
    alpha: float,
    low_alpha: float,
    caught: list[str],
) -> tuple[Decimal | None, _Fit | None]:
    known = len(days) - len(filled)
    hold = backtest_days(known)
    train_known = sum(1 for d in days[:-hold] if d not in filled)
    if train_known < MIN_DAYS:
        caught.append(
            f"No back-test: {known} known days leave fewer than {MIN_DAYS} to train on "
            f"once the last {hold} are held out."
        )
        return None, None
    method = method_for(train_known)
    fit = _fit(
        values[:-hold],
        method=method,
        steps=hold,
        alpha=alpha,
        low_alpha=low_alpha,
        caught=caught,
    )
    predicted = [_decimal(v) for v in fit.mean[-hold:]]
    pairs = [
        (actual, guess)
        for day, actual, guess in zip(days[-hold:], values[-hold:], predicted, strict=True)
        if day not in filled
    ]
    return _mape([a for a, _ in pairs], [g for _, g in pairs]), fit


def _percent_alpha(percent: Decimal, *, name: str) -> float:
    if not ZERO < percent < HUNDRED:
        raise ValueError(f"{name} must be above 0 and below 100 %, not {percent} %")
    return float((HUNDRED - percent) / HUNDRED)


def forecast(
    history: Mapping[dt.date, Decimal],
    *,
    history_end: dt.date | None = None,
    horizon_days: int = 90,
    interval_percent: Decimal = DEFAULT_INTERVAL,
    low_quantile_percent: Decimal = DEFAULT_LOW_QUANTILE,
    events: Sequence[Event] = (),
    excluded: Iterable[dt.date] = (),
    backtest: bool = True,
) -> Result:
    """Fit the history (day -> value; a missing day is unknown, not zero) and forecast the
    ``horizon_days`` after ``history_end`` (default: the last day of the history).

    Raises :class:`ForecastRefusedError` when there are fewer than 7 known days, and ValueError
    for a percentage out of range or a horizon below one day.
    """
    if horizon_days < 1:
        raise ValueError(f"the horizon must be at least 1 day, not {horizon_days}")
    alpha = _percent_alpha(Decimal(interval_percent), name="the prediction interval")
    if not ZERO < Decimal(low_quantile_percent) < Decimal(50):
        raise ValueError(
            f"the low quantile must be above 0 and below 50 %, not {low_quantile_percent} %"
        )
    low_alpha = float(Decimal(low_quantile_percent) * 2 / HUNDRED)
    end = history_end or (max(history) if history else None)
    if end is None:
        raise ForecastRefusedError("No history: there is nothing to forecast from yet.")
    days, values, filled = regular_series(
        history, history_end=end, excluded=excluded, events=events
    )
    known = len(days) - len(filled)
    method = method_for(known)
    caught: list[str] = []
    if len(filled) * 2 > len(days):
        caught.append(
            f"{len(filled)} of {len(days)} days were filled (left out or without data): "
            "the forecast rests on few real days."
        )
    mape, trial = (
        _backtest(days, values, filled, alpha=alpha, low_alpha=low_alpha, caught=caught)
        if backtest
        else (None, None)
    )
    warm = trial.params if trial is not None and trial.method == method else None
    fit = _fit(
        values,
        method=method,
        steps=horizon_days,
        alpha=alpha,
        low_alpha=low_alpha,
        caught=caught,
        start_params=warm,
    )
    ahead = days_between(end + dt.timedelta(days=1), end + dt.timedelta(days=horizon_days))
    points = []
    for i, day in enumerate([*days, *ahead]):
        is_fitted = i < len(days)
        uplift = ZERO if is_fitted else uplift_on(day, events)
        expected, lower, upper, low = (
            _decimal(float(v)) for v in (fit.mean[i], fit.lower[i], fit.upper[i], fit.low[i])
        )
        if uplift:
            expected, lower, upper, low = (
                with_uplift(v, uplift) for v in (expected, lower, upper, low)
            )
        points.append(
            Point(
                day=day,
                expected=expected,
                lower=min(lower, expected),
                upper=max(upper, expected),
                low_quantile=min(low, expected),
                uplift_percent=uplift,
                fitted=is_fitted,
            )
        )
    return Result(
        method=fit.method,
        history_start=days[0],
        history_end=end,
        interval_percent=Decimal(interval_percent),
        low_quantile_percent=Decimal(low_quantile_percent),
        points=tuple(points),
        mape=mape,
        known_days=known,
        filled_days=tuple(sorted(filled)),
        warnings=tuple(dict.fromkeys(caught)),
    )


# --- Anomalies ----------------------------------------------------------------------------------


def detect_anomalies(
    points: Iterable[Interval], actuals: Mapping[dt.date, Decimal]
) -> list[Anomaly]:
    """The days with an actual value outside their point's interval, by day."""
    found = []
    for point in sorted(points, key=lambda p: p.day):
        actual = actuals.get(point.day)
        if actual is None:
            continue
        if actual > point.upper:
            size, direction = actual - point.upper, "above"
        elif actual < point.lower:
            size, direction = actual - point.lower, "below"
        else:
            continue
        found.append(
            Anomaly(
                day=point.day,
                actual=actual,
                expected=point.expected,
                lower=point.lower,
                upper=point.upper,
                size=size,
                direction=direction,
            )
        )
    return found


def mape(actuals: Mapping[dt.date, Decimal], points: Iterable[Interval]) -> Decimal | None:
    """Mean absolute percentage error of the points against the actual values (days with an
    actual above zero only); None when no day can be compared."""
    pairs = [(actuals[p.day], p.expected) for p in points if actuals.get(p.day, ZERO) > 0]
    return _mape([a for a, _ in pairs], [e for _, e in pairs])
