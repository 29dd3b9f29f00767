"""The fiscal calendar: years named by the calendar year they end in, quarters of three months."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from costs.fiscal import FiscalError, FiscalQuarter, describe, fiscal_year_of, quarter_of

D = dt.date


@pytest.mark.parametrize(
    ("start", "day", "year", "quarter", "months"),
    [
        # January: the fiscal year is the calendar year.
        (1, D(2026, 1, 1), 2026, 1, ("2026-01", "2026-02", "2026-03")),
        (1, D(2026, 12, 31), 2026, 4, ("2026-10", "2026-11", "2026-12")),
        # April (the UK, India, Japan): FY2027 runs April 2026 to March 2027.
        (4, D(2026, 3, 31), 2026, 4, ("2026-01", "2026-02", "2026-03")),
        (4, D(2026, 4, 1), 2027, 1, ("2026-04", "2026-05", "2026-06")),
        (4, D(2026, 12, 3), 2027, 3, ("2026-10", "2026-11", "2026-12")),
        # July (Australia): FY2027 runs July 2026 to June 2027.
        (7, D(2026, 6, 30), 2026, 4, ("2026-04", "2026-05", "2026-06")),
        (7, D(2026, 7, 1), 2027, 1, ("2026-07", "2026-08", "2026-09")),
        (7, D(2027, 2, 14), 2027, 3, ("2027-01", "2027-02", "2027-03")),
        # October (the US federal year): FY2027 runs October 2026 to September 2027.
        (10, D(2026, 9, 30), 2026, 4, ("2026-07", "2026-08", "2026-09")),
        (10, D(2026, 10, 1), 2027, 1, ("2026-10", "2026-11", "2026-12")),
        (10, D(2027, 1, 5), 2027, 2, ("2027-01", "2027-02", "2027-03")),
        # February (retail): FY2027 starts in February 2026 and ends in January 2027.
        (2, D(2026, 1, 31), 2026, 4, ("2025-11", "2025-12", "2026-01")),
        (2, D(2026, 2, 1), 2027, 1, ("2026-02", "2026-03", "2026-04")),
        (2, D(2027, 1, 15), 2027, 4, ("2026-11", "2026-12", "2027-01")),
    ],
)
def test_quarter_of_a_day(start, day, year, quarter, months):
    fq = quarter_of(day, start_month=start)
    assert (fq.fiscal_year, fq.quarter) == (year, quarter)
    assert fiscal_year_of(day, start_month=start) == year
    assert tuple(f"{m:%Y-%m}" for m in fq.months) == months
    assert fq.contains(day)
    assert fq.first_month <= day <= fq.last_day


def test_february_start_names_fy2027_from_february_2026():
    fq = FiscalQuarter(2027, 1, 2)
    assert fq.label == "FY2027 Q1"
    assert fq.fiscal_year_start == D(2026, 2, 1)
    assert FiscalQuarter(2027, 4, 2).last_day == D(2027, 1, 31)
    assert describe(2).startswith("February to January")


@pytest.mark.parametrize("start", [1, 2, 4, 7, 10])
def test_quarters_follow_each_other_without_gap(start):
    fq = quarter_of(D(2026, 5, 17), start_month=start)
    for _ in range(9):
        following = fq.next()
        assert following.first_month == fq.last_day + dt.timedelta(days=1)
        assert following.previous() == fq
        fq = following


def test_next_quarter_rolls_into_the_next_fiscal_year():
    assert FiscalQuarter(2026, 4, 1).next() == FiscalQuarter(2027, 1, 1)
    assert FiscalQuarter(2027, 4, 7).next().first_month == D(2027, 7, 1)
    assert FiscalQuarter(2027, 1, 10).previous() == FiscalQuarter(2026, 4, 10)


@pytest.mark.parametrize("bad", [0, 13, -1, True, "4"])
def test_start_month_out_of_range_is_refused(bad):
    with pytest.raises(FiscalError, match="from 1 \\(January\\) to 12 \\(December\\)"):
        quarter_of(D(2026, 1, 1), start_month=bad)


def test_quarter_five_does_not_exist():
    with pytest.raises(FiscalError, match="give 1, 2, 3 or 4"):
        FiscalQuarter(2027, 5, 1)


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("CAPGOV_FISCAL_YEAR_START_MONTH", "13", "is not a month"),
        ("CAPGOV_FISCAL_YEAR_START_MONTH", "x", "is not an integer"),
        ("CAPGOV_PLANNING_OPENS_DAYS_BEFORE", "0", "from 1 to 180"),
        ("CAPGOV_PLAN_OVERAGE_MULTIPLIER", "0.5", "at least 1"),
        ("CAPGOV_PLAN_CONFLICT_ESCALATION", "board,ceo", "is not board, bu_owners"),
    ],
)
def test_settings_refuse_bad_planning_values(name, raw, message):
    """The settings module fails loudly at start-up, naming the variable and the fix."""
    env = {**os.environ, name: raw}
    result = subprocess.run(
        [sys.executable, "-c", "import governance.settings"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr
    assert message in result.stderr
