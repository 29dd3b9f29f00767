"""Sizing a commitment: the issue's worked example, the risk table, refused inputs; then the
recommendations from a pool's forecast and the purchase request they turn into."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from costs import commitment_services
from costs.commitments import CommitmentError, commitment_size
from costs.models import CommitmentOffer, CommitmentRecommendation
from governance.choices import RequestKind, RequestStatus, Role
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import ApprovalPolicy, ApprovalRequest, PolicyStep
from tests.costs import planning_world
from tests.factories import UserFactory


def test_worked_example_40_gpus_one_year_at_35_percent():
    c = commitment_size(
        low_quantile_gpus=D("40"),
        on_demand_rate=D("4.10"),
        discount_percent=D("35"),
        term_years=1,
        hours_per_year=8760,
    )
    assert c.commit_gpus == 40
    assert c.committed_rate == D("2.665000")
    assert c.annual_cost == D("933816.00")
    assert c.annual_on_demand_cost == D("1436640.00")
    assert c.annual_saving == D("502824.00")
    assert c.break_even_percent == D("65.00")
    assert c.term_cost == D("933816.00")
    assert c.term_hours == 8760


def test_risk_table_when_usage_falls():
    c = commitment_size(
        low_quantile_gpus=D("40"), on_demand_rate=D("4.10"), discount_percent=D("35"), term_years=1
    )
    rows = {r.fall_percent: r for r in c.risk}
    assert rows[10].used_gpus == D("36.00")
    # 4 idle GPUs x 8,760 h x 2.665 committed.
    assert rows[10].wasted_cost == D("93381.60")
    # 36 x 8,760 x 4.10 on demand = 1,292,976.00, less the 933,816.00 committed.
    assert rows[10].net_saving == D("359160.00")
    assert rows[25].net_saving == D("143664.00")  # 30 x 8,760 x 4.10 - 933,816.00
    assert rows[50].used_gpus == D("20.00")
    assert rows[50].wasted_cost == D("466908.00")
    assert rows[50].net_saving == D("-215496.00")


def test_commit_is_the_floor_of_the_low_quantile():
    c = commitment_size(
        low_quantile_gpus=D("12.97"),
        on_demand_rate=D("0.85"),
        discount_percent=D("55"),
        term_years=3,
    )
    assert c.commit_gpus == 12
    assert c.committed_rate == D("0.382500")
    assert c.annual_cost == D("40208.40")  # 12 x 8,760 x 0.3825
    assert c.term_cost == D("120625.20")
    assert c.term_hours == 26280
    assert c.break_even_percent == D("45.00")
    # 10 % below the low quantile is 11.673 GPUs: fewer than the 12 committed.
    assert c.risk[0].used_gpus == D("11.67")
    assert c.risk[0].wasted_cost == D("1095.68")  # 0.327 x 8,760 x 0.3825


def test_nothing_to_commit_below_one_gpu():
    c = commitment_size(
        low_quantile_gpus=D("0.6"), on_demand_rate=D("4.10"), discount_percent=D("35"), term_years=1
    )
    assert (c.commit_gpus, c.annual_cost, c.annual_saving) == (0, D("0.00"), D("0.00"))
    assert c.break_even_percent == D("65.00")
    assert all(r.wasted_cost == 0 for r in c.risk)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"low_quantile_gpus": D("-1")}, "cannot be negative"),
        ({"on_demand_rate": D("0")}, "must be above 0"),
        ({"discount_percent": D("100")}, "above 0 and below 100"),
        ({"discount_percent": D("0")}, "above 0 and below 100"),
        ({"term_years": 0}, "whole number of years"),
        ({"hours_per_year": 9000}, "from 1 to 8,784"),
        ({"on_demand_rate": "abc"}, "is not a number"),
        ({"low_quantile_gpus": D("NaN")}, "not a finite number"),
    ],
)
def test_refused_inputs_say_what_is_wrong(changes, message):
    values = {
        "low_quantile_gpus": D("40"),
        "on_demand_rate": D("4.10"),
        "discount_percent": D("35"),
        "term_years": 1,
        **changes,
    }
    with pytest.raises(CommitmentError, match=message):
        commitment_size(**values)


# --- Recommendations and the purchase request (through the database) --------------------------

clock, world = planning_world.clock, planning_world.world  # the shared fixtures


@pytest.fixture
def offers(world):
    one = CommitmentOffer.objects.create(
        pool=world.h100, kind="committed_use", term_years=1, discount_percent=D("35")
    )
    three = CommitmentOffer.objects.create(
        pool=world.h100, kind="reserved", term_years=3, discount_percent=D("55")
    )
    return one, three


def test_recommendations_from_the_pool_forecasts_low_quantile(world, offers):
    run = commitment_services.commitment_recommendations_compute(by=world.finance)
    one, three = sorted(run.made, key=lambda r: r.term_years)
    # The forecast's 70 days ahead have a low quantile of 900 GPU-hours a day: 37.5 GPUs.
    assert (one.low_quantile_gpus, one.commit_gpus) == (D("37.50"), 37)
    assert (one.on_demand_rate, one.committed_rate) == (D("4.100000"), D("2.665000"))
    assert one.annual_cost == D("863779.80")  # 37 x 8,760 x 2.665
    assert one.annual_saving == D("465112.20")  # 37 x 8,760 x 4.10 - the above
    assert one.break_even_percent == D("65.00")
    assert [r["fall_percent"] for r in one.risk] == [10, 25, 50]
    assert "low quantile 37.50 GPUs over 70 forecast days" in one.risk[0]["basis"]
    assert (three.kind, three.committed_rate, three.break_even_percent) == (
        "reserved",
        D("1.845000"),
        D("45.00"),
    )
    assert run.skipped == []


def test_new_recommendations_supersede_open_ones_and_skip_pools_without_forecast(world, offers):
    first = commitment_services.commitment_recommendations_compute()
    CommitmentOffer.objects.create(
        pool=world.a100, kind="savings_plan", term_years=1, discount_percent=D("20")
    )
    second = commitment_services.commitment_recommendations_compute()
    assert second.superseded == 2
    assert {
        r.status for r in CommitmentRecommendation.objects.filter(pk__in=[r.pk for r in first.made])
    } == {"superseded"}
    assert second.skipped == ["A100 pool: no GPU-hours forecast with a low quantile ahead."]
    with pytest.raises(PermissionDeniedError, match="finance, platform admins"):
        commitment_services.commitment_recommendations_compute(by=world.ads_member)


def test_a_recommendation_becomes_a_reserved_capacity_approval_request(
    world, offers, mailoutbox, django_capture_on_commit_callbacks
):
    policy = ApprovalPolicy.objects.create(
        name="Commitments", kinds=[RequestKind.RESERVED_CAPACITY], priority=10
    )
    PolicyStep.objects.create(policy=policy, order=1, role=Role.FINANCE)
    run = commitment_services.commitment_recommendations_compute()
    three = next(r for r in run.made if r.term_years == 3)
    with django_capture_on_commit_callbacks(execute=True):
        request = commitment_services.commitment_request(recommendation=three, by=world.admin)
    assert request.kind == RequestKind.RESERVED_CAPACITY
    assert request.status == RequestStatus.PENDING
    assert request.business_unit == world.plat  # the pool's owner buys it
    assert request.estimated_cost == three.annual_cost * 3
    assert (request.accelerator, request.accelerator_count) == ("NVIDIA H100", 37)
    assert request.duration_hours == D(26280)
    assert request.subject == three
    assert request.policy == policy
    three.refresh_from_db()
    assert (three.status, three.approval_request) == ("requested", request)
    # The finance approver is e-mailed the link, as for any costly request.
    assert any("fin@example.com" in m.to for m in mailoutbox)
    with pytest.raises(ConflictError, match="This recommendation is purchase requested"):
        commitment_services.commitment_request(recommendation=three, by=world.admin)


def test_requesting_is_refused_with_the_reason(world, offers):
    run = commitment_services.commitment_recommendations_compute()
    one = next(r for r in run.made if r.term_years == 1)
    with pytest.raises(PermissionDeniedError, match="Platform is not one of them"):
        commitment_services.commitment_request(recommendation=one, by=world.finance)
    with pytest.raises(PermissionDeniedError, match="requested by finance, platform admins"):
        commitment_services.commitment_request(recommendation=one, by=world.ads_member)
    CommitmentRecommendation.objects.filter(pk=one.pk).update(commit_gpus=0)
    with pytest.raises(DomainError, match="nothing to buy"):
        commitment_services.commitment_request(recommendation=one, by=world.admin)
    assert not ApprovalRequest.objects.exists()
    # A platform member on the board may file for Platform.
    board_plat = UserFactory(username="bea", roles=[Role.BOARD_INFRA], units=[world.plat])
    two = next(r for r in run.made if r.term_years == 3)
    assert commitment_services.commitment_may_request(board_plat, two)
    assert not commitment_services.commitment_may_request(world.finance, two)
    commitment_services.commitment_dismiss(recommendation=two, by=world.finance)
    with pytest.raises(ConflictError, match="Only an open recommendation"):
        commitment_services.commitment_dismiss(recommendation=two, by=world.finance)


def test_low_quantile_reads_only_the_days_ahead(world):
    # A fitted history point before history_end does not count.
    world.forecast.points.create(
        day=dt.date(2026, 12, 1), expected=D(1), lower=D(0), upper=D(2), low_quantile=D(0)
    )
    low = commitment_services.pool_low_quantile(world.h100, today=dt.date(2026, 12, 3))
    assert (low.gpus, low.days, low.first) == (D("37.50"), 70, dt.date(2026, 12, 3))


@pytest.mark.parametrize(
    ("term", "discount", "field", "message"),
    [
        (2, "35", "term_years", "1 or 3 years, not 2"),
        (1, "100", "discount_percent", "above 0 and below 100"),
        (3, "0", "discount_percent", "above 0 and below 100"),
    ],
)
def test_the_admin_form_refuses_offers_that_cannot_be(world, term, discount, field, message):
    from costs.admin import CommitmentOfferForm

    form = CommitmentOfferForm(
        data={
            "pool": world.h100.pk,
            "kind": "reserved",
            "term_years": term,
            "discount_percent": discount,
        }
    )
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


def test_the_admin_form_refuses_a_second_offer_of_the_same_kind_and_term(world, offers):
    from costs.admin import CommitmentOfferForm

    data = {"pool": world.h100.pk, "kind": "reserved", "term_years": 3, "discount_percent": "50"}
    form = CommitmentOfferForm(data=data)
    assert not form.is_valid()
    assert "already exists" in str(form.errors)
    assert CommitmentOfferForm(data={**data, "kind": "savings_plan"}).is_valid()
