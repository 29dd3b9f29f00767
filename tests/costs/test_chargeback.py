"""Statements through the database: the issue's examples, the lifecycle, scoping and mail."""

import datetime as dt
from decimal import Decimal as D

import pytest

from costs import chargeback
from costs.models import (
    AllocationPolicy,
    CapacityQuota,
    PeriodStatus,
    SlaPenaltyPolicy,
    Statement,
)
from governance.exceptions import ConflictError, PermissionDeniedError
from governance.models import ServiceLevelObjective, SloMeasurement
from registry.models import CapacityPool, Endpoint, HardwareProfile, PoolUsage
from tests.costs.conftest import CHECKOUT, OCT, import_file
from tests.factories import UserFactory, focus_line

NOV = dt.date(2026, 11, 1)


def totals(result, currency="USD"):
    return {s.unit.code: s.total for s in result.currencies[currency].statements}


def test_shared_overhead_splits_proportionally(abc):
    result = chargeback.statements_compute(OCT)
    assert totals(result) == {"A": D("720.00"), "B": D("360.00"), "C": D("120.00"), "PLAT": D("0")}
    direct = result.statement("A").lines[0]
    assert direct.kind == "direct"
    assert "rule #10 team in [a]" in direct.explanation
    assert result.currencies["USD"].reconciles


def test_sla_penalty_on_bs_endpoint(abc):
    Endpoint.objects.create(
        provider="aws",
        account_id="111122223333",
        name="checkout",
        resource_id=CHECKOUT,
        business_unit=abc["B"],
    )
    slo = ServiceLevelObjective.objects.create(
        name="checkout-availability",
        service="checkout",
        indicator="availability",
        target=D("99.9"),
        provider=abc["PLAT"],
    )
    SlaPenaltyPolicy.objects.create(slo=slo)
    for day in range(1, 31):
        SloMeasurement.objects.create(
            slo=slo, day=dt.date(2026, 10, day), value=D("99.5"), good=1990, total=2000
        )
    result = chargeback.statements_compute(OCT)
    b, plat = result.statement("B"), result.statement("PLAT")
    assert b.subtotal("penalty") == D("-30.00")
    assert plat.subtotal("penalty") == D("30.00")
    assert sum(totals(result).values()) == D("1200.00")
    assert "99.500 % (requests, 30 days)" in b.lines[-1].explanation


def test_overage_surcharge_to_the_pool_owner(abc):
    hardware = HardwareProfile.objects.create(name="1 x H100", accelerator="H100")
    pool = CapacityPool.objects.create(
        code="h100",
        name="H100 pool",
        provider="aws",
        hardware_profile=hardware,
        accelerator_count=64,
        owner=abc["PLAT"],
    )
    CapacityQuota.objects.create(
        business_unit=abc["C"],
        pool=pool,
        first_month=OCT,
        gpu_hours=100,
        unit_price=D("2.00"),
        currency="USD",
        multiplier=D("1.5"),
    )
    for day, hours in ((1, 60), (2, 70)):
        PoolUsage.objects.create(
            pool=pool, business_unit=abc["C"], day=dt.date(2026, 10, day), gpu_hours=hours
        )
    result = chargeback.statements_compute(OCT)
    assert result.statement("C").subtotal("surcharge") == D("30.00")
    assert result.statement("PLAT").subtotal("surcharge") == D("-30.00")
    assert sum(totals(result).values()) == D("1200.00")


