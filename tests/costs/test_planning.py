"""Planning cycles through the services: open → plans filed → board decisions → approved plan,
whose quotas change the next chargeback's overage; conflicts; refused moves; scope."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from costs import chargeback, planning
from costs import services as cost_services
from costs.models import (
    Budget,
    CapacityPlan,
    CapacityQuota,
    CycleStatus,
    LineStatus,
    PlanConflict,
    PlanLine,
    PlanStatus,
    QuotaSource,
)
from governance.choices import ConflictStatus, DecisionKind, Role
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import BoardMembership, CapacityConflict, Decision, ReviewBoard
from governance.services.conflicts import conflict_resolve, conflicts_escalate
from registry.models import PoolUsage
from tests.costs import planning_world
from tests.costs.planning_world import APR, FEB, JAN, MAR, NOW
from tests.factories import UserFactory

clock, world = planning_world.clock, planning_world.world  # the shared fixtures


def open_q1(w, capture=None, **kwargs):
    return planning.cycle_open(
        fiscal_year=2027, quarter=1, by=w.finance, plans_due=dt.date(2026, 12, 20), **kwargs
    )


def plan_of(cycle, unit) -> CapacityPlan:
    return CapacityPlan.objects.get(cycle=cycle, business_unit=unit)


def line_of(plan, pool, month) -> PlanLine:
    return PlanLine.objects.get(plan=plan, pool=pool, month=month)


def surcharge(result, code) -> D:
    statement = result.statement(code)
    return statement.subtotal("surcharge") if statement else D(0)


def spend_in_february(w, ads_hours: str, res_hours: str) -> None:
    """Ads and Research's February GPU-hours on the pool, on its first day."""
    for unit, hours in ((w.ads, ads_hours), (w.res, res_hours)):
        PoolUsage.objects.create(pool=w.h100, business_unit=unit, day=FEB, gpu_hours=D(hours))


# --- Opening and pre-filling ------------------------------------------------------------------


