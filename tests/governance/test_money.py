from decimal import Decimal as D

from governance.money import minor_unit, money_distribute, money_round


def test_minor_unit_follows_iso_4217():
    assert minor_unit("USD") == D("0.01")
    assert minor_unit("JPY") == D("1")
    assert minor_unit("KWD") == D("0.001")


def test_money_round_rounds_half_away_from_zero():
    assert money_round(D("0.005"), "USD") == D("0.01")
    assert money_round(D("-0.005"), "USD") == D("-0.01")


def test_money_distribute_parts_sum_to_the_rounded_total():
    parts = {"A": D("0.333333"), "B": D("0.333333"), "C": D("0.333334")}
    result = money_distribute(parts, "USD")
    assert sum(result.values()) == D("1.00")
    assert sorted(result.values()) == [D("0.33"), D("0.33"), D("0.34")]


def test_money_distribute_beats_summing_rounded_parts():
    parts = {k: D("0.005") for k in "ABCDEF"}  # each rounds to 0.01; the total is 0.03
    result = money_distribute(parts, "USD")
    assert sum(result.values()) == D("0.03")


def test_money_distribute_handles_credits_and_negative_parts():
    parts = {"RES": D("100.004"), "ADS": D("-20.006"), "UNALLOCATED": D("0.0049")}
    result = money_distribute(parts, "USD")
    assert sum(result.values()) == money_round(sum(parts.values()), "USD") == D("80.00")


def test_money_distribute_uses_the_currency_minor_unit():
    result = money_distribute({"A": D("10.5"), "B": D("10.5")}, "JPY")
    assert sum(result.values()) == D("21")
    assert all(v == v.to_integral_value() for v in result.values())


def test_money_distribute_is_stable_for_equal_remainders():
    parts = {"A": D("0.005"), "B": D("0.005")}
    assert money_distribute(parts, "USD") == money_distribute(dict(parts), "USD")


def test_money_distribute_splits_a_given_total_exactly():
    parts = {"EC2": D("0.004"), "S3": D("0.004"), "ELB": D("0.004")}  # rounds to 0.01 alone
    assert sum(money_distribute(parts, "USD", total=D("0.02")).values()) == D("0.02")
    assert sum(money_distribute(parts, "USD", total=D("-0.01")).values()) == D("-0.01")
