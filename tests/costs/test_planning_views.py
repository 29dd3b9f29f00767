"""Planning and commitment pages and API: who sees and does what, refused input kept, the
flow over HTTP, and query counts that do not grow with the number of rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.test import Client
from rest_framework.test import APIClient

from costs import commitment_services, planning
from costs.models import (
    CapacityPlan,
    CapacityQuota,
    CommitmentOffer,
    CycleStatus,
    LineStatus,
    PlanConflict,
    PlanLine,
    PlanningCycle,
    QuotaSource,
)
from governance.choices import RequestKind, Role
from governance.models import ApprovalRequest
from registry.models import PoolUsage
from tests.costs import planning_world
from tests.costs.planning_world import FEB, JAN
from tests.factories import BusinessUnitFactory, UserFactory

clock, world = planning_world.clock, planning_world.world  # the shared fixtures

CYCLES = "/costs/planning/"
COMMITMENTS = "/costs/commitments/"


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def cycle(world) -> PlanningCycle:
    return planning.cycle_open(fiscal_year=2027, quarter=1, by=world.finance)


def plan_of(cycle, unit) -> CapacityPlan:
    return CapacityPlan.objects.get(cycle=cycle, business_unit=unit)


# --- Pages -------------------------------------------------------------------------------------


def test_cycle_list_shows_cycles_and_the_open_form_to_finance_only(world, cycle):
    body = browser(world.finance).get(CYCLES).content.decode()
    assert "FY2027 Q1" in body
    assert "Open the cycle" in body
    assert "Fiscal years run January to December" in body
    # FY2027 Q1 has its cycle: the form offers the quarter after it.
    assert "The first quarter without a cycle is FY2027 Q2" in body
    assert "the next quarter, FY2027 Q1, has one" in body
    assert '<option value="2" selected>' in body  # the form asks for Q2
    member = browser(world.ads_member).get(CYCLES).content.decode()
    assert "Open the cycle" not in member
    assert f'href="/costs/planning/plans/{plan_of(cycle, world.ads).pk}/">ADS</a>' in member
    assert "RES</a>" not in member


def test_opening_a_cycle_from_the_page(world):
    response = browser(world.admin).post(
        f"{CYCLES}open/", {"fiscal_year": 2027, "quarter": 2, "plans_due": "2027-03-01"}
    )
    opened = PlanningCycle.objects.get()
    assert response.status_code == 302
    assert response["Location"] == opened.get_absolute_url()
    assert (opened.first_month.isoformat(), opened.opened_by) == ("2027-04-01", world.admin)
    again = browser(world.admin).post(f"{CYCLES}open/", {"fiscal_year": 2027, "quarter": 2})
    assert again.status_code == 409
    assert "FY2027 Q2 already has a planning cycle" in again.content.decode()
    bad = browser(world.admin).post(f"{CYCLES}open/", {"fiscal_year": 2027, "quarter": 7})
    assert bad.status_code == 400
    assert (
        browser(world.ads_owner)
        .post(f"{CYCLES}open/", {"fiscal_year": 2027, "quarter": 3})
        .status_code
        == 403
    )


def test_cycle_page_flags_pool_months_over_capacity_for_wide_roles_only(world, cycle):
    ads, res = plan_of(cycle, world.ads), plan_of(cycle, world.res)
    planning.plan_line_update(
        line=PlanLine.objects.get(plan=res, pool=world.h100, month=JAN),
        by=world.res_owner,
        gpu_hours="40000",
    )
    planning.plan_file(plan=ads, by=world.ads_owner)
    planning.plan_file(plan=res, by=world.res_owner)
    body = browser(world.infra).get(cycle.get_absolute_url()).content.decode()
    assert "over capacity" in body
    assert "63,250.00" in body
    assert "59,520.00" in body
    assert "/registry/conflicts/" in body
    assert "Start the review" in body  # a board member may start it
    assert "Approve the plan" not in body
    member = browser(world.ads_member).get(cycle.get_absolute_url()).content.decode()
    assert "Pools by month" not in member
    assert "RES · Research" not in member
    assert "ADS · Ads Ranking" in member


def test_plan_page_scope_and_editing_with_refused_input_kept(world, cycle):
    ads = plan_of(cycle, world.ads)
    url = ads.get_absolute_url()
    assert browser(world.res_owner).get(url).status_code == 404
    assert browser(world.outsider).get(url).status_code == 404
    finance = browser(world.finance).get(url).content.decode()
    assert "File the plan" not in finance  # finance reads, the unit files
    member = browser(world.ads_member)
    body = member.get(url).content.decode()
    assert "File the plan" in body
    assert "Pre-filled from the forecast" in body
    assert "95,325.00 USD" in body  # 23,250 GPU-h x 4.10
    line = PlanLine.objects.get(plan=ads, pool=world.h100, month=FEB)
    refused = member.post(
        f"{url}lines/{line.pk}/",
        {f"line-{line.pk}-gpu_hours": "12.345", f"line-{line.pk}-justification": "Re-train"},
    )
    assert refused.status_code == 400
    assert "Re-train" in refused.content.decode()  # what was typed is kept
    saved = member.post(
        f"{url}lines/{line.pk}/",
        {f"line-{line.pk}-gpu_hours": "2500", f"line-{line.pk}-justification": "Re-train"},
    )
    assert saved.status_code == 302
    line.refresh_from_db()
    assert (line.gpu_hours, line.justification) == (D("2500.00"), "Re-train")
    added = member.post(
        f"{url}lines/",
        {"pool": world.a100.pk, "month": "2027-03", "gpu_hours": "100", "justification": "Eval"},
    )
    assert added.status_code == 302
    duplicate = member.post(
        f"{url}lines/",
        {"pool": world.a100.pk, "month": "2027-03", "gpu_hours": "5", "justification": "Again"},
    )
    assert duplicate.status_code == 409
    assert "already has a line for A100 pool in 2027-03" in duplicate.content.decode()
    other = browser(world.outsider).post(f"{url}file/")
    assert other.status_code == 404
    assert member.post(f"{url}file/").status_code == 302
    ads.refresh_from_db()
    assert ads.status == "filed"
    assert browser(world.ads_owner).post(f"{url}reopen/").status_code == 302


def test_board_decides_on_the_plan_page_and_the_cycle_is_approved(world, cycle):
    ads = plan_of(cycle, world.ads)
    planning.plan_file(plan=ads, by=world.ads_owner)
    assert browser(world.admin).post(f"{cycle.get_absolute_url()}start-review/").status_code == 302
    url = ads.get_absolute_url()
    board = browser(world.infra)
    assert "You decide these lines for the board" in board.get(url).content.decode()
    own = browser(world.product).get(url).content.decode()
    assert "another board member decides its lines" in own
    lines = list(ads.lines.order_by("month"))
    for line in lines:
        prefix = f"decide-{line.pk}"
        data = {f"{prefix}-decision": "approve", f"{prefix}-rationale": "Backed by the forecast."}
        if line.month == FEB:
            data = {
                f"{prefix}-decision": "trim",
                f"{prefix}-approved_gpu_hours": "1000",
                f"{prefix}-rationale": "Half now.",
            }
        assert board.post(f"{url}lines/{line.pk}/decide/", data).status_code == 302
    refused = browser(world.product).post(
        f"{url}lines/{lines[0].pk}/decide/",
        {f"decide-{lines[0].pk}-decision": "reject", f"decide-{lines[0].pk}-rationale": "No."},
    )
    assert refused.status_code == 403
    assert PlanLine.objects.get(pk=lines[1].pk).status == LineStatus.TRIMMED
    denied = browser(world.infra).post(f"{cycle.get_absolute_url()}approve/")
    assert denied.status_code == 403
    approved = browser(world.finance).post(f"{cycle.get_absolute_url()}approve/")
    assert approved.status_code == 302
    body = browser(world.finance).get(cycle.get_absolute_url()).content.decode()
    assert "What the plan became" in body
    assert "FY2027 Q1 plan — ADS 2027-02" in body
    assert CapacityQuota.objects.filter(source=QuotaSource.PLAN).count() == 3


def test_commitment_pages_are_for_finance_admins_and_the_board(world):
    CommitmentOffer.objects.create(
        pool=world.h100, kind="committed_use", term_years=1, discount_percent=D("35")
    )
    assert browser(world.ads_member).get(COMMITMENTS).status_code == 403
    finance = browser(world.finance)
    assert "No recommendation yet" in finance.get(COMMITMENTS).content.decode()
    assert finance.post(f"{COMMITMENTS}recompute/").status_code == 302
    body = finance.get(COMMITMENTS).content.decode()
    assert "863,779.80 USD" in body
    assert "Request purchase" not in body  # finance is not in Platform, the pool's owner
    rec = commitment_services.commitment_list(user=world.finance).get()
    detail = browser(world.infra).get(rec.get_absolute_url()).content.decode()
    assert "Request the purchase" in detail  # Ines is in Platform
    assert "65.00 %" in detail
    assert browser(world.ads_member).get(rec.get_absolute_url()).status_code == 403
    refused = finance.post(f"{rec.get_absolute_url()}request/")
    assert refused.status_code == 403
    response = browser(world.admin).post(f"{rec.get_absolute_url()}request/")
    request = ApprovalRequest.objects.get()
    assert response["Location"] == request.get_absolute_url()
    assert request.kind == RequestKind.RESERVED_CAPACITY


# --- API ---------------------------------------------------------------------------------------


def test_api_runs_a_cycle_end_to_end(world):
    opened = api(world.finance).post(
        "/api/v1/planning-cycles/", {"fiscal_year": 2027, "quarter": 1}, format="json"
    )
    assert opened.status_code == 201, opened.content
    cycle_id = opened.json()["id"]
    assert opened.json()["label"] == "FY2027 Q1"
    assert opened.json()["first_month"] == "2027-01"
    assert (
        api(world.ads_member)
        .post("/api/v1/planning-cycles/", {"fiscal_year": 2027, "quarter": 2}, format="json")
        .status_code
        == 403
    )
    plans = api(world.ads_member).get("/api/v1/capacity-plans/").json()
    (plan,) = plans["results"]
    assert plan["business_unit"] == "ADS"
    assert [line["month"] for line in plan["lines"]] == ["2027-01", "2027-02", "2027-03"]
    added = api(world.ads_member).post(
        f"/api/v1/capacity-plans/{plan['id']}/lines/",
        {"pool": "a100", "month": "2027-02", "gpu_hours": "80", "justification": "Evals"},
        format="json",
    )
    assert added.status_code == 201, added.content
    assert added.json()["month"] == "2027-02"
    outside = api(world.outsider).post(
        f"/api/v1/capacity-plans/{plan['id']}/lines/",
        {"pool": "a100", "month": "2027-03", "gpu_hours": "1", "justification": "x"},
        format="json",
    )
    assert outside.status_code == 404
    bad_month = api(world.ads_member).post(
        f"/api/v1/capacity-plans/{plan['id']}/lines/",
        {"pool": "a100", "month": "2027-07", "gpu_hours": "1", "justification": "x"},
        format="json",
    )
    assert bad_month.status_code == 400
    assert "2027-07 is not in FY2027 Q1" in bad_month.json()["detail"]
    line_id = added.json()["id"]
    patched = api(world.ads_owner).patch(
        f"/api/v1/plan-lines/{line_id}/", {"gpu_hours": "90"}, format="json"
    )
    assert patched.json()["gpu_hours"] == "90.00"
    filed = api(world.ads_owner).post(f"/api/v1/capacity-plans/{plan['id']}/file/")
    assert filed.json()["status"] == "filed"
    again = api(world.ads_owner).patch(
        f"/api/v1/plan-lines/{line_id}/", {"gpu_hours": "1"}, format="json"
    )
    assert again.status_code == 409
    started = api(world.admin).post(f"/api/v1/planning-cycles/{cycle_id}/start-review/")
    assert started.status_code == 200
    assert started.json()["unfiled"] == ["PLAT", "RES", "SRCH"]
    for line in plan["lines"] + [added.json()]:
        decided = api(world.infra).post(
            f"/api/v1/plan-lines/{line['id']}/decide/",
            {"decision": "approve", "rationale": "Fine."},
            format="json",
        )
        assert decided.status_code == 200, decided.content
        assert decided.json()["status"] == "approved"
    refused = api(world.product).post(
        f"/api/v1/plan-lines/{line_id}/decide/",
        {"decision": "reject", "rationale": "Mine."},
        format="json",
    )
    assert refused.status_code == 403
    approved = api(world.finance).post(f"/api/v1/planning-cycles/{cycle_id}/approve/")
    assert approved.status_code == 200, approved.content
    body = approved.json()
    assert body["cycle"]["status"] == CycleStatus.APPROVED
    assert {(q["pool"], q["month"]) for q in body["quotas"]} == {
        ("h100", "2027-01"),
        ("h100", "2027-02"),
        ("h100", "2027-03"),
        ("a100", "2027-02"),
    }
    assert [b["month"] for b in body["budgets"]] == ["2027-01", "2027-02", "2027-03"]
    twice = api(world.finance).post(f"/api/v1/planning-cycles/{cycle_id}/approve/")
    assert twice.status_code == 409


def test_api_commitments_scope_and_request(world):
    CommitmentOffer.objects.create(
        pool=world.h100, kind="reserved", term_years=3, discount_percent=D("55")
    )
    assert api(world.ads_member).get("/api/v1/commitment-recommendations/").status_code == 403
    assert api(world.ads_member).get("/api/v1/commitment-offers/").status_code == 403
    run = api(world.infra).post("/api/v1/commitment-recommendations/recompute/")
    assert run.status_code == 200
    (made,) = run.json()["made"]
    assert (made["commit_gpus"], made["annual_cost"], made["break_even_percent"]) == (
        37,
        "598001.40",  # 37 x 8,760 x 1.845
        "45.00",
    )
    assert made["risk"][2]["fall_percent"] == 50
    offers = api(world.finance).get("/api/v1/commitment-offers/").json()
    assert offers["results"][0]["discount_percent"] == "55.00"
    requested = api(world.admin).post(f"/api/v1/commitment-recommendations/{made['id']}/request/")
    assert requested.status_code == 200
    assert requested.json()["status"] == "requested"
    assert requested.json()["approval_request"] == ApprovalRequest.objects.get().pk
    again = api(world.admin).post(f"/api/v1/commitment-recommendations/{made['id']}/request/")
    assert again.status_code == 409
    listed = api(world.finance).get("/api/v1/commitment-recommendations/?status=requested")
    assert listed.json()["count"] == 1


# --- Query counts ------------------------------------------------------------------------------


def _more_units(world, count: int) -> None:
    """More units on the H100 pool, each with an owner: each gets a plan of three lines."""
    for n in range(count):
        unit = BusinessUnitFactory(code=f"X{n}", name=f"Unit {n}")
        unit.owner = UserFactory(username=f"owner-x{n}", units=[unit])
        unit.save()
        PoolUsage.objects.create(
            pool=world.h100, business_unit=unit, day=dt.date(2026, 11, 20), gpu_hours=D(5)
        )


@pytest.mark.parametrize("extra", [0, 6])
def test_pages_and_lists_read_in_a_bounded_number_of_queries(
    world, extra, django_assert_max_num_queries
):
    _more_units(world, extra)
    cycle = planning.cycle_open(fiscal_year=2027, quarter=1, by=world.finance)
    for plan in cycle.plans.all():
        planning.plan_file(plan=plan, by=plan.business_unit.owner or world.outsider)
    kinds = ["committed_use", "savings_plan", "reserved"] if extra else ["committed_use"]
    for kind in kinds:
        for years in (1, 3) if extra else (1,):
            CommitmentOffer.objects.create(
                pool=world.h100, kind=kind, term_years=years, discount_percent=D("35")
            )
    commitment_services.commitment_recommendations_compute()
    finance, admin = browser(world.finance), api(world.finance)
    ads = plan_of(cycle, world.ads).get_absolute_url()
    for url, limit in (
        (CYCLES, 12),
        (cycle.get_absolute_url(), 16),
        (ads, 16),
        (COMMITMENTS, 12),
    ):
        with django_assert_max_num_queries(limit):
            assert finance.get(url).status_code == 200
    for url in (
        "/api/v1/planning-cycles/",
        "/api/v1/capacity-plans/",
        "/api/v1/plan-lines/",
        "/api/v1/commitment-recommendations/",
        "/api/v1/commitment-offers/",
    ):
        with django_assert_max_num_queries(8):
            assert admin.get(url).status_code == 200


def test_anonymous_callers_get_nothing(world, cycle):
    assert Client().get(CYCLES).status_code == 302
    assert APIClient().get("/api/v1/planning-cycles/").status_code in (401, 403)
    assert APIClient().get("/api/v1/plan-lines/").status_code in (401, 403)
    approver = UserFactory(username="nobody", roles=[Role.APPROVER])
    assert browser(approver).get(plan_of(cycle, world.ads).get_absolute_url()).status_code == 404
    assert browser(approver).get(COMMITMENTS).status_code == 403


def test_a_cycle_opened_by_mistake_is_cancelled_and_its_quarter_opened_again(world, cycle):
    from governance.choices import ConflictStatus, DecisionOutcome
    from governance.models import CapacityConflict, Decision

    ads, res = plan_of(cycle, world.ads), plan_of(cycle, world.res)
    planning.plan_line_update(
        line=PlanLine.objects.get(plan=res, pool=world.h100, month=JAN),
        by=world.res_owner,
        gpu_hours="40000",
    )
    planning.plan_file(plan=ads, by=world.ads_owner)
    planning.plan_file(plan=res, by=world.res_owner)
    [conflict] = PlanConflict.objects.filter(cycle=cycle)  # filing over capacity opens one
    planning.cycle_start_review(cycle=cycle, by=world.admin)
    page = cycle.get_absolute_url()

    assert "Cancel this cycle" in browser(world.finance).get(page).content.decode()
    assert "Cancel this cycle" not in browser(world.ads_owner).get(page).content.decode()
    assert browser(world.ads_owner).post(f"{page}cancel/", {"reason": "x"}).status_code == 403
    no_reason = browser(world.finance).post(f"{page}cancel/", {"reason": " "})
    assert no_reason.status_code == 400
    assert PlanningCycle.objects.get(pk=cycle.pk).status == "review"

    done = browser(world.finance).post(f"{page}cancel/", {"reason": "Opened with the wrong board."})
    assert (done.status_code, done["Location"]) == (302, page)
    cycle.refresh_from_db()
    assert cycle.status == "cancelled"
    decision = Decision.objects.get(subject_id=cycle.pk, outcome=DecisionOutcome.REJECTED)
    assert (decision.rationale, decision.decided_by) == (
        "Opened with the wrong board.",
        world.finance,
    )
    assert decision.evidence["status_before"] == "review"
    withdrawn = CapacityConflict.objects.get(pk=conflict.conflict_id)
    assert (withdrawn.status, withdrawn.decision) == (ConflictStatus.RESOLVED, decision)
    body = browser(world.finance).get(page).content.decode()
    assert "Opened with the wrong board." in body
    assert "Cancel this cycle" not in body

    # A plan's mail still queued from the opening is not sent.
    assert planning.plan_notify(plan_id=ads.pk) is False
    # Nothing moves in a cancelled cycle, and it is not cancelled twice.
    with pytest.raises(Exception, match="cancelled"):
        planning.plan_reopen(plan=ads, by=world.ads_owner)
    again = browser(world.finance).post(f"{page}cancel/", {"reason": "again"})
    assert again.status_code == 409
    # The schedule never reopens the quarter by itself; a person opens it again.
    due = dt.datetime(2027, 1, 1, tzinfo=dt.UTC) - dt.timedelta(days=1)
    assert planning.planning_cycle_open_due(now=due) is None
    reopened = planning.cycle_open(fiscal_year=2027, quarter=1, by=world.admin)
    assert reopened.pk != cycle.pk
    assert reopened.status == "open"
    assert PlanningCycle.objects.filter(fiscal_year=2027, quarter=1).count() == 2


def test_an_approved_cycle_is_not_cancelled_and_the_api_checks_roles_first(world, cycle):
    url = f"/api/v1/planning-cycles/{cycle.pk}/cancel/"
    assert api(world.ads_owner).post(url, {}, format="json").status_code == 403
    assert api(world.finance).post(url, {}, format="json").status_code == 400
    done = api(world.finance).post(url, {"reason": "Wrong quarter."}, format="json")
    assert (done.status_code, done.json()["status"]) == (200, "cancelled")
    assert api(world.finance).post(url, {"reason": "again"}, format="json").status_code == 409

    approved = PlanningCycle.objects.create(
        fiscal_year=2027,
        quarter=2,
        first_month=dt.date(2027, 4, 1),
        last_month=dt.date(2027, 6, 1),
        status="approved",
        opened_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
    )
    refused = api(world.finance).post(
        f"/api/v1/planning-cycles/{approved.pk}/cancel/", {"reason": "Late."}, format="json"
    )
    assert refused.status_code == 409
    assert "quotas and budgets are in force" in refused.json()["detail"]


def test_the_schedule_opens_a_quarter_whose_early_cycle_was_cancelled(world, clock):
    # Opened months early by mistake (Q2 instead of Q1), and cancelled before Q2's opening.
    early = planning.cycle_open(fiscal_year=2027, quarter=2, by=world.finance)
    planning.cycle_cancel(cycle=early, by=world.finance, reason="Meant Q1.")
    clock.move_to(dt.datetime(2027, 3, 10, 6, 0, tzinfo=dt.UTC))  # in Q2's opening window
    opened = planning.planning_cycle_open_due()
    assert opened is not None
    assert (opened.fiscal_year, opened.quarter, opened.status) == (2027, 2, "open")
    assert planning.planning_cycle_open_due() is None  # once