def test_cycle_open_prefills_each_plan_from_the_forecast_or_recent_usage(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    w = world
    with django_capture_on_commit_callbacks(execute=True):
        cycle = open_q1(w)
    assert (cycle.first_month, cycle.last_month, cycle.status) == (JAN, MAR, CycleStatus.OPEN)
    assert str(cycle) == "FY2027 Q1"
    # Units with someone to file: Ads, Platform, Research, Search (a member); not IDLE.
    codes = sorted(cycle.plans.values_list("business_unit__code", flat=True))
    assert codes == ["ADS", "PLAT", "RES", "SRCH"]
    ads = plan_of(cycle, w.ads)
    jan, feb, mar = (line_of(ads, w.h100, m) for m in (JAN, FEB, MAR))
    # January: 31 days x 1,000 forecast x Ads' 75 % share of the last 90 days.
    assert jan.gpu_hours == jan.forecast_gpu_hours == D("23250.00")
    assert "Pre-filled from the forecast" in jan.justification
    assert "75.0 %" in jan.justification
    # February is forecast for 10 days only: Ads' average month Sep-Nov (1,800, 1,860, 1,800).
    assert feb.gpu_hours == feb.forecast_gpu_hours == D("1820.00")
    assert "no forecast covers 2027-02" in feb.justification
    assert "2026-09 to 2026-11, 3 months with data" in feb.justification
    assert mar.gpu_hours == D("1820.00")
    assert line_of(plan_of(cycle, w.res), w.h100, JAN).gpu_hours == D("7750.00")
    assert not plan_of(cycle, w.srch).lines.exists()
    # One mail per owner with a link to its own plan; Search has no owner to mail.
    to = {m.to[0]: m for m in mailoutbox}
    assert set(to) == {"olga@example.com", "ravi@example.com", "petra@example.com"}
    assert f"/costs/planning/plans/{ads.pk}/" in to["olga@example.com"].body
    assert "20 December 2026" in to["olga@example.com"].body


def test_cycle_open_refuses_a_second_cycle_an_ended_quarter_and_other_roles(world):
    w = world
    open_q1(w)
    with pytest.raises(ConflictError, match="FY2027 Q1 already has a planning cycle"):
        open_q1(w)
    with pytest.raises(DomainError, match="FY2026 Q3 ended on 30 Sep 2026"):
        planning.cycle_open(fiscal_year=2026, quarter=3, by=w.finance)
    with pytest.raises(DomainError, match="give 1, 2, 3 or 4"):
        planning.cycle_open(fiscal_year=2027, quarter=5, by=w.finance)
    with pytest.raises(DomainError, match="is in the past"):
        planning.cycle_open(
            fiscal_year=2027, quarter=2, by=w.finance, plans_due=dt.date(2026, 12, 1)
        )
    with pytest.raises(PermissionDeniedError, match="finance and platform admins"):
        planning.cycle_open(fiscal_year=2027, quarter=2, by=w.infra)
    assert planning.cycle_list().count() == 1


def test_beat_opens_the_next_quarter_once_when_it_is_due(world, clock, settings):
    settings.CAPGOV_PLANNING_OPENS_DAYS_BEFORE = 30
    clock.move_to(dt.datetime(2026, 11, 30, 6, tzinfo=dt.UTC))  # 32 days before January
    assert planning.planning_cycle_open_due() is None
    clock.move_to(dt.datetime(2026, 12, 3, 6, tzinfo=dt.UTC))
    cycle = planning.planning_cycle_open_due()
    assert (cycle.fiscal_year, cycle.quarter, cycle.opened_by) == (2027, 1, None)
    assert cycle.plans_due == dt.date(2026, 12, 17)  # halfway to the quarter
    assert planning.planning_cycle_open_due() is None
    assert planning.cycle_list().count() == 1


def test_beat_follows_the_fiscal_calendar(world, clock, settings):
    # A February start: on 3 December the next quarter is FY2028 Q1, from February 2027.
    settings.CAPGOV_FISCAL_YEAR_START_MONTH = 2
    settings.CAPGOV_PLANNING_OPENS_DAYS_BEFORE = 58  # from 5 December
    assert planning.planning_cycle_open_due() is None
    clock.move_to(dt.datetime(2026, 12, 5, 6, tzinfo=dt.UTC))
    cycle = planning.planning_cycle_open_due()
    assert (str(cycle), cycle.first_month, cycle.last_month) == (
        "FY2028 Q1",
        FEB,
        APR,
    )


def test_price_per_gpu_hour_divides_the_instance_by_its_accelerators(world):
    price = planning.pool_gpu_hour_price(world.a100)
    assert (price.amount, price.currency) == (D("3.6725"), "USD")
    assert "29.38 USD/h ÷ 8 accelerators" in price.source
    assert planning.pool_capacity(world.h100, FEB) == D(80 * 28 * 24)


# --- The whole cycle (the "done when") -------------------------------------------------


def test_cycle_open_to_approved_plan_changes_the_next_chargebacks_overage(
    world, django_capture_on_commit_callbacks
):
    w = world
    spend_in_february(w, ads_hours="1800", res_hours="700")
    before = chargeback.statements_compute(FEB)
    # Ads' manual quota: 1,000 GPU-h; 800 over x 4.10 x (1.5 - 1). Research has no quota.
    assert surcharge(before, "ADS") == D("1640.00")
    assert surcharge(before, "RES") == D("0")

    cycle = open_q1(w)
    ads, res = plan_of(cycle, w.ads), plan_of(cycle, w.res)
    planning.plan_line_update(
        line=line_of(ads, w.h100, FEB),
        by=w.ads_member,
        gpu_hours="2000",
        justification="Spring re-training of the ranker.",
    )
    planning.plan_line_add(
        plan=ads,
        by=w.ads_member,
        pool=w.a100,
        month=MAR,
        gpu_hours=D("400"),
        justification="Distillation experiment on A100s.",
    )
    planning.plan_line_update(line=line_of(res, w.h100, FEB), by=w.res_owner, gpu_hours="600")
    planning.plan_file(plan=ads, by=w.ads_owner)
    planning.plan_file(plan=res, by=w.res_owner)
    started = planning.cycle_start_review(cycle=cycle, by=w.admin)
    assert sorted(p.business_unit.code for p in started.unfiled) == ["PLAT", "SRCH"]
    assert started.conflicts == []

    infra = w.infra
    planning.plan_line_decide(
        line=line_of(ads, w.h100, JAN), by=infra, outcome="approve", rationale="Forecast-backed."
    )
    trimmed = planning.plan_line_decide(
        line=line_of(ads, w.h100, FEB),
        by=infra,
        outcome="trim",
        approved_gpu_hours="1500",
        rationale="Re-train on half the data first; come back with results.",
    )
    assert (trimmed.status, trimmed.approved_gpu_hours) == (LineStatus.TRIMMED, D("1500.00"))
    decision = trimmed.decision
    assert decision.kind == DecisionKind.OTHER
    assert decision.subject == trimmed
    assert decision.decided_by == infra
    assert decision.decided_as == Role.BOARD_INFRA
    assert decision.business_unit == w.ads
    assert decision.evidence["asked_gpu_hours"] == "2000.00"
    assert decision.evidence["approved_gpu_hours"] == "1500.00"
    planning.plan_line_decide(
        line=line_of(ads, w.h100, MAR), by=infra, outcome="reject", rationale="Not justified."
    )
    planning.plan_line_decide(
        line=line_of(ads, w.a100, MAR), by=infra, outcome="approve", rationale="Small."
    )
    assert plan_of(cycle, w.ads).status == PlanStatus.DECIDED
    for line in res.lines.all():
        planning.plan_line_decide(line=line, by=infra, outcome="approve", rationale="As asked.")

    with django_capture_on_commit_callbacks(execute=True):
        result = planning.cycle_approve(cycle=cycle, by=w.finance)
    cycle.refresh_from_db()
    assert (cycle.status, cycle.approved_by) == (CycleStatus.APPROVED, w.finance)
    quotas = {
        (q.business_unit.code, q.pool.code, q.first_month): q
        for q in CapacityQuota.objects.filter(source=QuotaSource.PLAN)
    }
    assert set(quotas) == {
        ("ADS", "h100", JAN),
        ("ADS", "h100", FEB),
        ("ADS", "a100", MAR),
        ("RES", "h100", JAN),
        ("RES", "h100", FEB),
        ("RES", "h100", MAR),
    }
    feb_ads = quotas[("ADS", "h100", FEB)]
    assert (feb_ads.gpu_hours, feb_ads.last_month) == (D("1500.00"), FEB)
    assert (feb_ads.unit_price, feb_ads.currency) == (D("4.100000"), "USD")
    assert feb_ads.multiplier == D("1.500")  # Ads' manual quota's
    assert feb_ads.plan_line == line_of(ads, w.h100, FEB)
    assert quotas[("RES", "h100", FEB)].multiplier == D("1.5")  # the setting's default
    assert quotas[("ADS", "a100", MAR)].unit_price == D("3.672500")  # 29.38 ÷ 8
    assert len(result.quotas) == 6

    budgets = {b.name: b for b in Budget.objects.filter(plan__isnull=False)}
    jan_ads = budgets["FY2027 Q1 plan — ADS 2027-01"]
    assert (jan_ads.amount, jan_ads.currency, jan_ads.plan) == (D("95325.00"), "USD", ads)
    assert (jan_ads.first_month, jan_ads.last_month, jan_ads.freeze_at_percent) == (JAN, JAN, 100)
    assert budgets["FY2027 Q1 plan — ADS 2027-02"].amount == D("6150.00")  # 1,500 x 4.10
    assert budgets["FY2027 Q1 plan — ADS 2027-03"].amount == D("1469.00")  # 400 x 3.6725
    assert budgets["FY2027 Q1 plan — RES 2027-02"].amount == D("2460.00")  # 600 x 4.10
    approval = planning.cycle_approval_decision(cycle)
    assert approval.title == "Approve the FY2027 Q1 capacity plan"
    assert approval.evidence["not_filed"] == ["PLAT", "SRCH"]

    after = chargeback.statements_compute(FEB)
    # Ads: the plan's 1,500 GPU-h win over the manual 1,000: 300 over x 4.10 x 0.5.
    assert surcharge(after, "ADS") == D("615.00")
    assert surcharge(after, "ADS") - surcharge(before, "ADS") == D("-1025.00")
    # Research now has a quota of 600 and used 700: a surcharge appears.
    assert surcharge(after, "RES") == D("205.00")
    assert surcharge(after, "PLAT") == D("-820.00")
    # March: Ads' H100 line was rejected, so the manual quota still applies there.
    PoolUsage.objects.create(pool=w.h100, business_unit=w.ads, day=MAR, gpu_hours=D(1100))
    assert surcharge(chargeback.statements_compute(MAR), "ADS") == D("205.00")


def test_a_plan_quota_wins_over_a_manual_quota_that_starts_later(world):
    """For a month, the approved plan's quota applies, not the unit's manual quotas — even a
    manual one that started after it (the newest-first rule would have picked that one)."""
    w = world
    line = _approved_cycle(w)
    CapacityQuota.objects.filter(plan_line=line).update(first_month=dt.date(2026, 12, 1))
    CapacityQuota.objects.create(
        business_unit=w.ads,
        pool=w.h100,
        first_month=JAN,
        gpu_hours=D(5000),
        unit_price=D("4.10"),
        currency="USD",
    )
    PoolUsage.objects.create(pool=w.h100, business_unit=w.ads, day=JAN, gpu_hours=D(30000))
    result = chargeback.statements_compute(JAN)
    # 30,000 - the plan's 23,250 = 6,750 over x 4.10 x 0.5, not 25,000 over the manual 5,000.
    assert surcharge(result, "ADS") == D("13837.50")
    assert (
        "23,250"
        in next(x for x in result.statement("ADS").lines if x.kind == "surcharge").explanation
    )


def _approved_cycle(w, *, approve_all=True):
    cycle = open_q1(w)
    ads = plan_of(cycle, w.ads)
    planning.plan_file(plan=ads, by=w.ads_owner)
    planning.cycle_start_review(cycle=cycle, by=w.admin)
    for line in ads.lines.all():
        planning.plan_line_decide(line=line, by=w.infra, outcome="approve", rationale="Fine.")
    planning.cycle_approve(cycle=cycle, by=w.finance)
    return line_of(ads, w.h100, JAN)


def test_approval_makes_room_in_manual_quotas_and_budgets(world):
    w = world
    # A manual quota starting in January would share the plan quota's first month.
    CapacityQuota.objects.filter(business_unit=w.ads).update(first_month=JAN)
    open_ended = cost_services.budget_save(
        name="Ads GPUs", business_unit=w.ads, amount=D("50000"), currency="USD", by=w.finance
    )
    _approved_cycle(w)
    manual = CapacityQuota.objects.get(business_unit=w.ads, source=QuotaSource.MANUAL)
    assert (manual.first_month, manual.last_month) == (APR, None)
    open_ended.refresh_from_db()
    assert (open_ended.first_month, open_ended.last_month) == (None, dt.date(2026, 12, 1))
    rest = Budget.objects.get(name="Ads GPUs", first_month=APR)
    assert (rest.last_month, rest.amount, rest.plan) == (None, D("50000.0000"), None)
    made_room = planning.cycle_approval_decision(planning.cycle_list().get()).evidence["made_room"]
    assert any("now starts 2027-04" in text for text in made_room)
    assert any("2027-04" in text and "Ads GPUs" in text for text in made_room)
    # A month's budget check sees exactly one whole-unit budget of Ads: the plan's.
    from costs.selectors import budget_active_list

    names = [b.name for b in budget_active_list(month=FEB) if b.business_unit_id == w.ads.pk]
    assert names == ["FY2027 Q1 plan — ADS 2027-02"]


# --- Conflicts --------------------------------------------------------------------------------


def test_plans_over_a_pools_capacity_open_one_conflict_that_escalates(
    world, mailoutbox, django_capture_on_commit_callbacks, clock
):
    w = world
    cycle = open_q1(w)
    ads, res = plan_of(cycle, w.ads), plan_of(cycle, w.res)
    planning.plan_line_update(
        line=line_of(res, w.h100, JAN),
        by=w.res_owner,
        gpu_hours="40000",
        justification="Pre-training run of the 30B model.",
    )
    planning.plan_file(plan=ads, by=w.ads_owner)
    assert not PlanConflict.objects.exists()  # Ads alone fits
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        planning.plan_file(plan=res, by=w.res_owner)
    record = PlanConflict.objects.get()
    # January: 23,250 + 40,000 asked of 80 GPUs x 744 h.
    assert (record.pool, record.month) == (w.h100, JAN)
    assert (record.requested_gpu_hours, record.capacity_gpu_hours) == (D("63250"), D("59520"))
    conflict = record.conflict
    assert conflict.subject == w.h100
    assert sorted(u.code for u in conflict.business_units.all()) == ["ADS", "RES"]
    assert conflict.escalation_path == ["board", "bu_owners", "role:platform_admin"]
    assert conflict.raised_by == w.res_owner
    assert "63,250.00 GPU-hours of H100 pool in January 2027" in conflict.description
    assert {a for m in mailoutbox for a in m.to} >= {"ines@example.com", "priya@example.com"}

    # Once per cycle, pool and month: the review re-checks and opens nothing new.
    planning.cycle_start_review(cycle=cycle, by=w.admin)
    assert CapacityConflict.objects.count() == PlanConflict.objects.count() == 1

    # Undecided for 48 hours, it goes to the units' owners.
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        moved = conflicts_escalate(now=NOW + dt.timedelta(hours=49))
    assert moved == 1
    conflict.refresh_from_db()
    assert (conflict.status, conflict.escalation_level) == (ConflictStatus.ESCALATED, 1)
    assert {a for m in mailoutbox for a in m.to} == {"olga@example.com", "ravi@example.com"}

    for line in PlanLine.objects.filter(plan__cycle=cycle):
        planning.plan_line_decide(line=line, by=w.infra, outcome="approve", rationale="OK.")
    with pytest.raises(ConflictError, match="conflict over H100 pool in 2027-01 is not resolved"):
        planning.cycle_approve(cycle=cycle, by=w.finance)
    conflict_resolve(conflict=conflict, by=w.infra, resolution="Research runs in February.")
    with pytest.raises(ConflictError, match=r"give 63,250\.00 GPU-h of H100 pool in 2027-01"):
        planning.cycle_approve(cycle=cycle, by=w.finance)
    planning.plan_line_decide(
        line=line_of(res, w.h100, JAN),
        by=w.infra,
        outcome="trim",
        approved_gpu_hours="30000",
        rationale="What fits beside Ads; the rest in February.",
    )
    planning.cycle_approve(cycle=cycle, by=w.finance)
    assert CapacityQuota.objects.get(business_unit=w.res, first_month=JAN).gpu_hours == D(30000)


def test_conflict_escalation_path_comes_from_the_setting(world, settings):
    settings.CAPGOV_PLAN_CONFLICT_ESCALATION = ["board", "role:finance"]
    w = world
    cycle = open_q1(w)
    planning.plan_line_update(
        line=line_of(plan_of(cycle, w.res), w.h100, JAN), by=w.res_owner, gpu_hours="50000"
    )
    planning.plan_file(plan=plan_of(cycle, w.ads), by=w.ads_owner)
    planning.plan_file(plan=plan_of(cycle, w.res), by=w.res_owner)
    assert PlanConflict.objects.get().conflict.escalation_path == ["board", "role:finance"]


def test_one_unit_alone_over_capacity_is_flagged_but_no_conflict(world):
    w = world
    cycle = open_q1(w)
    ads = plan_of(cycle, w.ads)
    planning.plan_line_update(line=line_of(ads, w.h100, JAN), by=w.ads_owner, gpu_hours="60000")
    planning.plan_file(plan=ads, by=w.ads_owner)
    assert not PlanConflict.objects.exists()
    jan = next(e for e in planning.cycle_pool_months(cycle) if e.month == JAN)
    assert jan.over
    assert jan.units == {"ADS": D("60000.00")}


# --- Refused moves ----------------------------------------------------------------------------


def test_editing_a_plan_is_for_its_units_people_and_only_while_draft(world):
    w = world
    cycle = open_q1(w)
    ads = plan_of(cycle, w.ads)
    jan = line_of(ads, w.h100, JAN)
    for person in (w.outsider, w.finance, w.infra):
        with pytest.raises(PermissionDeniedError, match="Only Ads Ranking's owner and members"):
            planning.plan_line_update(line=jan, by=person, gpu_hours="1")
    with pytest.raises(DomainError, match="2027-04 is not in FY2027 Q1"):
        planning.plan_line_add(
            plan=ads, by=w.ads_member, pool=w.a100, month=APR, gpu_hours=1, justification="x"
        )
    with pytest.raises(DomainError, match="0 or more"):
        planning.plan_line_update(line=jan, by=w.ads_member, gpu_hours="-5")
    with pytest.raises(DomainError, match="at most two decimals"):
        planning.plan_line_update(line=jan, by=w.ads_member, gpu_hours="1.005")
    with pytest.raises(DomainError, match="not a number"):
        planning.plan_line_update(line=jan, by=w.ads_member, gpu_hours="lots")
    with pytest.raises(ConflictError, match="already has a line for H100 pool in 2027-01"):
        planning.plan_line_add(
            plan=ads, by=w.ads_member, pool=w.h100, month=JAN, gpu_hours=1, justification="x"
        )
    planning.plan_line_update(line=jan, by=w.ads_member, justification="")
    with pytest.raises(DomainError, match="no justification on: H100 pool 2027-01"):
        planning.plan_file(plan=ads, by=w.ads_owner)
    planning.plan_line_update(line=jan, by=w.ads_member, justification="Ranker serving.")
    planning.plan_file(plan=ads, by=w.ads_member)  # a member files too
    with pytest.raises(ConflictError, match=r"The plan is filed\. Take it back to draft first"):
        planning.plan_line_delete(line=jan, by=w.ads_owner)
    planning.plan_reopen(plan=ads, by=w.ads_owner)
    planning.plan_line_delete(line=jan, by=w.ads_owner)
    planning.plan_file(plan=ads, by=w.ads_owner)
    planning.cycle_start_review(cycle=cycle, by=w.infra)
    with pytest.raises(ConflictError, match="stays filed once the review has started"):
        planning.plan_reopen(plan=ads, by=w.ads_owner)
    # A late plan can still be edited and filed in review.
    res = plan_of(cycle, w.res)
    planning.plan_line_update(line=line_of(res, w.h100, MAR), by=w.res_owner, gpu_hours="10")
    planning.plan_file(plan=res, by=w.res_owner)
    assert plan_of(cycle, w.res).status == PlanStatus.FILED


def test_board_decisions_are_refused_with_the_reason(world):
    w = world
    cycle = open_q1(w)
    ads = plan_of(cycle, w.ads)
    jan = line_of(ads, w.h100, JAN)
    planning.plan_file(plan=ads, by=w.ads_owner)
    with pytest.raises(ConflictError, match="decides lines while it is in review"):
        planning.plan_line_decide(line=jan, by=w.infra, outcome="approve", rationale="ok")
    with pytest.raises(PermissionDeniedError, match="start the review"):
        planning.cycle_start_review(cycle=cycle, by=w.finance)
    planning.cycle_start_review(cycle=cycle, by=w.admin)
    with pytest.raises(ConflictError, match="only a cycle open for plans goes to review"):
        planning.cycle_start_review(cycle=cycle, by=w.admin)
    with pytest.raises(PermissionDeniedError, match="review board decides"):
        planning.plan_line_decide(line=jan, by=w.finance, outcome="approve", rationale="ok")
    with pytest.raises(PermissionDeniedError, match="You belong to Ads Ranking"):
        planning.plan_line_decide(line=jan, by=w.product, outcome="approve", rationale="ok")
    with pytest.raises(DomainError, match="Give the rationale"):
        planning.plan_line_decide(line=jan, by=w.infra, outcome="approve", rationale="  ")
    with pytest.raises(DomainError, match=r"less than the 23,250\.00 GPU-h asked"):
        planning.plan_line_decide(
            line=jan, by=w.infra, outcome="trim", approved_gpu_hours="23250", rationale="x"
        )
    with pytest.raises(DomainError, match="how many GPU-hours to grant"):
        planning.plan_line_decide(line=jan, by=w.infra, outcome="trim", rationale="x")
    with pytest.raises(DomainError, match="approve, trim or reject"):
        planning.plan_line_decide(line=jan, by=w.infra, outcome="maybe", rationale="x")
    res = plan_of(cycle, w.res)
    with pytest.raises(ConflictError, match="RES's plan is a draft"):
        planning.plan_line_decide(
            line=line_of(res, w.h100, JAN), by=w.infra, outcome="approve", rationale="x"
        )
    with pytest.raises(ConflictError, match=r"3 line\(s\) still wait.*ADS H100 pool 2027-01"):
        planning.cycle_approve(cycle=cycle, by=w.finance)
    # A changed answer while in review replaces the line's; both Decisions stay on record.
    planning.plan_line_decide(line=jan, by=w.infra, outcome="reject", rationale="Too much.")
    planning.plan_line_decide(line=jan, by=w.infra, outcome="approve", rationale="Reconsidered.")
    assert Decision.objects.filter(subject_id=jan.pk, kind=DecisionKind.OTHER).count() == 2
    with pytest.raises(PermissionDeniedError, match="Finance and platform admins approve"):
        planning.cycle_approve(cycle=cycle, by=w.infra)


def test_a_named_board_decides_only_through_its_members(world):
    w = world
    board = ReviewBoard.objects.create(name="Capacity board")
    BoardMembership.objects.create(board=board, user=w.infra, function="infra")
    ml = UserFactory(username="mark", roles=[Role.BOARD_ML])
    cycle = open_q1(w, board=board)
    ads = plan_of(cycle, w.ads)
    planning.plan_file(plan=ads, by=w.ads_owner)
    planning.cycle_start_review(cycle=cycle, by=w.admin)
    jan = line_of(ads, w.h100, JAN)
    with pytest.raises(PermissionDeniedError, match="Only members of Capacity board"):
        planning.plan_line_decide(line=jan, by=ml, outcome="approve", rationale="ok")
    line = planning.plan_line_decide(line=jan, by=w.infra, outcome="approve", rationale="ok")
    assert line.decision.decided_as == Role.BOARD_INFRA


def test_approval_without_a_price_writes_nothing(world):
    w = world
    cycle = open_q1(w)
    ads = plan_of(cycle, w.ads)
    planning.plan_file(plan=ads, by=w.ads_owner)
    planning.cycle_start_review(cycle=cycle, by=w.admin)
    for line in ads.lines.all():
        planning.plan_line_decide(line=line, by=w.infra, outcome="approve", rationale="ok")
    w.h100.hardware_profile.prices.all().delete()
    with pytest.raises(DomainError, match="No hourly price for 1 x H100 at AWS"):
        planning.cycle_approve(cycle=cycle, by=w.finance)
    cycle.refresh_from_db()
    assert cycle.status == CycleStatus.REVIEW
    assert not CapacityQuota.objects.filter(source=QuotaSource.PLAN).exists()
    assert not Budget.objects.exists()
    with pytest.raises(ConflictError, match=r"FY2027 Q2 is open for plans\. Start the review"):
        planning.cycle_approve(cycle=open_q2(w), by=w.finance)


def open_q2(w):
    return planning.cycle_open(fiscal_year=2027, quarter=2, by=w.admin)


def test_an_approved_cycle_changes_no_more(world):
    w = world
    _approved_cycle(w)
    cycle = planning.cycle_list().get()
    ads = plan_of(cycle, w.ads)
    with pytest.raises(ConflictError, match="It was approved already"):
        planning.cycle_approve(cycle=cycle, by=w.finance)
    with pytest.raises(ConflictError, match="its plans no longer change"):
        planning.plan_line_update(line=line_of(ads, w.h100, JAN), by=w.ads_owner, gpu_hours=1)
    with pytest.raises(ConflictError, match="decides lines while it is in review"):
        planning.plan_line_decide(
            line=line_of(ads, w.h100, JAN), by=w.infra, outcome="reject", rationale="late"
        )


# --- Scope ------------------------------------------------------------------------------------


def test_plans_are_scoped_to_the_units_people(world):
    w = world
    cycle = open_q1(w)
    assert list(
        planning.plan_list(user=w.ads_member).values_list("business_unit__code", flat=True)
    ) == ["ADS"]
    assert planning.plan_list(user=w.outsider).get().business_unit == w.srch
    for wide in (w.finance, w.admin, w.infra):
        assert planning.plan_list(user=wide).filter(cycle=cycle).count() == 4
    assert {line.plan.business_unit.code for line in planning.plan_line_list(user=w.res_owner)} == {
        "RES"
    }


def test_beat_tasks_are_scheduled_and_call_the_services(world, settings):
    from celery import current_app

    from costs.tasks import commitment_recommendations_task, planning_cycle_open_due_task

    for name in ("planning-cycle-open", "commitment-recommendations"):
        assert settings.CAPGOV_SCHEDULES[name]["task"] in current_app.tasks
    assert settings.CAPGOV_SCHEDULES["commitment-recommendations"]["schedule"] == 7 * 86400.0
    cycle_id = planning_cycle_open_due_task.delay().get()
    assert planning.cycle_list().get().pk == cycle_id
    assert planning_cycle_open_due_task.delay().get() is None
    assert commitment_recommendations_task.delay().get() == 0  # no offers yet
