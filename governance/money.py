"""Rounding money to a currency's minor unit, and splitting a total so the parts add up."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# ISO 4217 currencies whose minor unit is not 1/100.
_EXPONENTS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of ``currency`` an invoice can show (0.01 for USD, 1 for JPY)."""
    return Decimal(1).scaleb(-_EXPONENTS.get(currency.upper(), 2))


def money_round(amount: Decimal, currency: str) -> Decimal:
    """Round half away from zero to the currency's minor unit, as invoices do."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def money_distribute(
    parts: Mapping[K, Decimal], currency: str, *, total: Decimal | None = None
) -> dict[K, Decimal]:
    """Round each part so the rounded parts sum exactly to the rounded total.

    Largest-remainder method: every part is rounded down to the minor unit, then the units
    still missing from the total go, one each, to the parts that lost the most. Ties go to
    the larger part, then to the key order given, so the result is stable.

    ``total`` is an already-rounded amount to split instead (a business unit's line, split
    over its services); it may differ from the parts' own rounded sum by a unit or two, which
    is then taken from, or given to, the parts whose rounding mattered least or most.
    """
    if not parts:
        return {}
    unit = minor_unit(currency)
    if total is None:
        total = money_round(sum(parts.values(), Decimal(0)), currency)
    floors = {k: v.quantize(unit, rounding=ROUND_FLOOR) for k, v in parts.items()}
    missing = int((total - sum(floors.values(), Decimal(0))) / unit)
    order = [
        key
        for _, key in sorted(
            enumerate(parts),
            key=lambda item: (parts[item[1]] - floors[item[1]], parts[item[1]], -item[0]),
            reverse=True,
        )
    ]
    result = dict(floors)
    step = unit if missing >= 0 else -unit
    if missing < 0:
        order.reverse()
    for index in range(abs(missing)):
        result[order[index % len(order)]] += step
    return result


_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money_format(amount: Decimal, currency: str, *, symbol: bool = False) -> str:
    """``32923.5, "USD"`` -> ``32,923.50 USD`` (or ``$32,923.50`` with ``symbol``): rounded
    to the currency's minor unit and grouped. The one way money is written in text."""
    currency = currency.upper()
    value = money_round(Decimal(amount), currency)
    places = -minor_unit(currency).as_tuple().exponent
    text = f"{value:,.{places}f}"
    sign = _SYMBOLS.get(currency) if symbol else None
    return f"{sign}{text}" if sign else f"{text} {currency}"
