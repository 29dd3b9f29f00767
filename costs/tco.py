"""Total cost of ownership: on-prem against cloud for one long-running inference workload.

Pure: plain ``Decimal`` inputs, a result of plain data. Per year:

- on-prem = capex ÷ depreciation years + energy (kW x PUE x hours x price per kWh) +
  operations; it is paid whatever the utilisation;
- cloud on-demand = hourly price x hours x utilisation (only the hours used are paid);
- cloud committed = committed hourly price x hours, paid whatever the utilisation;
- break-even utilisation = on-prem ÷ cloud on-demand at full use: below it the cloud is
  cheaper, above it on-prem is;
- per 1M requests, where the throughput is known: each year's cost ÷ the requests served in
  it (throughput x 3,600 x hours x utilisation).

Money is rounded to the currency's minor unit at the end (the parts of the on-prem cost by
largest remainder, so they add up to its total), percentages to two decimals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

from governance.money import money_distribute, money_round

HOURS_PER_YEAR = 8760
MAX_HOURS_PER_YEAR = 8784  # a leap year
# Enough digits that the extremes the inputs allow (a tiny throughput at a tiny utilisation
# makes a huge cost per 1M requests) still round to the cent instead of failing.
PRECISION = Context(prec=80)
PERCENT = Decimal("0.01")
SECONDS_PER_HOUR = 3600
MILLION = Decimal(1_000_000)
ZERO = Decimal(0)
HUNDRED = Decimal(100)


class TcoError(ValueError):
    """Inputs that cannot be costed; ``errors`` maps each input to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {text}" for name, text in errors.items()))


@dataclass(frozen=True)
class TcoInputs:
    """One workload: the on-prem hardware and its running costs, the cloud's prices."""

    capex: Decimal
    depreciation_years: int
    power_kw: Decimal
    pue: Decimal
    price_per_kwh: Decimal
    operations_per_year: Decimal
    cloud_on_demand_hourly: Decimal
    cloud_committed_hourly: Decimal | None = None
    utilisation_percent: Decimal = HUNDRED
    hours_per_year: int = HOURS_PER_YEAR
    requests_per_second: Decimal | None = None
    currency: str = "USD"


def tco_validate(inputs: TcoInputs) -> dict[str, str]:
    """What is wrong with each input, by name (empty when every input can be costed)."""
    errors: dict[str, str] = {}

    def positive(name: str, value: Decimal | None, what: str) -> None:
        if value is not None and value <= 0:
            errors[name] = f"{what} must be above 0 (got {value})."

    positive("capex", inputs.capex, "The hardware's purchase price")
    if inputs.depreciation_years < 1:
        errors["depreciation_years"] = (
            f"Depreciate over at least 1 year (got {inputs.depreciation_years})."
        )
    positive("power_kw", inputs.power_kw, "The power draw in kW")
    if inputs.pue < 1:
        errors["pue"] = (
            f"PUE is the facility's power over the IT power, so it is 1 or more (got "
            f"{inputs.pue}); 1.2 to 1.6 is typical."
        )
    positive("price_per_kwh", inputs.price_per_kwh, "The price per kWh")
    if inputs.operations_per_year < 0:
        errors["operations_per_year"] = (
            f"Operations cost a year cannot be negative (got {inputs.operations_per_year})."
        )
    positive("cloud_on_demand_hourly", inputs.cloud_on_demand_hourly, "The on-demand price")
    positive("cloud_committed_hourly", inputs.cloud_committed_hourly, "The committed price")
    if not ZERO < inputs.utilisation_percent <= HUNDRED:
        errors["utilisation_percent"] = (
            f"Utilisation is a share of the year's hours: above 0 and at most 100 % (got "
            f"{inputs.utilisation_percent})."
        )
    if not 1 <= inputs.hours_per_year <= MAX_HOURS_PER_YEAR:
        errors["hours_per_year"] = (
            f"A year has 1 to {MAX_HOURS_PER_YEAR:,} hours (got {inputs.hours_per_year}); "
            f"{HOURS_PER_YEAR:,} is a full year."
        )
    positive("requests_per_second", inputs.requests_per_second, "The throughput")
    return errors


@dataclass(frozen=True)
class PerMillion:
    """Cost of 1M requests served, where the throughput is known."""

    on_prem: Decimal
    cloud_on_demand: Decimal
    cloud_committed: Decimal | None


@dataclass(frozen=True)
class TcoResult:
    """One year of each option, at the scenario's utilisation, rounded for display."""

    currency: str
    utilisation_percent: Decimal
    hours_per_year: int
    energy_kwh: Decimal
    depreciation: Decimal
    energy: Decimal
    operations: Decimal
    on_prem: Decimal
    cloud_on_demand_full: Decimal
    cloud_on_demand: Decimal
    cloud_committed: Decimal | None
    break_even_percent: Decimal
    committed_break_even_percent: Decimal | None
    requests_per_second: Decimal | None
    requests_per_year: Decimal | None
    per_million: PerMillion | None
    cheapest: str
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The JSON shape kept on a saved scenario and answered by the API (decimal strings)."""

        def text(value: Decimal | None) -> str | None:
            return None if value is None else f"{value:f}"

        return {
            "currency": self.currency,
            "utilisation_percent": text(self.utilisation_percent),
            "hours_per_year": self.hours_per_year,
            "energy_kwh": text(self.energy_kwh),
            "on_prem": {
                "depreciation": text(self.depreciation),
                "energy": text(self.energy),
                "operations": text(self.operations),
                "total": text(self.on_prem),
            },
            "cloud_on_demand_full": text(self.cloud_on_demand_full),
            "cloud_on_demand": text(self.cloud_on_demand),
            "cloud_committed": text(self.cloud_committed),
            "break_even_percent": text(self.break_even_percent),
            "committed_break_even_percent": text(self.committed_break_even_percent),
            "requests_per_second": text(self.requests_per_second),
            "requests_per_year": text(self.requests_per_year),
            "per_million_requests": None
            if self.per_million is None
            else {
                "on_prem": text(self.per_million.on_prem),
                "cloud_on_demand": text(self.per_million.cloud_on_demand),
                "cloud_committed": text(self.per_million.cloud_committed),
            },
            "cheapest": self.cheapest,
            "notes": list(self.notes),
        }


OPTION_LABELS = {
    "on_prem": "On-prem",
    "cloud_on_demand": "Cloud on-demand",
    "cloud_committed": "Cloud committed",
}


def _percent(value: Decimal) -> Decimal:
    return value.quantize(PERCENT, rounding=ROUND_HALF_UP)


def tco_compute(inputs: TcoInputs) -> TcoResult:
    """The year of each option at the inputs' utilisation; raises :class:`TcoError`."""
    errors = tco_validate(inputs)
    if errors:
        raise TcoError(errors)
    with localcontext(PRECISION):
        return _compute(inputs)


