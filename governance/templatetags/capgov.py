"""Template helpers: money with its currency, dates in UTC with a hover title, charts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import template
from django.utils.html import format_html

from governance.money import money_format

register = template.Library()


@register.filter
def money(amount: Decimal | str | None, currency: str = "") -> str:
    """``32923.5, "USD"`` -> ``32,923.50 USD``: grouped, the currency's decimals."""
    if amount is None or amount == "":
        return "—"
    if currency:
        return money_format(Decimal(amount), currency)
    return f"{Decimal(amount).quantize(Decimal('0.01')):,.2f}"


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
