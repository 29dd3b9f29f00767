"""Which approval policy applies to a request, and the steps it asks for: plain data only.

The service layer turns database rows into these dataclasses and back; this module knows
nothing about the ORM, so the rules can be read and tested on their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

SEQUENTIAL = "sequential"
PARALLEL = "parallel"
BU_OWNER = "bu_owner"
ROLE_PREFIX = "role:"
# Who is asked next when a step waits too long and the policy names nobody.
DEFAULT_ESCALATION_PATH: tuple[str, ...] = (BU_OWNER, f"{ROLE_PREFIX}platform_admin")
BUDGET_EXCEPTION = "budget_exception"


@dataclass(frozen=True)
class StepRule:
    """One step of a policy: ``required_approvals`` people holding ``role`` approve."""

    order: int
    role: str
    required_approvals: int = 1
    wait_hours: int = 24


@dataclass(frozen=True)
class PolicyRule:
    """A policy as the matcher sees it. An empty condition matches everything."""

    id: int | None
    name: str
    priority: int
    steps: tuple[StepRule, ...]
    is_active: bool = True
    kinds: frozenset[str] = frozenset()
    business_unit_ids: frozenset[int] = frozenset()
    min_cost: Decimal | None = None
    currency: str = "USD"
    min_gpu_hours: Decimal | None = None
    mode: str = SEQUENTIAL
    escalation_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestFacts:
    """What a policy decides on."""

    kind: str
    business_unit_id: int
    estimated_cost: Decimal
    currency: str
    gpu_hours: Decimal


@dataclass(frozen=True)
class StepPlan:
    """A step as it is copied onto a request: active now, or waiting for an earlier one."""

    order: int
    role: str
    required_approvals: int
    wait_hours: int
    active: bool


@dataclass(frozen=True)
class Plan:
    policy: PolicyRule | None
    steps: tuple[StepPlan, ...] = field(default=())
    mode: str = SEQUENTIAL
    escalation_path: tuple[str, ...] = DEFAULT_ESCALATION_PATH

    @property
    def needs_approval(self) -> bool:
        return bool(self.steps)


# Used when no policy of the organisation covers a budget exception (see ``plan_for``).
BUDGET_EXCEPTION_FALLBACK = PolicyRule(
    id=None,
    name="Built-in: a budget exception needs a platform admin",
    priority=0,
    steps=(StepRule(order=1, role="platform_admin", required_approvals=1, wait_hours=24),),
    kinds=frozenset({BUDGET_EXCEPTION}),
)


def policy_applies(policy: PolicyRule, facts: RequestFacts) -> bool:
    """All of the policy's conditions hold for the request.

    A cost threshold compares amounts in one currency only: a request in another currency
    does not meet it (there is no exchange rate here to pretend with).
    """
    if not policy.is_active:
        return False
    if policy.kinds and facts.kind not in policy.kinds:
        return False
    if policy.business_unit_ids and facts.business_unit_id not in policy.business_unit_ids:
        return False
    if policy.min_cost is not None and (
        facts.currency.upper() != policy.currency.upper() or facts.estimated_cost < policy.min_cost
    ):
        return False
    return policy.min_gpu_hours is None or facts.gpu_hours >= policy.min_gpu_hours


def policy_choose(policies: Iterable[PolicyRule], facts: RequestFacts) -> PolicyRule | None:
    """The applicable active policy with the lowest priority (then name), or None."""
    matching = [p for p in policies if policy_applies(p, facts)]
    if not matching:
        return None
    return min(matching, key=lambda p: (p.priority, p.name))


def steps_plan(steps: Sequence[StepRule], *, mode: str) -> tuple[StepPlan, ...]:
    """The steps in order; in sequence only the first is active, in parallel all of them."""
    ordered = sorted(steps, key=lambda s: s.order)
    return tuple(
        StepPlan(
            order=s.order,
            role=s.role,
            required_approvals=s.required_approvals,
            wait_hours=s.wait_hours,
            active=mode == PARALLEL or index == 0,
        )
        for index, s in enumerate(ordered)
    )


def plan_for(policies: Iterable[PolicyRule], facts: RequestFacts) -> Plan:
    """The policy that applies and the steps it puts on the request; no policy, no steps.

    A budget exception lifts a deployment freeze when it is approved, so it is never
    approved without anyone looking: when no policy covers it, the built-in one applies.
    """
    policy = policy_choose(policies, facts)
    if policy is None and facts.kind == BUDGET_EXCEPTION:
        policy = BUDGET_EXCEPTION_FALLBACK
    if policy is None:
        return Plan(policy=None)
    return Plan(
        policy=policy,
        steps=steps_plan(policy.steps, mode=policy.mode),
        mode=policy.mode,
        escalation_path=tuple(policy.escalation_path) or DEFAULT_ESCALATION_PATH,
    )


def due_at(activated_at: datetime, wait_hours: int) -> datetime:
    """When a step that became active at ``activated_at`` escalates."""
    return activated_at + timedelta(hours=wait_hours)


def escalation_target_valid(entry: str, roles: Iterable[str]) -> bool:
    """``bu_owner`` or ``role:<one of roles>``."""
    if entry == BU_OWNER:
        return True
    return entry.startswith(ROLE_PREFIX) and entry.removeprefix(ROLE_PREFIX) in set(roles)


def next_active_orders(steps: Sequence[tuple[int, str]], *, mode: str) -> list[int]:
    """After a step is approved: the orders of the steps to activate now.

    ``steps`` are (order, status) pairs with the statuses ``waiting``, ``active``,
    ``approved``, ``rejected`` or ``cancelled``. In sequence, the lowest waiting step opens
    once nothing before it is still open; in parallel nothing waits.
    """
    if mode == PARALLEL:
        return []
    open_ = [order for order, status in steps if status == "active"]
    if open_:
        return []
    waiting = sorted(order for order, status in steps if status == "waiting")
    return waiting[:1]
