import datetime as dt
import re
from decimal import Decimal as D

import pytest

from costs import selectors, services
from costs.models import AllocationRule, CostRow, ImportStatus, TagSet
from governance.exceptions import DomainError, PermissionDeniedError
from governance.models import BusinessUnit
from tests.factories import focus_line, write_focus

OCT = dt.date(2026, 10, 1)


@pytest.fixture
def rules(org):
    services.allocation_rule_save(
        business_unit=org.research, tag_key="team", tag_values=["research"], priority=10
    )
    services.allocation_rule_save(
        business_unit=org.ads, tag_key="cost-center", tag_values=["4410"], priority=20
    )
    return org


def _state():
    return (
        CostRow.objects.count(),
        sorted(CostRow.objects.values_list("billed_cost", flat=True)),
        TagSet.objects.count(),
    )


def test_billing_import_stores_daily_rows_and_reports_totals(tmp_path, rules):
    path = write_focus(
        tmp_path / "oct.csv",
        [
            focus_line(cost="1.25", tags={"team": "research"}),
            focus_line(cost="2.50", tags={"team": "research"}),  # same resource/day: one row
            focus_line(cost="10.005", tags={"cost-center": "4410"}, resource="r-2"),
            focus_line(cost="-1.00", category="Credit", tags=None, resource=""),
        ],
    )
    result = services.billing_import(path=path)
    assert result.status == ImportStatus.SUCCEEDED, result.error
    assert result.detected_format == "focus"
    assert (result.rows_read, result.rows_stored) == (4, 3)
    assert result.billed_totals == {"USD": "12.755000000000000000"}
    assert result.billing_periods == ["2026-10"]
    chargeback = selectors.chargeback_get(user=None, month=OCT).as_dict()
    assert chargeback["currencies"]["USD"]["business_units"] == {
        "RES": "3.75",
        "ADS": "10.01",
        "UNALLOCATED": "-1.00",
    }
    assert chargeback["currencies"]["USD"]["total"] == "12.76"


def test_billing_import_twice_replaces_instead_of_duplicating(tmp_path, rules):
    path = write_focus(tmp_path / "oct.csv", [focus_line(cost="5.00", tags={"team": "research"})])
    first = services.billing_import(path=path)
    second = services.billing_import(path=path)
    assert CostRow.objects.count() == 1
    first.refresh_from_db()
    assert first.superseded_by == second
    assert selectors.chargeback_get(user=None, month=OCT).currencies["USD"].total == D("5.00")


def test_billing_import_of_a_corrected_file_replaces_only_its_own_period(tmp_path, rules):
    services.billing_import(
        path=write_focus(
            tmp_path / "sep.csv", [focus_line(cost="7.00", period="2026-09-01", day="2026-09-03")]
        )
    )
    services.billing_import(path=write_focus(tmp_path / "oct.csv", [focus_line(cost="5.00")]))
    services.billing_import(path=write_focus(tmp_path / "oct-fixed.csv", [focus_line(cost="6.00")]))
    totals = {
        m: selectors.chargeback_get(user=None, month=m).currencies["USD"].total
        for m in (dt.date(2026, 9, 1), OCT)
    }
    assert totals == {dt.date(2026, 9, 1): D("7.00"), OCT: D("6.00")}


def test_billing_import_writes_totals_as_plain_decimals(tmp_path, rules):
    path = write_focus(tmp_path / "zero.csv", [focus_line(cost="1.5"), focus_line(cost="-1.5")])
    result = services.billing_import(path=path)
    assert result.billed_totals == {"USD": "0.000000000000000000"}
    assert result.period_totals == {"2026-10": {"USD": "0.000000000000000000"}}


