"""Hooks through which apps above the registry add to what it shows, without being imported.

``costs`` registers the actual cost per 1k invocations of model versions (what their
endpoints cost over what they served) in its ``AppConfig.ready()``; the comparison page
shows it beside the benchmark's predicted cost per 1k requests. It also lists the TCO
scenarios attached to a capacity assessment on the assessment's page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from governance.extensions import RelatedItem  # one line of a page's "Related" section


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


# --- Retirement: what an endpoint costs, and who can act on it in its cloud ------------------


class EndpointCost(NamedTuple):
    """What an endpoint cost over the days asked for, as billed."""

    amount: Decimal
    currency: str


EndpointCostProvider = Callable[[Sequence[int], dt.date, dt.date], dict[int, EndpointCost]]
_endpoint_cost_providers: list[EndpointCostProvider] = []


def register_endpoint_cost_provider(provider: EndpointCostProvider) -> None:
    if provider not in _endpoint_cost_providers:
        _endpoint_cost_providers.append(provider)


def endpoint_costs(
    endpoint_ids: Sequence[int], start: dt.date, end: dt.date
) -> dict[int, EndpointCost]:
    """Per endpoint id, its billed cost of the usage days ``start`` to ``end`` (exclusive)."""
    ids = list(endpoint_ids)
    found: dict[int, EndpointCost] = {}
    for provider in _endpoint_cost_providers if ids else ():
        for endpoint_id, cost in provider(ids, start, end).items():
            found.setdefault(endpoint_id, cost)
    return found


class ActuatorError(Exception):
    """The cloud refused or failed an action; the message says what it answered."""


class EndpointActuator(Protocol):
    """Changes an endpoint in its cloud (``costs.retirement_aws`` and ``retirement_gcp``).
    Each method returns the provider's answer (JSON-able) and raises :class:`ActuatorError`
    when the call fails; ``plan`` describes the call that would be made without making it
    (dry runs)."""

    provider: str

    def plan(self, endpoint, action: str, *, min_instances: int = 1) -> dict: ...

    def scale_min(self, endpoint, *, min_instances: int) -> dict: ...

    def delete(self, endpoint) -> dict: ...

    def restore(self, endpoint, *, evidence: dict) -> dict: ...


_actuators: dict[str, Callable[[], EndpointActuator]] = {}


def register_endpoint_actuator(provider: str, factory: Callable[[], EndpointActuator]) -> None:
    _actuators[provider] = factory


def endpoint_actuator(provider: str) -> EndpointActuator | None:
    factory = _actuators.get(provider)
    return factory() if factory else None


# --- Assessments: what other apps link to a capacity assessment -----------------------------


AssessmentPanel = Callable[[Any, Any], Iterable[RelatedItem | tuple[str, str, str]]]
_assessment_panels: list[AssessmentPanel] = []


def register_assessment_panel(panel: AssessmentPanel) -> None:
    """``panel(assessment, user)`` returns the records of its app attached to the assessment
    (``costs`` lists the TCO scenarios); ``user`` is who reads the page, for scoping."""
    if panel not in _assessment_panels:
        _assessment_panels.append(panel)


def assessment_related(assessment: Any, *, user: Any = None) -> list[RelatedItem]:
    """What other apps link to ``assessment``, panel by panel, in registration order."""
    items: list[RelatedItem] = []
    for panel in _assessment_panels:
        for item in panel(assessment, user):
            items.append(item if isinstance(item, RelatedItem) else RelatedItem(*item))
    return items
