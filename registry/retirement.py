"""Is an endpoint idle? The retirement verdict from plain data. Pure: no Django.

Missing data is not zero traffic: a window with a day the usage sync never reported is not
idle, and neither is an endpoint younger than the window. Every "no" says why, so the page
can tell an owner why an endpoint was or was not flagged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from governance.money import money_format


@dataclass(frozen=True)
class Verdict:
    idle: bool
    reason: str
    window: list[tuple[str, int | None]] = field(default_factory=list)  # (day, invocations)
    monthly_cost: Decimal | None = None
    currency: str = ""
    cost_basis: str = ""
    days_since_last_request: int | None = None

    def as_dict(self) -> dict:
        return {
            "idle": self.idle,
            "reason": self.reason,
            "window": [{"day": day, "invocations": n} for day, n in self.window],
            "monthly_cost": None if self.monthly_cost is None else str(self.monthly_cost),
            "currency": self.currency,
            "cost_basis": self.cost_basis,
            "days_since_last_request": self.days_since_last_request,
        }


def _normal(text: str) -> str:
    return text.strip().lower()


def has_tag(tags: Mapping[str, object], key: str, value: str) -> bool:
    """Tag keys and values compare without case or surrounding spaces."""
    return any(
        _normal(k) == _normal(key) and _normal(str(v)) == _normal(value) for k, v in tags.items()
    )


def evaluate(
    *,
    today: dt.date,
    window_days: int,
    max_daily_invocations: int,
    min_monthly_cost: Decimal,
    policy_currency: str,
    usage: Mapping[dt.date, int],
    created: dt.date | None,
    tags: Mapping[str, object],
    exempt_tag: tuple[str, str],
    exemption: tuple[dt.date, str] | None,
    monthly_cost: Decimal | None,
    currency: str,
    cost_basis: str = "",
    last_request: dt.date | None = None,
) -> Verdict:
    """The verdict over the ``window_days`` full days before ``today``."""
    days = [today - dt.timedelta(days=n) for n in range(window_days, 0, -1)]
    window = [(day.isoformat(), usage.get(day)) for day in days]
    since = (today - last_request).days if last_request else None
    base = {
        "window": window,
        "monthly_cost": monthly_cost,
        "currency": currency,
        "cost_basis": cost_basis,
        "days_since_last_request": since,
    }

    def no(reason: str) -> Verdict:
        return Verdict(idle=False, reason=reason, **base)

    key, value = exempt_tag
    if key and has_tag(tags, key, value):
        return no(f"Tagged {key}={value}: exempt from retirement.")
    if exemption and exemption[0] >= today:
        return no(f"Kept by its owner until {exemption[0]:%Y-%m-%d}: {exemption[1]}")
    if created is None:
        return no("Its age is unknown (no creation time and no usage yet); not judged.")
    if created > days[0]:
        return no(
            f"Younger than the {window_days}-day window (created {created:%Y-%m-%d}); "
            "judged once it has a full window of traffic."
        )
    missing = [day for day in days if day not in usage]
    if missing:
        return no(
            f"Usage is missing for {len(missing)} of the {window_days} days (first "
            f"{missing[0]:%Y-%m-%d}); missing data is not zero traffic, so it is not flagged."
        )
    busiest = max(usage[day] for day in days)
    if busiest >= max_daily_invocations:
        return no(
            f"In use: up to {busiest:,} requests a day in the last {window_days} days "
            f"(idle means fewer than {max_daily_invocations:,} every day)."
        )
    if min_monthly_cost > 0:
        if monthly_cost is None:
            return no("Idle, but its cost is unknown; a case needs a cost worth acting on.")
        if currency != policy_currency:
            return no(
                f"Idle, but it is billed in {currency} and the policy's minimum is in "
                f"{policy_currency}."
            )
        if monthly_cost < min_monthly_cost:
            return no(
                f"Idle, but it costs {money_format(monthly_cost, currency)} a month, under the "
                f"policy's minimum of {money_format(min_monthly_cost, policy_currency)}."
            )
    total = sum(usage[day] for day in days)
    cost = f", costs {money_format(monthly_cost, currency)} a month" if monthly_cost else ""
    return Verdict(
        idle=True,
        reason=f"Idle: {total:,} requests in {window_days} days (under "
        f"{max_daily_invocations:,} every day){cost}.",
        **base,
    )
