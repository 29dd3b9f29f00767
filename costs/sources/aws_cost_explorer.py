"""AWS Cost Explorer ``get_cost_and_usage`` answers into FOCUS rows. Pure: plain data, no ORM.

Cost Explorer groups by at most two dimensions, and grouping one day by two different tag
keys in two calls would count that day twice. So a sync asks once, grouped by SERVICE and the
*first* cost allocation tag key of the account (SERVICE and LINKED_ACCOUNT when it has none);
further keys are reported as unused. Each group of each day becomes one FOCUS row: billed cost
is the unblended cost, effective cost the amortised cost, quantity the usage quantity.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

METRICS = ("UnblendedCost", "AmortizedCost", "UsageQuantity")

# The FOCUS columns written; the Foundation FOCUS adapter reads them back.
COLUMNS = (
    "BilledCost",
    "EffectiveCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargeCategory",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ProviderName",
    "ServiceName",
    "SubAccountId",
    "Tags",
)

# Storage keeps ten decimal places; Cost Explorer sometimes writes amounts as 1.2E-7.
_PLACES = Decimal("1e-10")


class CostExplorerError(ValueError):
    """An answer this module cannot turn into rows; the message says what was wrong."""


@dataclass(frozen=True)
class Grouping:
    """How one sync groups Cost Explorer's answer: SERVICE plus one tag key or the account."""

    tag_key: str | None

    def group_by(self) -> list[dict[str, str]]:
        second = (
            {"Type": "TAG", "Key": self.tag_key}
            if self.tag_key
            else {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}
        )
        return [{"Type": "DIMENSION", "Key": "SERVICE"}, second]


def ce_tag_key(key: str) -> str:
    """Cost Explorer names user tags without the ``user:`` prefix that CUR columns carry."""
    key = key.strip()
    for prefix in ("resourceTags/", "resource_tags/"):
        if key.lower().startswith(prefix.lower()):
            key = key[len(prefix) :]
    return key[5:] if key.lower().startswith("user:") else key


def grouping_for(tag_keys: Sequence[str]) -> tuple[Grouping, list[str]]:
    """The grouping for an account's allocation tag keys, and the keys it leaves unread."""
    keys = [k for k in (ce_tag_key(str(key)) for key in tag_keys) if k]
    unique = list(dict.fromkeys(keys))
    if not unique:
        return Grouping(tag_key=None), []
    return Grouping(tag_key=unique[0]), unique[1:]


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    first = day.replace(day=1)
    return (first + dt.timedelta(days=32)).replace(day=1)


def query_period(start: dt.date, end: dt.date, *, today: dt.date) -> tuple[dt.date, dt.date]:
    """Widen ``[start, end)`` to whole billing months, never past tomorrow.

    An import replaces a whole month of the account, so a run must read whole months: a run
    for the 5th to the 10th that imported only those days would drop the rest of the month.
    """
    if start >= end:
        raise CostExplorerError(f"the period {start} to {end} is empty")
    first = month_start(start)
    last = next_month(end - dt.timedelta(days=1))
    cap = max(today + dt.timedelta(days=1), first + dt.timedelta(days=1))
    return first, min(last, cap)


def months(start: dt.date, end: dt.date) -> list[dt.date]:
    """First days of the months that ``[start, end)`` touches."""
    out, month = [], month_start(start)
    while month < end:
        out.append(month)
        month = next_month(month)
    return out


def _amount(metrics: dict[str, Any], name: str, where: str) -> tuple[Decimal, str]:
    metric = metrics.get(name) or {}
    raw = metric.get("Amount", "0")
    try:
        value = Decimal(str(raw))
    except InvalidOperation as exc:
        raise CostExplorerError(f"{where}: {name} {raw!r} is not a number") from exc
    if not value.is_finite():
        raise CostExplorerError(f"{where}: {name} {raw!r} is not a number")
    return value.quantize(_PLACES, rounding=ROUND_HALF_EVEN), str(metric.get("Unit") or "")


def _day(text: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(text)[:10])
    except ValueError as exc:
        raise CostExplorerError(f"{where}: {text!r} is not a date") from exc


def _tags(key: str, grouping: Grouping, where: str) -> dict[str, str]:
    """``team$research`` -> {"team": "research"}; ``team$`` (untagged) -> {}."""
    tag_key, sep, value = key.partition("$")
    if not sep:
        raise CostExplorerError(f"{where}: group key {key!r} is not a tag key$value pair")
    tag_key = tag_key or (grouping.tag_key or "")
    return {tag_key: value} if value else {}


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def focus_rows(
    pages: Iterable[dict[str, Any]],
    *,
    account_id: str,
    account_name: str,
    grouping: Grouping,
) -> list[dict[str, str]]:
    """One FOCUS row per (day, group) with a non-zero amount, from every answer page."""
    rows = []
    for page_number, page in enumerate(pages, start=1):
        for result in page.get("ResultsByTime") or []:
            period = result.get("TimePeriod") or {}
            where = f"Cost Explorer page {page_number}, {period.get('Start', '?')}"
            start = _day(period.get("Start", ""), where)
            end = _day(period.get("End", ""), where) if period.get("End") else start
            end = max(end, start + dt.timedelta(days=1))
            for group in result.get("Groups") or []:
                keys = list(group.get("Keys") or [])
                if len(keys) != 2:
                    raise CostExplorerError(f"{where}: expected two group keys, got {keys!r}")
                metrics = group.get("Metrics") or {}
                billed, currency = _amount(metrics, "UnblendedCost", where)
                effective, effective_currency = _amount(metrics, "AmortizedCost", where)
                quantity, unit = _amount(metrics, "UsageQuantity", where)
                if not (billed or effective or quantity):
                    continue
                currency = (currency or effective_currency).upper()
                if not currency:
                    raise CostExplorerError(f"{where}: no currency on group {keys!r}")
                tags = _tags(keys[1], grouping, where) if grouping.tag_key else {}
                first, after = month_start(start), next_month(start)
                rows.append(
                    {
                        "BilledCost": _text(billed),
                        "EffectiveCost": _text(effective),
                        "BillingAccountId": account_id,
                        "BillingAccountName": account_name,
                        "BillingCurrency": currency,
                        "BillingPeriodStart": f"{first:%Y-%m-%d} 00:00:00",
                        "BillingPeriodEnd": f"{after:%Y-%m-%d} 00:00:00",
                        "ChargeCategory": "Usage",
                        "ChargePeriodStart": f"{start:%Y-%m-%d} 00:00:00",
                        "ChargePeriodEnd": f"{end:%Y-%m-%d} 00:00:00",
                        "ConsumedQuantity": _text(quantity),
                        "ConsumedUnit": "" if unit in ("", "N/A") else unit,
                        "ProviderName": "AWS",
                        "ServiceName": str(keys[0]),
                        "SubAccountId": "" if grouping.tag_key else str(keys[1]),
                        "Tags": json.dumps(tags, ensure_ascii=False, sort_keys=True),
                    }
                )
    return rows


def rows_by_month(rows: Iterable[dict[str, str]]) -> dict[dt.date, list[dict[str, str]]]:
    out: dict[dt.date, list[dict[str, str]]] = {}
    for row in rows:
        out.setdefault(dt.date.fromisoformat(row["BillingPeriodStart"][:10]), []).append(row)
    return out


def write_focus(path: Path, rows: Iterable[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path
