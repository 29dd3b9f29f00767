"""Template helpers: money with its currency, dates in UTC with a hover title, charts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import template
from django.utils.html import format_html

from governance.money import minor_unit, money_round

register = template.Library()


@register.filter
def money(amount: Decimal | str | None, currency: str = "") -> str:
    """``32923.5, "USD"`` -> ``32,923.50 USD``: grouped, the currency's decimals."""
    if amount is None or amount == "":
        return "—"
    value = Decimal(amount)
    if currency:
        value = money_round(value, currency)
        places = -minor_unit(currency).as_tuple().exponent
    else:
        places = 2
        value = value.quantize(Decimal("0.01"))
    text = f"{value:,.{places}f}"
    return f"{text} {currency}".strip()


@register.filter
def number(amount) -> str:
    if amount is None:
        return "—"
    return f"{amount:,}"


@register.simple_tag
def utc(value: dt.datetime | None) -> str:
    """A timestamp shown in UTC, with the ISO form on hover."""
    if value is None:
        return "—"
    return format_html(
        '<time datetime="{}" title="{} UTC">{}</time>',
        value.isoformat(),
        value.strftime("%Y-%m-%d %H:%M:%S"),
        value.strftime("%d %b %Y %H:%M UTC"),
    )


@register.filter
def get(mapping: dict, key):
    return mapping.get(key) if mapping else None
