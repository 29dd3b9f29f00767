"""The chargeback arithmetic, with the issue's worked examples as exact Decimals."""

import datetime as dt
from decimal import Decimal as D

import pytest

from costs.penalties import Band, Measurement, attainment, band_for, bands_parse, credit
from costs.statements import (
    Adjustment,
    ChargebackError,
    DirectCost,
    Penalty,
    Pool,
    Surcharge,
    Unit,
    statements_build,
)

A, B, C, P = (
    Unit(1, "A", "Alpha"),
    Unit(2, "B", "Beta"),
    Unit(3, "C", "Gamma"),
    Unit(9, "PLAT", "Platform"),
)
UNITS = {u.id: u for u in (A, B, C, P)}
BANDS = bands_parse(
    [
        {"below": "99.9", "credit_percent": "10"},
        {"below": "99.0", "credit_percent": "25"},
        {"below": "95.0", "credit_percent": "100"},
    ]
)


def direct(**amounts):
    ids = {"A": 1, "B": 2, "C": 3, "PLAT": 9, "UNALLOCATED": None}
    return [DirectCost(ids[code], "Compute", D(amount), rows=1) for code, amount in amounts.items()]


def totals(result):
    return {s.unit.code: s.total for s in result.statements}


def test_shared_cost_proportional_to_direct_spend():
    result = statements_build(
        currency="USD",
        units=UNITS,
        direct=direct(A="600.00", B="300.00", C="100.00", PLAT="200.00"),
        pools=[Pool("Platform overhead", source_unit_id=9, method="proportional")],
    )
    assert totals(result) == {
        "A": D("720.00"),
        "B": D("360.00"),
        "C": D("120.00"),
        "PLAT": D("0.00"),
    }
    share = next(line for line in result.statements[0].lines if line.kind == "shared")
    assert share.amount == D("120.00")
    assert share.detail["share_percent"] == "60.00"
    assert "600.00 USD of 1,000.00 USD direct cost after credits = 60.00 %" in share.explanation
    assert result.reconciles
    assert result.month_total == D("1200.00")


def test_even_split_gives_the_odd_cent_to_the_first_code():
    result = statements_build(
        currency="USD",
        units=UNITS,
        direct=direct(A="1.00", B="1.00", C="1.00", UNALLOCATED="100.00"),
        pools=[Pool("Untagged", source_unit_id=None, method="even")],
    )
    shares = {s.unit.code: s.subtotal("shared") for s in result.statements}
    assert shares == {"A": D("33.34"), "B": D("33.33"), "C": D("33.33")}
    assert sum(shares.values()) == D("100.00")
    assert result.unallocated == D("0.00")
    assert result.reconciles


def test_fixed_percentages_must_add_up_to_100():
    pool = Pool("GPU cluster", 9, "fixed", shares={1: D("50"), 2: D("30"), 3: D("20")})
    result = statements_build(
        currency="USD", units=UNITS, direct=direct(PLAT="99.99"), pools=[pool]
    )
    assert totals(result) == {"A": D("49.99"), "B": D("30.00"), "C": D("20.00"), "PLAT": D("0.00")}
    broken = Pool("GPU cluster", 9, "fixed", shares={1: D("50"), 2: D("30")})
    with pytest.raises(ChargebackError, match="add up to 80 %, not 100 %"):
        statements_build(currency="USD", units=UNITS, direct=direct(PLAT="1"), pools=[broken])


def test_sla_penalty_moves_the_band_of_the_charge_from_provider_to_consumer():
    measured = attainment(
        indicator="availability",
        target=D("99.9"),
        measurements=[Measurement(D("99.5"), good=995, total=1000)] * 30,
    )
    assert measured.percent == D("99.5")
    band = band_for(measured.percent, BANDS)
    assert band == Band(D("99.9"), D("10"))
    penalty = Penalty(
        slo="checkout-availability",
        consumer_id=2,
        provider_id=9,
        charge=D("300.00"),
        charge_label="endpoint checkout",
        target=D("99.9"),
        indicator="availability",
        attainment=measured.describe(),
        band=band,
    )
    base = direct(A="600.00", B="300.00", C="100.00")
    before = statements_build(currency="USD", units=UNITS, direct=base)
    after = statements_build(currency="USD", units=UNITS, direct=base, penalties=[penalty])
    b, plat = (next(s for s in after.statements if s.unit.code == code) for code in ("B", "PLAT"))
    assert b.subtotal("penalty") == D("-30.00")
    assert plat.subtotal("penalty") == D("30.00")
    assert after.statements_total == before.statements_total == D("1000.00")
    assert "band below 99.9 % → 10 %" in b.lines[-1].explanation