def _compute(inputs: TcoInputs) -> TcoResult:
    currency = inputs.currency
    hours = Decimal(inputs.hours_per_year)
    share = inputs.utilisation_percent / HUNDRED

    depreciation = inputs.capex / inputs.depreciation_years
    energy_kwh = inputs.power_kw * inputs.pue * hours
    energy = energy_kwh * inputs.price_per_kwh
    on_prem = depreciation + energy + inputs.operations_per_year
    full = inputs.cloud_on_demand_hourly * hours
    on_demand = full * share
    committed = (
        inputs.cloud_committed_hourly * hours if inputs.cloud_committed_hourly is not None else None
    )

    on_prem_total = money_round(on_prem, currency)
    parts = money_distribute(
        {
            "depreciation": depreciation,
            "energy": energy,
            "operations": inputs.operations_per_year,
        },
        currency,
        total=on_prem_total,
    )
    break_even = _percent(on_prem / full * HUNDRED)
    committed_break_even = _percent(committed / full * HUNDRED) if committed is not None else None

    per_million = requests = None
    if inputs.requests_per_second is not None:
        requests = inputs.requests_per_second * SECONDS_PER_HOUR * hours * share
        millions = requests / MILLION
        per_million = PerMillion(
            on_prem=money_round(on_prem / millions, currency),
            cloud_on_demand=money_round(on_demand / millions, currency),
            cloud_committed=(
                money_round(committed / millions, currency) if committed is not None else None
            ),
        )

    yearly = {"on_prem": on_prem, "cloud_on_demand": on_demand}
    if committed is not None:
        yearly["cloud_committed"] = committed
    cheapest = min(yearly, key=lambda key: (yearly[key], list(yearly).index(key)))

    notes = []
    if break_even > HUNDRED:
        notes.append(
            "On-prem costs more than the cloud on-demand even at full use: the cloud is "
            "cheaper at any utilisation."
        )
    if committed is not None and committed >= full:
        notes.append(
            "The committed price is not below on-demand at full use: committing saves nothing."
        )
    return TcoResult(
        currency=currency,
        utilisation_percent=_percent(inputs.utilisation_percent),
        hours_per_year=inputs.hours_per_year,
        energy_kwh=energy_kwh.quantize(PERCENT, rounding=ROUND_HALF_UP),
        depreciation=parts["depreciation"],
        energy=parts["energy"],
        operations=parts["operations"],
        on_prem=on_prem_total,
        cloud_on_demand_full=money_round(full, currency),
        cloud_on_demand=money_round(on_demand, currency),
        cloud_committed=money_round(committed, currency) if committed is not None else None,
        break_even_percent=break_even,
        committed_break_even_percent=committed_break_even,
        requests_per_second=inputs.requests_per_second,
        requests_per_year=requests.quantize(Decimal(1), rounding=ROUND_HALF_UP)
        if requests is not None
        else None,
        per_million=per_million,
        cheapest=cheapest,
        notes=notes,
    )


def tco_curve(inputs: TcoInputs, *, steps: int = 20) -> dict[str, list[Decimal]]:
    """Each option's yearly cost at utilisation 0 %, 5 %, … 100 % (for the chart).

    On-prem and committed capacity cost the same at any utilisation; on-demand grows with it.
    """
    errors = tco_validate(inputs)
    if errors:
        raise TcoError(errors)
    with localcontext(PRECISION):
        return _curve(inputs, steps)


def _curve(inputs: TcoInputs, steps: int) -> dict[str, list[Decimal]]:
    hours = Decimal(inputs.hours_per_year)
    on_prem = (
        inputs.capex / inputs.depreciation_years
        + inputs.power_kw * inputs.pue * hours * inputs.price_per_kwh
        + inputs.operations_per_year
    )
    levels = [HUNDRED * i / steps for i in range(steps + 1)]
    curve: dict[str, list[Decimal]] = {
        "utilisation": [_percent(level) for level in levels],
        "on_prem": [money_round(on_prem, inputs.currency)] * len(levels),
        "cloud_on_demand": [
            money_round(inputs.cloud_on_demand_hourly * hours * level / HUNDRED, inputs.currency)
            for level in levels
        ],
    }
    if inputs.cloud_committed_hourly is not None:
        committed = money_round(inputs.cloud_committed_hourly * hours, inputs.currency)
        curve["cloud_committed"] = [committed] * len(levels)
    return curve
