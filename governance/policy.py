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


# How a request fares against one threshold of a policy.
MET = "met"
BELOW = "below"
# The request's currency is not the policy's: with no exchange rate to compare by, the
# threshold counts as met (fail closed), so choosing a currency cannot dodge a policy.
OTHER_CURRENCY = "other_currency"
COST = "cost"
GPU_HOURS = "gpu_hours"


@dataclass(frozen=True)
class ThresholdCheck:
    """One threshold of one policy whose kind and business-unit conditions hold."""

    policy: PolicyRule
    measure: str  # COST or GPU_HOURS
    threshold: Decimal
    outcome: str  # MET, BELOW or OTHER_CURRENCY

    @property
    def counts_as_met(self) -> bool:
        return self.outcome in (MET, OTHER_CURRENCY)


@dataclass(frozen=True)
class Plan:
    policy: PolicyRule | None
    steps: tuple[StepPlan, ...] = field(default=())
    mode: str = SEQUENTIAL
    escalation_path: tuple[str, ...] = DEFAULT_ESCALATION_PATH
    # Every threshold looked at, of every active policy that covers the kind and unit.
    checks: tuple[ThresholdCheck, ...] = field(default=())

    @property
    def needs_approval(self) -> bool:
        return bool(self.steps)

    @property
    def currency_fail_closed(self) -> tuple[ThresholdCheck, ...]:
        """The chosen policy's cost thresholds that count as met only for want of a rate."""
        if self.policy is None:
            return ()
        return tuple(
            c for c in self.checks if c.policy == self.policy and c.outcome == OTHER_CURRENCY
        )


# Used when no policy of the organisation covers a budget exception (see ``plan_for``).
BUDGET_EXCEPTION_FALLBACK = PolicyRule(
    id=None,
    name="Built-in: a budget exception needs a platform admin",
    priority=0,
    steps=(StepRule(order=1, role="platform_admin", required_approvals=1, wait_hours=24),),
    kinds=frozenset({BUDGET_EXCEPTION}),
)


CURRENCY_HELP = "A three-letter ISO 4217 code such as USD, EUR or GBP (letters A-Z only)."


def currency_code_parse(value: object) -> str | None:
    """``" usd "`` -> ``"USD"``; None unless it is three ASCII letters as typed.

    Checked before upper-casing: the dotless i upper-cases to ``"I"`` and ``"ß"`` to ``"SS"``,
    so a non-ASCII code could otherwise turn into a valid-looking one.
    """
    if not isinstance(value, str):
        return None
    code = value.strip()
    if len(code) != 3 or not all("A" <= c <= "Z" or "a" <= c <= "z" for c in code):
        return None
    return code.upper()


def _covers(policy: PolicyRule, facts: RequestFacts) -> bool:
    """The policy is active and its kind and business-unit conditions hold."""
    if not policy.is_active:
        return False
    if policy.kinds and facts.kind not in policy.kinds:
        return False
    return not (policy.business_unit_ids and facts.business_unit_id not in policy.business_unit_ids)


def cost_outcome(policy: PolicyRule, facts: RequestFacts) -> str | None:
    """MET, BELOW or OTHER_CURRENCY against the policy's cost threshold; None without one.

    A cost threshold compares amounts in one currency only. A request in another currency
    is treated as above it: there is no exchange rate here, and guessing low would let a
    requester pick a currency to fall through to "no policy applies".
    """
    if policy.min_cost is None:
        return None
    if facts.currency.upper() != policy.currency.upper():
        return OTHER_CURRENCY
    return MET if facts.estimated_cost >= policy.min_cost else BELOW


def policy_checks(policy: PolicyRule, facts: RequestFacts) -> tuple[ThresholdCheck, ...]:
    """The policy's thresholds and how the request fares; () if it does not cover the kind
    and unit (or has no thresholds)."""
    if not _covers(policy, facts):
        return ()
    checks = []
    cost = cost_outcome(policy, facts)
    if cost is not None:
        checks.append(ThresholdCheck(policy, COST, policy.min_cost, cost))
    if policy.min_gpu_hours is not None:
        outcome = MET if facts.gpu_hours >= policy.min_gpu_hours else BELOW
        checks.append(ThresholdCheck(policy, GPU_HOURS, policy.min_gpu_hours, outcome))
    return tuple(checks)


def policy_applies(policy: PolicyRule, facts: RequestFacts) -> bool:
    """All of the policy's conditions hold for the request (see ``cost_outcome`` for a
    request in another currency than the policy's cost threshold)."""
    if not _covers(policy, facts):
        return False
    return all(c.counts_as_met for c in policy_checks(policy, facts))


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
    The plan also carries every threshold checked, so the history can say why.
    """
    policies = list(policies)
    checks = tuple(c for p in policies for c in policy_checks(p, facts))
    policy = policy_choose(policies, facts)
    if policy is None and facts.kind == BUDGET_EXCEPTION:
        policy = BUDGET_EXCEPTION_FALLBACK
    if policy is None:
        return Plan(policy=None, checks=checks)
    return Plan(
        policy=policy,
        steps=steps_plan(policy.steps, mode=policy.mode),
        mode=policy.mode,
        escalation_path=tuple(policy.escalation_path) or DEFAULT_ESCALATION_PATH,
        checks=checks,
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


def signin_required(
    *, threshold: Decimal | None, threshold_currency: str, amount: Decimal, currency: str
) -> bool:
    """An e-mailed link alone may not confirm: the estimate is above ``threshold``.

    The threshold is an amount in ``threshold_currency``; an estimate in any other currency
    cannot be compared without a rate, so it needs the sign-in (fail closed).
    """
    if threshold is None:
        return False
    if currency.upper() != threshold_currency.upper():
        return True
    return amount > threshold


def escalation_entries_reached(path: Sequence[str], level: int) -> tuple[str, ...]:
    """The entries of an escalation path a step has been escalated along so far."""
    return tuple(path[: max(level, 0)])
