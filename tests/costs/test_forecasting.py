"""The pure forecast: ETS with weekly seasonality, its interval, events, filled days, the
back-test and the anomalies outside the interval."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal as D

import pytest

from costs import forecasting

START = dt.date(2026, 1, 5)  # a Monday
WEEK = (0.0, 60.0, 80.0, 50.0, 20.0, -220.0, -280.0)  # Monday to Sunday, around the trend


def synthetic(seed: int, days: int = 180, noise: float = 30.0) -> dict[dt.date, D]:
    """A level of 1,000 a day rising by 2.5 a day, a weekly shape with quiet weekends, and
    Gaussian noise; fixed by ``seed``."""
    rng = random.Random(seed)  # noqa: S311 - test data, not a secret
    out = {}
    for n in range(days):
        day = START + dt.timedelta(days=n)
        value = 1000 + 2.5 * n + WEEK[day.weekday()] + rng.gauss(0, noise)
        out[day] = D(f"{value:.2f}")
    return out


def held_out(seed: int) -> tuple[dict, dict, dt.date]:
    """The first 150 days to learn from, the last 30 with a 3x spike on their 16th day."""
    series = synthetic(seed)
    days = sorted(series)
    history = {d: series[d] for d in days[:150]}
    actual = {d: series[d] for d in days[150:]}
    spike = days[165]
    actual[spike] = actual[spike] * 3
    return history, actual, spike


def test_forecast_of_a_seasonal_trend_is_within_10_percent_and_finds_the_spike():
    history, actual, spike = held_out(seed=7)
    result = forecasting.forecast(history, horizon_days=30)

    assert result.method == forecasting.SEASONAL
    assert result.history_end == max(history)
    assert len(result.ahead) == 30
    assert result.ahead[0].day == max(history) + dt.timedelta(days=1)
    clean = {d: v for d, v in actual.items() if d != spike}
    error = forecasting.mape(clean, result.ahead)
    assert error is not None
    assert error < 10, error
    found = forecasting.detect_anomalies(result.ahead, actual)
    assert [a.day for a in found] == [spike]
    assert found[0].direction == "above"
    assert found[0].size == actual[spike] - found[0].upper
    assert found[0].size > 1000


@pytest.mark.parametrize("seed", range(10))
def test_the_spike_and_only_the_spike_is_an_anomaly_whatever_the_noise(seed):
    """The default interval (99.9 %) is wide enough that none of the 29 ordinary held-out days
    of ten different noise draws falls outside it, and a 3x day always does."""
    history, actual, spike = held_out(seed)
    result = forecasting.forecast(history, horizon_days=30)
    clean = {d: v for d, v in actual.items() if d != spike}
    assert forecasting.mape(clean, result.ahead) < 10
    assert [a.day for a in forecasting.detect_anomalies(result.ahead, actual)] == [spike]


def test_points_are_decimal_ordered_and_the_interval_holds_the_expected_value():
    history, _, _ = held_out(seed=3)
    result = forecasting.forecast(history, horizon_days=30)
    for point in result.points:
        assert isinstance(point.expected, D)
        assert point.lower <= point.low_quantile <= point.expected <= point.upper
        assert point.lower >= 0
    assert [p.day for p in result.points] == sorted(p.day for p in result.points)
    # The history's days carry the model's fit, the days ahead the forecast.
    assert len(result.fitted) == 150
    assert all(p.fitted for p in result.fitted)
    # The interval widens with the horizon.
    first, last = result.ahead[0], result.ahead[-1]
    assert last.upper - last.lower > first.upper - first.lower


def test_a_wider_interval_is_wider_and_the_low_quantile_follows_its_percent():
    history, _, _ = held_out(seed=1)
    narrow = forecasting.forecast(history, horizon_days=7, interval_percent=D(80))
    wide = forecasting.forecast(history, horizon_days=7, interval_percent=D(99))
    for a, b in zip(narrow.ahead, wide.ahead, strict=True):
        assert b.upper - b.lower > a.upper - a.lower
    low5 = forecasting.forecast(history, horizon_days=7, low_quantile_percent=D(5))
    assert all(
        x.low_quantile < y.low_quantile for x, y in zip(low5.ahead, narrow.ahead, strict=True)
    )
    with pytest.raises(ValueError, match="prediction interval"):
        forecasting.forecast(history, interval_percent=D(100))
    with pytest.raises(ValueError, match="low quantile"):
        forecasting.forecast(history, low_quantile_percent=D(60))


def test_back_test_holds_out_the_last_weeks():
    assert forecasting.backtest_days(30) == 14
    assert forecasting.backtest_days(100) == 20
    assert forecasting.backtest_days(365) == 28
    history, _, _ = held_out(seed=2)
    result = forecasting.forecast(history, horizon_days=10)
    assert result.mape is not None
    assert D(0) < result.mape < 10


def test_short_histories_get_simpler_models_or_none():
    history = synthetic(seed=4, days=10)
    result = forecasting.forecast(history, horizon_days=5)
    assert result.method == forecasting.TREND_ONLY
    assert result.mape is None
    assert any("No back-test" in w for w in result.warnings)

    with pytest.raises(forecasting.ForecastRefusedError, match="at least 7 known days"):
        forecasting.forecast(synthetic(seed=4, days=6))
    with pytest.raises(forecasting.ForecastRefusedError, match="No history"):
        forecasting.forecast({})
    assert forecasting.method_for(13) == forecasting.TREND_ONLY
    assert forecasting.method_for(14) == forecasting.SEASONAL


def test_a_constant_history_is_forecast_as_that_constant():
    history = {START + dt.timedelta(days=n): D(96) for n in range(30)}
    result = forecasting.forecast(history, horizon_days=3)
    assert result.method == forecasting.CONSTANT
    assert {(p.expected, p.lower, p.upper) for p in result.ahead} == {(D(96), D(96), D(96))}
    assert result.mape == D(0)


def test_events_raise_the_days_they_cover_and_overlapping_ones_add_up():
    history, _, _ = held_out(seed=5)
    end = max(history)
    plain = forecasting.forecast(history, horizon_days=20)
    launch = forecasting.Event(end + dt.timedelta(days=5), end + dt.timedelta(days=9), D(20))
    promo = forecasting.Event(end + dt.timedelta(days=8), end + dt.timedelta(days=12), D(10))
    drop = forecasting.Event(end + dt.timedelta(days=15), end + dt.timedelta(days=15), D(-50))
    moved = forecasting.forecast(history, horizon_days=20, events=[launch, promo, drop])
    by_day = {p.day: p for p in plain.ahead}
    for point in moved.ahead:
        base = by_day[point.day]
        offset = (point.day - end).days
        uplift = {5: 20, 6: 20, 7: 20, 8: 30, 9: 30, 10: 10, 11: 10, 12: 10, 15: -50}.get(offset, 0)
        assert point.uplift_percent == uplift
        factor = (100 + D(uplift)) / 100
        for name in ("expected", "lower", "upper", "low_quantile"):
            assert getattr(point, name) == (getattr(base, name) * factor).quantize(
                forecasting.PLACES
            ), (point.day, name)


def test_a_past_event_is_taken_out_of_what_the_model_learns():
    """A launch that raised the last fortnight 40 % leaves the forecast at the usual level."""
    history, _, _ = held_out(seed=6)
    end = max(history)
    launch = forecasting.Event(end - dt.timedelta(days=13), end, D(40))
    raised = {d: v * D("1.4") if launch.covers(d) else v for d, v in history.items()}
    learnt = forecasting.forecast(raised, horizon_days=14, events=[launch])
    plain = forecasting.forecast(history, horizon_days=14)
    for a, b in zip(learnt.ahead, plain.ahead, strict=True):
        assert abs(a.expected - b.expected) / b.expected < D("0.03")


def test_left_out_and_missing_days_are_filled_from_the_same_weekday():
    history, _, _ = held_out(seed=8)
    days = sorted(history)
    outage = days[100]
    missing = days[101]
    broken = dict(history)
    broken[outage] = D(0)  # an outage: left out
    del broken[missing]  # no data that day
    series_days, values, filled = forecasting.regular_series(
        broken, history_end=days[-1], excluded=[outage]
    )
    assert filled == {outage, missing}
    assert series_days == days
    at = series_days.index(outage)
    week_before, week_after = (
        history[outage - dt.timedelta(days=7)],
        history[outage + dt.timedelta(days=7)],
    )
    assert values[at] == (week_before + week_after) / 2
    result = forecasting.forecast(broken, history_end=days[-1], excluded=[outage])
    assert result.filled_days == (outage, missing)
    assert result.known_days == 148


def test_fill_falls_back_to_the_nearest_days_when_no_week_around_is_known():
    known = {dt.date(2026, 3, 1): D(10), dt.date(2026, 3, 3): D(30)}
    _, values, filled = forecasting.regular_series(known, history_end=dt.date(2026, 3, 4))
    assert filled == {dt.date(2026, 3, 2), dt.date(2026, 3, 4)}
    assert values == [D(10), D(20), D(30), D(30)]


def test_detect_anomalies_gives_direction_and_size_from_the_nearer_bound():
    day = dt.date(2026, 6, 1)
    points = [
        forecasting.Point(day, D(100), D(80), D(120), D(85)),
        forecasting.Point(day + dt.timedelta(days=1), D(100), D(80), D(120), D(85)),
        forecasting.Point(day + dt.timedelta(days=2), D(100), D(80), D(120), D(85)),
        forecasting.Point(day + dt.timedelta(days=3), D(100), D(80), D(120), D(85)),
    ]
    actual = {day: D(150), day + dt.timedelta(days=1): D(60), day + dt.timedelta(days=2): D(120)}
    found = forecasting.detect_anomalies(points, actual)
    assert [(a.day, a.direction, a.size) for a in found] == [
        (day, "above", D(30)),
        (day + dt.timedelta(days=1), "below", D(-20)),
    ]


def test_statsmodels_warnings_are_returned_not_printed(recwarn):
    rng = random.Random(1)  # noqa: S311 - test data, not a secret
    spiky = {
        START + dt.timedelta(days=n): D(rng.choice(["0", "0", "0", "5000"])) for n in range(21)
    }
    result = forecasting.forecast(spiky, horizon_days=3)
    assert len(recwarn) == 0
    assert isinstance(result.warnings, tuple)
