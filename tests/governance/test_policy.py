"""The pure policy matcher: which policy applies and the steps it puts on a request."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from governance import policy as rules

RESEARCH, ADS = 1, 2
ONE_APPROVER = (rules.StepRule(order=1, role="approver"),)


def facts(**overrides) -> rules.RequestFacts:
    values = {
        "kind": "fine_tuning",
        "business_unit_id": RESEARCH,
        "estimated_cost": D("23000.00"),
        "currency": "USD",
        "gpu_hours": D("4608"),  # 64 x H100 for 72 h
    }
    return rules.RequestFacts(**{**values, **overrides})


def rule(name: str, priority: int = 100, steps=ONE_APPROVER, **overrides) -> rules.PolicyRule:
    return rules.PolicyRule(id=priority, name=name, priority=priority, steps=steps, **overrides)


def test_policy_with_no_conditions_applies_to_everything():
    assert rules.policy_applies(rule("any"), facts())
    assert rules.policy_applies(rule("any"), facts(kind="new_endpoint", estimated_cost=D(0)))


def test_policy_matches_on_kind_only_when_listed():
    gpu_jobs = rule("jobs", kinds=frozenset({"fine_tuning", "batch_inference"}))
    assert rules.policy_applies(gpu_jobs, facts(kind="batch_inference"))
    assert not rules.policy_applies(gpu_jobs, facts(kind="reserved_capacity"))


def test_policy_cost_threshold_is_inclusive_and_in_one_currency():
    costly = rule("costly", min_cost=D("10000.00"), currency="USD")
    assert rules.policy_applies(costly, facts(estimated_cost=D("10000.00")))
    assert not rules.policy_applies(costly, facts(estimated_cost=D("9999.99")))
    # No exchange rate here: an estimate in another currency cannot be shown to be below a
    # USD threshold, so it counts as above it (fail closed), however small the number.
    assert rules.policy_applies(costly, facts(estimated_cost=D("1"), currency="EUR"))
    assert rules.cost_outcome(costly, facts(currency="EUR")) == rules.OTHER_CURRENCY
    assert rules.policy_applies(costly, facts(currency="usd"))


def test_policy_gpu_hours_threshold():
    big = rule("big", min_gpu_hours=D("1000"))
    assert rules.policy_applies(big, facts(gpu_hours=D("1000")))
    assert not rules.policy_applies(big, facts(gpu_hours=D("999.5")))


def test_policy_business_units_restrict_when_given():
    research_only = rule("research", business_unit_ids=frozenset({RESEARCH}))
    assert rules.policy_applies(research_only, facts())
    assert not rules.policy_applies(research_only, facts(business_unit_id=ADS))


def test_inactive_policy_never_applies():
    assert not rules.policy_applies(rule("off", is_active=False), facts())


def test_lowest_priority_wins_among_those_that_apply():
    policies = [
        rule("catch-all", priority=900),
        rule("costly", priority=10, min_cost=D("10000")),
        rule("huge", priority=5, min_cost=D("100000")),  # does not apply
        rule("also costly", priority=10, min_cost=D("5000")),  # same priority: name decides
    ]
    assert rules.policy_choose(policies, facts()).name == "also costly"
    assert rules.policy_choose(policies, facts(estimated_cost=D("100"))).name == "catch-all"


def test_no_policy_applies_means_no_steps():
    plan = rules.plan_for([rule("costly", min_cost=D("100000"))], facts())
    assert plan.policy is None
    assert not plan.needs_approval


def test_a_budget_exception_always_needs_someone():
    plan = rules.plan_for([], facts(kind="budget_exception"))
    assert plan.needs_approval
    assert [(s.role, s.active) for s in plan.steps] == [("platform_admin", True)]


def test_sequential_plan_activates_only_the_first_step_in_order():
    steps = (
        rules.StepRule(order=2, role="finance", wait_hours=48),
        rules.StepRule(order=1, role="approver", required_approvals=2),
    )
    plan = rules.plan_for([rule("two", steps=steps)], facts())
    assert [(s.order, s.role, s.required_approvals, s.active) for s in plan.steps] == [
        (1, "approver", 2, True),
        (2, "finance", 1, False),
    ]
    assert plan.escalation_path == rules.DEFAULT_ESCALATION_PATH


def test_parallel_plan_activates_every_step_and_keeps_its_path():
    steps = (rules.StepRule(order=1, role="approver"), rules.StepRule(order=2, role="finance"))
    policy = rule("both", steps=steps, mode="parallel", escalation_path=("role:finance",))
    plan = rules.plan_for([policy], facts())
    assert all(s.active for s in plan.steps)
    assert plan.escalation_path == ("role:finance",)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([(1, "approved"), (2, "waiting"), (3, "waiting")], [2]),
        ([(1, "approved"), (2, "active"), (3, "waiting")], []),
        ([(1, "approved"), (2, "approved")], []),
    ],
)
def test_next_step_opens_only_after_the_open_one_is_approved(steps, expected):
    assert rules.next_active_orders(steps, mode="sequential") == expected
    assert rules.next_active_orders(steps, mode="parallel") == []


def test_due_at_adds_the_wait():
    start = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
    assert rules.due_at(start, 24) == datetime(2026, 10, 6, 9, 0, tzinfo=UTC)


def test_escalation_targets_are_the_unit_owner_or_a_role():
    roles = ["approver", "platform_admin"]
    assert rules.escalation_target_valid("bu_owner", roles)
    assert rules.escalation_target_valid("role:platform_admin", roles)
    assert not rules.escalation_target_valid("role:ceo", roles)
    assert not rules.escalation_target_valid("mark@example.com", roles)