def test_publish_close_and_late_data_becomes_an_adjustment(
    abc, tmp_path, mailoutbox, django_capture_on_commit_callbacks
):
    finance = abc["finance"]
    with django_capture_on_commit_callbacks(execute=True):
        chargeback.period_publish(month=OCT, by=finance)
    assert sorted(m.to[0] for m in mailoutbox) == [
        "owner-a@example.com",
        "owner-b@example.com",
        "owner-c@example.com",
        "owner-plat@example.com",
    ]
    assert "/costs/statements/2026-10/A/" in mailoutbox[0].body
    chargeback.period_close(month=OCT, by=finance)
    with pytest.raises(ConflictError, match="closed month never changes"):
        chargeback.period_publish(month=OCT, by=finance)
    with pytest.raises(ConflictError):
        chargeback.period_unpublish(month=OCT, by=finance)

    # A late October row for A, and November's own costs.
    import_file(
        tmp_path / "oct-late.csv",
        [
            focus_line(cost="600.00", tags={"team": "a"}, resource="a-gpu"),
            focus_line(cost="50.00", tags={"team": "a"}, resource="a-gpu-late", day="2026-10-30"),
            focus_line(cost="300.00", tags={"team": "b"}, resource=CHECKOUT),
            focus_line(cost="100.00", tags={"team": "c"}, resource="c-gpu"),
            focus_line(cost="200.00", tags={"team": "plat"}, resource="control-plane"),
        ],
    )
    closed = chargeback.statements_get(user=finance, month=OCT)
    assert totals(closed)["A"] == D("720.00")  # unchanged
    import_file(
        tmp_path / "nov.csv",
        [focus_line(cost="10.00", tags={"team": "a"}, period="2026-11-01", day="2026-11-02")],
    )
    november = chargeback.statements_compute(NOV)
    a = november.statement("A")
    adjustment = next(line for line in a.lines if line.kind == "adjustment")
    # A now takes 650/1050 of the 200.00 overhead: 650 + 123.81 = 773.81, was 720.00.
    assert adjustment.amount == D("53.81")
    assert adjustment.detail == {"month": "2026-10", "was": "720.00", "now": "773.81"}
    usd = november.currencies["USD"]
    assert usd.adjustments == D("50.00")
    assert usd.reconciles
    recon = {r.currency: r for r in chargeback.reconciliation(month=OCT, user=finance)}
    assert recon["USD"].reconciles
    assert recon["USD"].late == D("50.00")


def test_members_see_only_their_own_published_statement(abc):
    member = UserFactory(username="b-member", units=[abc["B"]])
    assert chargeback.statements_get(user=member, month=OCT).currencies == {}  # draft
    chargeback.period_publish(month=OCT, by=abc["finance"])
    seen = chargeback.statements_get(user=member, month=OCT)
    assert [s.unit.code for s in seen.currencies["USD"].statements] == ["B"]
    assert not seen.complete
    with pytest.raises(PermissionDeniedError):
        chargeback.period_publish(month=NOV, by=member)
    with pytest.raises(PermissionDeniedError):
        chargeback.period_close(month=OCT, by=member)
    assert Statement.objects.filter(period__month=OCT).count() == 4
    assert chargeback.period_of(OCT).status == PeriodStatus.PUBLISHED


def test_credit_follows_the_usage_it_corrects(abc, tmp_path):
    import_file(
        tmp_path / "oct-credit.csv",
        [
            focus_line(cost="600.00", tags={"team": "a"}, resource="a-gpu"),
            focus_line(cost="300.00", tags={"team": "b"}, resource=CHECKOUT),
            focus_line(cost="100.00", tags={"team": "c"}, resource="c-gpu"),
            focus_line(cost="200.00", tags={"team": "plat"}, resource="control-plane"),
            focus_line(cost="-60.00", category="Credit", resource="a-gpu"),
        ],
    )
    result = chargeback.statements_compute(OCT)
    a = result.statement("A")
    assert a.subtotal("credit") == D("-60.00")
    assert (
        "follows the usage of a-gpu" in next(x for x in a.lines if x.kind == "credit").explanation
    )
    assert result.currencies["USD"].unallocated == D("0.00")


def test_commitments_follow_the_basis(abc, tmp_path):
    """Billed: a savings-plan purchase lands whole in the month it was bought. Effective: the
    purchase is not charged; the usage it covers carries its amortised share instead."""
    import_file(
        tmp_path / "oct-commit.csv",
        [
            focus_line(
                cost="1200.00",
                effective="0",
                tags={"team": "a"},
                category="Purchase",
                resource="sp-1",
                service="Savings Plans for AWS Compute usage",
            ),
            focus_line(cost="0", effective="100.00", tags={"team": "a"}, resource="a-gpu"),
        ],
    )
    policy = AllocationPolicy.objects.get()
    billed = chargeback.statements_compute(OCT).statement("A")
    assert billed.subtotal("direct") == D("1200.00")
    policy.basis = "effective"
    policy.save()
    effective = chargeback.statements_compute(OCT)
    a = effective.statement("A")
    assert a.subtotal("direct") == D("100.00")
    assert effective.basis == "effective"
    assert "Effective cost of" in a.lines[0].explanation
    assert effective.currencies["USD"].reconciles
