from decimal import Decimal as D

from costs import selectors
from tests.costs.conftest import OCT


def test_chargeback_get_reconciles_units_and_unallocated_to_the_billed_total(october):
    result = selectors.chargeback_get(user=None, month=OCT)
    usd = result.currencies["USD"]
    assert {line.code: line.amount for line in usd.lines} == {
        "ADS": D("10.01"),
        "RES": D("3.75"),
        "UNALLOCATED": D("2.00"),
    }
    assert usd.total == D("15.76")
    assert usd.reconciles
    assert result.complete


def test_chargeback_get_shows_a_scoped_person_only_their_units_with_the_same_amounts(october):
    result = selectors.chargeback_get(user=october.researcher, month=OCT)
    usd = result.currencies["USD"]
    assert [(line.code, line.amount) for line in usd.lines] == [("RES", D("3.75"))]
    assert usd.total == D("3.75")
    assert not result.complete


def test_chargeback_get_service_lines_add_up_to_each_unit(october):
    for line in selectors.chargeback_get(user=None, month=OCT).currencies["USD"].lines:
        assert sum(line.by_service.values()) == line.amount
        assert sum(line.by_charge_category.values()) == line.amount


def test_cost_row_list_scopes_to_the_persons_business_units(october):
    assert {
        r.tag_set.business_unit.code for r in selectors.cost_row_list(user=october.ads_engineer)
    } == {"ADS"}
    assert selectors.cost_row_list(user=october.finance).count() == 4


def test_unallocated_by_key_groups_by_the_tags_that_carry_it(october):
    groups = selectors.unallocated_by_key(month=OCT)
    assert [(g["key"], g["value"], g["amount"]) for g in groups] == [
        ("team", "mystery", D("2.000000000000000000"))
    ]


def test_chargeback_daily_gives_each_unit_its_days(october):
    daily = selectors.chargeback_daily(user=None, month=OCT)["USD"]
    assert set(daily) == {"RES", "ADS", "UNALLOCATED"}
    assert len(daily["RES"]) == 2
