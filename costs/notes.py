"""What costs tells an approver about a request: its share of the unit's remaining budget."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

from costs import selectors
from governance.money import money_format


def budget_share_note(request) -> str | None:
    """E.g. "38 % of Research's remaining budget for November 2026 (60,526.32 USD left of …)".

    Only the unit's whole-unit budgets in the request's currency count (not project ones).
    """
    today = timezone.now().date()
    month = dt.date(today.year, today.month, 1)
    budgets = list(
        selectors.budget_active_list(month=month).filter(
            business_unit_id=request.business_unit_id, currency=request.currency, tag_key=""
        )
    )
    if not budgets:
        return None
    budget = budgets[0]
    spend = selectors.budget_spend(budgets=[budget], month=month)[budget.pk].spend
    remaining = budget.amount - spend
    unit = request.business_unit.name
    total = money_format(budget.amount, budget.currency)
    if remaining <= 0:
        spent = money_format(spend, budget.currency)
        return f"{unit} has no budget left for {month:%B %Y} ({spent} of {total} spent)."
    share = (request.estimated_cost * 100 / remaining).quantize(Decimal(1), ROUND_HALF_UP)
    return (
        f"{share} % of {unit}'s remaining budget for {month:%B %Y} "
        f"({money_format(remaining, budget.currency)} left of {total})."
    )