def test_billing_import_keeps_currencies_apart(tmp_path, rules):
    path = write_focus(
        tmp_path / "mixed.csv",
        [
            focus_line(cost="100", currency="USD"),
            focus_line(cost="900", currency="NOK", account="99"),
        ],
    )
    result = services.billing_import(path=path)
    assert set(result.billed_totals) == {"USD", "NOK"}
    chargeback = selectors.chargeback_get(user=None, month=OCT)
    assert {c: cur.total for c, cur in chargeback.currencies.items()} == {
        "NOK": D("900.00"),
        "USD": D("100.00"),
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "BillingAccountId,BillingCurrency,BillingPeriodStart,ChargeCategory,ChargePeriodStart\n"
            "1,USD,2026-10-01,Usage,2026-10-02\n",
            "line 1: missing required column BilledCost",
        ),
        ("\x00\x01\x02garbage\xff\xfe", "line 1"),
    ],
    ids=["missing-cost-columns", "garbled"],
)
def test_billing_import_of_a_bad_file_fails_and_stores_nothing(tmp_path, rules, content, expected):
    services.billing_import(path=write_focus(tmp_path / "good.csv", [focus_line(cost="5")]))
    before = _state()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content.encode("latin-1"))
    result = services.billing_import(path=bad)
    assert result.status == ImportStatus.FAILED
    assert "bad.csv" in result.error
    assert expected in result.error
    assert _state() == before


def test_billing_import_names_line_and_column_of_a_text_cost(tmp_path, rules):
    good = write_focus(tmp_path / "oct.csv", [focus_line(cost="5")])
    services.billing_import(path=good)
    before = _state()
    bad = write_focus(tmp_path / "oct-bad.csv", [focus_line(cost="1"), focus_line(cost="12,50")])
    result = services.billing_import(path=bad)
    assert result.status == ImportStatus.FAILED
    assert "oct-bad.csv, line 3, column BilledCost: '12,50' is not a number" in result.error
    assert _state() == before


def test_billing_import_of_a_truncated_file_names_the_cut_line(tmp_path, rules):
    full = write_focus(tmp_path / "full.csv", [focus_line(cost="1"), focus_line(cost="2")])
    text = full.read_text()
    cut = tmp_path / "cut.csv"
    cut.write_text(text[: text.rindex("USD")])  # the last line stops mid-row
    result = services.billing_import(path=cut)
    assert result.status == ImportStatus.FAILED
    assert "cut.csv, line 3" in result.error
    assert CostRow.objects.count() == 0


def test_billing_import_reports_an_unparsable_date_with_its_column(tmp_path, rules):
    path = write_focus(tmp_path / "d.csv", [focus_line(cost="1", day="2026-13-45")])
    result = services.billing_import(path=path)
    assert "d.csv, line 2, column ChargePeriodStart" in result.error


def test_billing_import_refuses_people_without_a_cost_role(tmp_path, rules):
    path = write_focus(tmp_path / "oct.csv", [focus_line(cost="1")])
    with pytest.raises(PermissionDeniedError):
        services.billing_import(path=path, by=rules.researcher)


def test_allocation_rule_save_reattributes_existing_costs(tmp_path, rules):
    services.billing_import(
        path=write_focus(
            tmp_path / "oct.csv", [focus_line(cost="4.00", tags={"Team": "ML-Research"})]
        )
    )
    assert selectors.chargeback_get(user=None, month=OCT).currencies["USD"].unallocated == D("4")
    services.allocation_rule_save(
        business_unit=rules.research, tag_key="team", tag_values=["ml-research"], priority=5
    )
    lines = selectors.chargeback_get(user=None, month=OCT).as_dict()["currencies"]["USD"]
    assert lines["business_units"] == {"RES": "4.00"}


def test_allocation_rule_delete_sends_costs_back_to_unallocated(tmp_path, rules):
    services.billing_import(
        path=write_focus(tmp_path / "oct.csv", [focus_line(cost="4.00", tags={"team": "research"})])
    )
    services.allocation_rule_delete(rule=AllocationRule.objects.get(tag_key="team"))
    assert selectors.chargeback_get(user=None, month=OCT).currencies["USD"].unallocated == D("4")


