"""The fiscal calendar: which fiscal year and quarter a day falls in. Pure, no Django.

The fiscal year starts on the first day of ``start_month`` (1 = January … 12 = December,
``CAPGOV_FISCAL_YEAR_START_MONTH``) and is named by the calendar year it **ends** in: with
a February start, FY2027 runs from 1 February 2026 to 31 January 2027 (so 15 March 2026 is
FY2027 Q1); with a January start the fiscal year is the calendar year. Each quarter is three
whole calendar months, the first starting with the fiscal year.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class FiscalError(ValueError):
    """A fiscal year, quarter or start month that does not exist; the message says why."""


def start_month_check(value: object) -> int:
    """The start month as an int from 1 to 12, or ``FiscalError`` saying what to give."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 12:
        raise FiscalError(
            f"{value!r} is not a month: the fiscal year starts in a month from 1 (January) "
            "to 12 (December)."
        )
    return value


def _add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True, order=True)
class FiscalQuarter:
    """One quarter of a fiscal year, under a calendar starting in ``start_month``."""

    fiscal_year: int
    quarter: int
    start_month: int = 1

    def __post_init__(self) -> None:
        start_month_check(self.start_month)
        if not 1 <= self.quarter <= 4:
            raise FiscalError(f"Quarter {self.quarter!r} does not exist: give 1, 2, 3 or 4.")
        if not 1901 <= self.fiscal_year <= 9998:
            raise FiscalError(f"FY{self.fiscal_year} is out of range (1901 to 9998).")

    @property
    def label(self) -> str:
        return f"FY{self.fiscal_year} Q{self.quarter}"

    def __str__(self) -> str:
        return self.label

    @property
    def fiscal_year_start(self) -> dt.date:
        """The first day of the fiscal year (in the calendar year before, unless January)."""
        year = self.fiscal_year if self.start_month == 1 else self.fiscal_year - 1
        return dt.date(year, self.start_month, 1)

    @property
    def first_month(self) -> dt.date:
        return _add_months(self.fiscal_year_start, 3 * (self.quarter - 1))

    @property
    def months(self) -> tuple[dt.date, dt.date, dt.date]:
        """The first day of each of the quarter's three calendar months."""
        first = self.first_month
        return (first, _add_months(first, 1), _add_months(first, 2))

    @property
    def last_month(self) -> dt.date:
        return self.months[-1]

    @property
    def last_day(self) -> dt.date:
        return _add_months(self.first_month, 3) - dt.timedelta(days=1)

    def next(self) -> FiscalQuarter:
        if self.quarter == 4:
            return FiscalQuarter(self.fiscal_year + 1, 1, self.start_month)
        return FiscalQuarter(self.fiscal_year, self.quarter + 1, self.start_month)

    def previous(self) -> FiscalQuarter:
        if self.quarter == 1:
            return FiscalQuarter(self.fiscal_year - 1, 4, self.start_month)
        return FiscalQuarter(self.fiscal_year, self.quarter - 1, self.start_month)

    def contains(self, day: dt.date) -> bool:
        return self.first_month <= day <= self.last_day


def fiscal_year_of(day: dt.date, *, start_month: int = 1) -> int:
    """The fiscal year ``day`` falls in, named by the calendar year it ends in."""
    start_month_check(start_month)
    return day.year + 1 if start_month > 1 and day.month >= start_month else day.year


def quarter_of(day: dt.date, *, start_month: int = 1) -> FiscalQuarter:
    """The fiscal quarter ``day`` falls in."""
    year = fiscal_year_of(day, start_month=start_month)
    quarter = (day.month - start_month) % 12 // 3 + 1
    return FiscalQuarter(year, quarter, start_month)


def describe(start_month: int) -> str:
    """In words, e.g. "February to January; FY2027 ends in January 2027"."""
    start_month_check(start_month)
    end = MONTH_NAMES[(start_month - 2) % 12]
    return (
        f"{MONTH_NAMES[start_month - 1]} to {end}; a fiscal year is named by the calendar year "
        "it ends in"
    )
