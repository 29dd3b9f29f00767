"""Hooks through which apps above the registry add to what it shows, without being imported.

``costs`` registers the actual cost per 1k invocations of model versions (what their
endpoints cost over what they served) in its ``AppConfig.ready()``; the comparison page
shows it beside the benchmark's predicted cost per 1k requests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import NamedTuple


class ActualCost(NamedTuple):
    """What a version's endpoints cost per 1k invocations in one month."""

    per_1k: Decimal
    currency: str
    month: dt.date  # the first day of the billing month


ActualCostProvider = Callable[[Sequence[int]], dict[int, ActualCost]]
_actual_cost_providers: list[ActualCostProvider] = []


def register_actual_cost_provider(provider: ActualCostProvider) -> None:
    if provider not in _actual_cost_providers:
        _actual_cost_providers.append(provider)


def actual_costs(version_ids: Sequence[int]) -> dict[int, ActualCost]:
    """Per version id, the latest month's actual cost per 1k invocations, where one is known.

    The caller passes only versions the person may read; the first provider to answer for a
    version wins.
    """
    ids = list(version_ids)
    found: dict[int, ActualCost] = {}
    if not ids:
        return found
    for provider in _actual_cost_providers:
        for version_id, cost in provider(ids).items():
            found.setdefault(version_id, cost)
    return found