@pytest.mark.parametrize(
    ("percent", "credit_percent"),
    [("99.95", None), ("99.9", None), ("99.5", "10"), ("98.99", "25"), ("94", "100")],
)
def test_bands(percent, credit_percent):
    band = band_for(D(percent), BANDS)
    assert (band.credit_percent if band else None) == (
        D(credit_percent) if credit_percent else None
    )


def test_overage_surcharge_goes_to_the_pool_owner():
    surcharge = Surcharge(3, 9, "H100 pool", D("100"), D("130"), D("2.00"), D("1.5"))
    base = direct(A="600.00", B="300.00", C="100.00")
    result = statements_build(currency="USD", units=UNITS, direct=base, surcharges=[surcharge])
    c, plat = (next(s for s in result.statements if s.unit.code == code) for code in ("C", "PLAT"))
    assert c.subtotal("surcharge") == D("30.00")
    assert plat.subtotal("surcharge") == D("-30.00")
    assert result.statements_total == D("1000.00")
    assert result.reconciles
    assert "30 GPU-h over x 2.00 USD per GPU-h x (1.5 - 1)" in c.lines[-1].explanation
    under = Surcharge(3, 9, "H100 pool", D("100"), D("90"), D("2.00"), D("1.5"))
    assert (
        not statements_build(currency="USD", units=UNITS, direct=base, surcharges=[under])
        .statements[2]
        .subtotal("surcharge")
    )


def test_rounding_reconciles_to_the_cent():
    costs = [
        DirectCost(uid, f"S{i}", D("0.3333333"), rows=1)
        for i in range(7)
        for uid in (1, 2, 3, None)
    ]
    result = statements_build(
        currency="USD", units=UNITS, direct=costs, pools=[Pool("Untagged", None, "proportional")]
    )
    assert result.month_total == D("9.33")
    assert result.statements_total + result.unallocated == D("9.33")
    for statement in result.statements:
        assert statement.total == sum(line.amount for line in statement.lines)


def test_adjustments_carry_closed_months_into_this_one():
    adjustment = Adjustment(unit_id=1, month=dt.date(2026, 9, 1), was=D("100.00"), now=D("112.34"))
    result = statements_build(
        currency="USD", units=UNITS, direct=direct(A="10"), adjustments=[adjustment]
    )
    line = result.statements[0].lines[-1]
    assert (line.kind, line.amount, line.label) == (
        "adjustment",
        D("12.34"),
        "Adjustment for September 2026",
    )
    assert result.statements_total == D("22.34")
    assert result.reconciles


def test_credits_are_their_own_lines():
    costs = [
        DirectCost(1, "Compute", D("100"), rows=3),
        DirectCost(1, "Compute", D("-20"), credit=True, rows=1),
    ]
    result = statements_build(currency="USD", units=UNITS, direct=costs)
    assert [(line.kind, line.amount) for line in result.statements[0].lines] == [
        ("direct", D("100.00")),
        ("credit", D("-20.00")),
    ]


def test_bands_are_checked():
    with pytest.raises(ValueError, match="never credit less"):
        bands_parse(
            [{"below": "99.9", "credit_percent": "50"}, {"below": "99", "credit_percent": "10"}]
        )
    with pytest.raises(ValueError, match="exactly the keys"):
        bands_parse([{"below": "99.9"}])
    assert credit(charge=D("0.05"), band=Band(D("99"), D("10")), currency="USD") == D("0.01")
