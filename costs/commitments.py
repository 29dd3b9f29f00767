"""Sizing a capacity commitment (committed-use, savings plan, reserved). Pure, no Django.

Commit what the pool is almost sure to use: the floor of the low quantile of its forecast
GPUs. A commitment is paid whether it is used or not, at the on-demand rate less the
discount; the saving is what the same GPUs would have cost on demand. Break-even
utilisation is the share of the committed GPU-hours that must be used for the commitment
to cost no more than paying on demand for them: committed cost ÷ on-demand cost at full
use (100 % - the discount). The risk table says what happens if usage falls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
RATE = Decimal("0.000001")
HUNDRED = Decimal(100)
HOURS_PER_YEAR = 8760
DEFAULT_FALLS = (10, 25, 50)


class CommitmentError(ValueError):
    """Inputs a commitment cannot be sized from; the message says which and why."""


@dataclass(frozen=True)
class RiskRow:
    """What a commitment does if usage falls by ``fall_percent`` from the low quantile."""

    fall_percent: int
    used_gpus: Decimal
    wasted_cost: Decimal  # committed spend on GPUs nobody uses, a year
    net_saving: Decimal  # on-demand cost of the used GPUs - the commitment's cost, a year

    def as_dict(self) -> dict[str, str | int]:
        return {
            "fall_percent": self.fall_percent,
            "used_gpus": f"{self.used_gpus:f}",
            "wasted_cost": f"{self.wasted_cost:f}",
            "net_saving": f"{self.net_saving:f}",
        }


@dataclass(frozen=True)
class Commitment:
    """A recommended commitment with its yearly money (rounded to cents) and its risk."""

    low_quantile_gpus: Decimal
    commit_gpus: int
    term_years: int
    hours_per_year: int
    on_demand_rate: Decimal
    discount_percent: Decimal
    committed_rate: Decimal
    annual_cost: Decimal
    annual_on_demand_cost: Decimal
    annual_saving: Decimal
    break_even_percent: Decimal
    risk: tuple[RiskRow, ...]

    @property
    def term_cost(self) -> Decimal:
        """What the whole term costs (the purchase an approval request asks for)."""
        return self.annual_cost * self.term_years

    @property
    def term_hours(self) -> int:
        return self.hours_per_year * self.term_years


def _decimal(value: object, what: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except ArithmeticError as exc:
        raise CommitmentError(f"{what} is not a number: {value!r}.") from exc
    if not number.is_finite():
        raise CommitmentError(f"{what} is not a finite number: {value!r}.")
    return number


def commitment_size(
    *,
    low_quantile_gpus: Decimal,
    on_demand_rate: Decimal,
    discount_percent: Decimal,
    term_years: int,
    hours_per_year: int = HOURS_PER_YEAR,
    falls: Sequence[int] = DEFAULT_FALLS,
) -> Commitment:
    """Size a commitment from the low quantile of forecast GPUs.

    ``on_demand_rate`` is per GPU-hour; the commitment's rate is that less
    ``discount_percent``. Money is rounded to cents (half up) once, at the end.
    """
    low = _decimal(low_quantile_gpus, "The low quantile of GPUs")
    rate = _decimal(on_demand_rate, "The on-demand rate")
    discount = _decimal(discount_percent, "The discount")
    if low < 0:
        raise CommitmentError(f"The low quantile of GPUs cannot be negative ({low}).")
    if rate <= 0:
        raise CommitmentError(f"The on-demand rate per GPU-hour must be above 0 ({rate}).")
    if not 0 < discount < HUNDRED:
        raise CommitmentError(f"The discount is a percent above 0 and below 100 ({discount}).")
    if isinstance(term_years, bool) or not isinstance(term_years, int) or term_years < 1:
        raise CommitmentError(f"The term is a whole number of years, 1 or more ({term_years!r}).")
    if isinstance(hours_per_year, bool) or not isinstance(hours_per_year, int):
        raise CommitmentError(f"Hours per year is a whole number ({hours_per_year!r}).")
    if not 1 <= hours_per_year <= 8784:
        raise CommitmentError(f"Hours per year is from 1 to 8,784 ({hours_per_year}).")
    for fall in falls:
        if not 0 <= fall <= 100:
            raise CommitmentError(f"A fall in usage is a percent from 0 to 100 ({fall}).")
    commit = int(low.to_integral_value(rounding=ROUND_FLOOR))
    committed_rate = rate * (HUNDRED - discount) / HUNDRED
    hours = Decimal(hours_per_year)
    cost = Decimal(commit) * hours * committed_rate
    on_demand = Decimal(commit) * hours * rate
    risk = []
    for fall in falls:
        used = min(Decimal(commit), low * (HUNDRED - fall) / HUNDRED)
        wasted = (Decimal(commit) - used) * hours * committed_rate
        net = used * hours * rate - cost
        risk.append(
            RiskRow(
                fall_percent=fall,
                used_gpus=used.quantize(CENT, ROUND_HALF_UP),
                wasted_cost=wasted.quantize(CENT, ROUND_HALF_UP),
                net_saving=net.quantize(CENT, ROUND_HALF_UP),
            )
        )
    return Commitment(
        low_quantile_gpus=low,
        commit_gpus=commit,
        term_years=term_years,
        hours_per_year=hours_per_year,
        on_demand_rate=rate,
        discount_percent=discount,
        committed_rate=committed_rate.quantize(RATE, ROUND_HALF_UP),
        annual_cost=cost.quantize(CENT, ROUND_HALF_UP),
        annual_on_demand_cost=on_demand.quantize(CENT, ROUND_HALF_UP),
        annual_saving=(on_demand - cost).quantize(CENT, ROUND_HALF_UP),
        break_even_percent=(committed_rate * HUNDRED / rate).quantize(CENT, ROUND_HALF_UP),
        risk=tuple(risk),
    )
