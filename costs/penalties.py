"""SLO attainment over a month and the SLA credit band it falls in. Pure: no Django.

Availability is the share of good requests when the days carry counts (each day weighted by
its traffic), else the mean of the daily percentages. p95 latency is attained on the share
of measured days whose p95 was at or under the target. Days without a measurement are
unknown and do not count either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from governance.money import money_round

HUNDRED = Decimal(100)


class BandError(ValueError):
    """A penalty policy's bands are not a usable list; the message says how to fix it."""


@dataclass(frozen=True)
class Measurement:
    value: Decimal
    good: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class Attainment:
    percent: Decimal
    days: int
    method: str  # "requests", "daily mean" or "days within target"

    def describe(self) -> str:
        return f"{self.percent.quantize(Decimal('0.001'))} % ({self.method}, {self.days} days)"


@dataclass(frozen=True, order=True)
class Band:
    below: Decimal
    credit_percent: Decimal

    def describe(self) -> str:
        return f"below {self.below.normalize():f} % → {self.credit_percent.normalize():f} %"


def attainment(
    *, indicator: str, target: Decimal, measurements: Sequence[Measurement]
) -> Attainment | None:
    """The month's attainment, or None when nothing was measured."""
    if not measurements:
        return None
    days = len(measurements)
    if indicator == "latency_p95":
        within = sum(1 for m in measurements if m.value <= target)
        return Attainment(Decimal(within) * HUNDRED / days, days, "days within target")
    if all(m.total for m in measurements):
        good = sum(m.good or 0 for m in measurements)
        total = sum(m.total or 0 for m in measurements)
        return Attainment(Decimal(good) * HUNDRED / total, days, "requests")
    mean = sum((m.value for m in measurements), Decimal(0)) / days
    return Attainment(mean, days, "daily mean")


def bands_parse(raw: object) -> list[Band]:
    """``[{"below": "99.9", "credit_percent": "10"}, ...]`` -> bands, highest level first."""
    if not isinstance(raw, list) or not raw:
        raise BandError('Bands are a list such as [{"below": "99.9", "credit_percent": "10"}].')
    bands = []
    for index, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or set(item) != {"below", "credit_percent"}:
            raise BandError(f"Band {index} needs exactly the keys 'below' and 'credit_percent'.")
        try:
            below = Decimal(str(item["below"]))
            credit = Decimal(str(item["credit_percent"]))
        except InvalidOperation as exc:
            raise BandError(f"Band {index}: 'below' and 'credit_percent' are numbers.") from exc
        if not (below.is_finite() and credit.is_finite()):
            raise BandError(f"Band {index}: 'below' and 'credit_percent' are finite numbers.")
        if not (0 < below <= HUNDRED) or not (0 < credit <= HUNDRED):
            raise BandError(f"Band {index}: both numbers are percentages above 0, at most 100.")
        bands.append(Band(below, credit))
    if len({b.below for b in bands}) != len(bands):
        raise BandError("Two bands start at the same level; give each level once.")
    ordered = sorted(bands, reverse=True)
    credits = [b.credit_percent for b in ordered]
    if credits != sorted(credits):
        raise BandError("A lower attainment must never credit less than a higher one.")
    return ordered


def band_for(percent: Decimal, bands: Iterable[Band]) -> Band | None:
    """The lowest band whose level the attainment is below (it credits the most)."""
    reached = [band for band in bands if percent < band.below]
    return min(reached) if reached else None


def credit(*, charge: Decimal, band: Band, currency: str) -> Decimal:
    """The band's percent of the (already rounded) charge, rounded half up to the minor unit."""
    exact = (charge * band.credit_percent / HUNDRED).quantize(
        Decimal("1e-10"), rounding=ROUND_HALF_UP
    )
    return money_round(exact, currency)