def test_allocation_rules_load_creates_units_and_rules_idempotently(db):
    text = """
business_units:
  - {code: RES, name: Research}
  - {code: ADS, name: Ads Ranking}
rules:
  - {business_unit: RES, tag: team, values: [research, ml-research], priority: 10}
  - {business_unit: ADS, tag: cost-center, values: ["4410"], priority: 20}
"""
    first = services.allocation_rules_load(text=text)
    second = services.allocation_rules_load(text=text)
    assert (first.business_units_created, first.rules_created) == (2, 2)
    assert (second.business_units_created, second.rules_created) == (0, 0)
    assert (second.business_units_updated, second.rules_updated) == (0, 0)
    assert list(AllocationRule.objects.values_list("tag_key", "tag_values")) == [
        ("team", ["ml-research", "research"]),
        ("cost-center", ["4410"]),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - {business_unit: NOPE, tag: team}\n", "rules[1]: business unit 'NOPE'"),
        ("rules: [ {tag: team\n", "rules.yaml: line 4, column 1: not valid YAML"),
        ("rules:\n  - {business_unit: KEEP}\n", "rules[1]: needs a tag key"),
        ("rulez: []\n", "unknown key(s) rulez"),
    ],
)
def test_allocation_rules_load_rejects_bad_yaml_and_changes_nothing(db, text, message):
    units = "business_units:\n  - {code: KEEP, name: Kept only if all is well}\n"
    with pytest.raises(DomainError, match=re.escape(message)):
        services.allocation_rules_load(text=units + text)
    assert not BusinessUnit.objects.exists()
    assert not AllocationRule.objects.exists()


@pytest.mark.parametrize("kind", ["csv.gz", "parquet"])
def test_billing_import_reads_gzipped_csv_and_parquet(tmp_path, rules, kind):
    import gzip

    import polars as pl

    csv_path = write_focus(
        tmp_path / "oct.csv",
        [
            focus_line(cost="1.25", tags={"team": "research"}),
            focus_line(cost="10.005", tags={"cost-center": "4410"}, resource="r-2"),
        ],
    )
    if kind == "csv.gz":
        path = tmp_path / "oct.csv.gz"
        path.write_bytes(gzip.compress(csv_path.read_bytes()))
    else:
        path = tmp_path / "oct.parquet"
        pl.read_csv(csv_path, infer_schema=False).write_parquet(path)
    result = services.billing_import(path=path)
    assert result.status == ImportStatus.SUCCEEDED, result.error
    assert result.detected_format == "focus"
    units = selectors.chargeback_get(user=None, month=OCT).as_dict()["currencies"]["USD"]
    assert units["business_units"] == {"ADS": "10.01", "RES": "1.25"}


def test_billing_import_of_a_cut_gzip_fails_cleanly(tmp_path, rules):
    import gzip

    csv_path = write_focus(tmp_path / "oct.csv", [focus_line(cost="1.25")] * 50)
    data = gzip.compress(csv_path.read_bytes())
    path = tmp_path / "oct.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    result = services.billing_import(path=path)
    assert result.status == ImportStatus.FAILED
    assert result.error.startswith("oct.csv.gz")
    assert "internal error" not in result.error
    assert not CostRow.objects.exists()


def test_billing_import_detects_a_nested_parquet_gcp_export(tmp_path, rules):
    import polars as pl

    path = tmp_path / "gcp.parquet"
    pl.DataFrame(
        {
            "billing_account_id": ["0000-AAAA"],
            "service": [{"id": "24E6", "description": "BigQuery"}],
            "invoice": [{"month": "202610"}],
            "cost": ["12.50"],
            "currency": ["USD"],
            "usage_start_time": ["2026-10-09 23:00:00+00:00"],
            "labels": [[{"key": "team", "value": "research"}]],
        }
    ).write_parquet(path)
    result = services.billing_import(path=path)
    assert result.status == ImportStatus.SUCCEEDED, result.error
    assert result.detected_format == "gcp-export"
    units = selectors.chargeback_get(user=None, month=OCT).as_dict()["currencies"]["USD"]
    assert units["business_units"] == {"RES": "12.50"}


def test_a_big_import_refreshes_postgresqls_statistics_of_the_cost_rows(
    tmp_path, rules, monkeypatch
):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's (DATABASE_URL=postgres://…)")

    def estimated_rows() -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'costs_costrow'")
            return cursor.fetchone()[0]

    lines = [focus_line(cost="1.00", resource=f"r-{i}") for i in range(3)]
    services.billing_import(path=write_focus(tmp_path / "small.csv", lines))
    before = estimated_rows()
    assert before != 3  # below the threshold: the statistics were left to autovacuum

    monkeypatch.setattr(services, "ANALYZE_AFTER_ROWS", 3)
    services.billing_import(path=write_focus(tmp_path / "big.csv", lines))
    assert estimated_rows() == 3  # what the planner now expects of the table
