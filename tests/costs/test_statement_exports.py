"""Finance exports of a month's statements: CSV, XLSX and the FOCUS CSV with allocation."""

import csv
import io
from collections import defaultdict
from decimal import Decimal as D

import pytest
from openpyxl import load_workbook

from costs import chargeback, services
from costs.models import AllocationPolicy, CostRow, SharedPool
from costs.statement_exports import (
    FOCUS_HEADER,
    STATEMENT_EXPORTS,
    sheet_title,
    statements_csv,
    statements_focus_csv,
    statements_xlsx,
)
from tests.costs.conftest import CHECKOUT, OCT, import_file
from tests.factories import BusinessUnitFactory, UserFactory, focus_line

LONG = "X" * 31  # two codes that differ only in their 32nd character


@pytest.fixture
def busy(abc, tmp_path):
    """The same month with many resources, odd cents, credits, untagged cost and JPY."""
    for code in ("D", f"{LONG}1", f"{LONG}2"):
        unit = BusinessUnitFactory(code=code, name=f"Unit {code}")
        services.allocation_rule_save(
            business_unit=unit, tag_key="team", tag_values=[code.lower()], priority=10
        )
    hyperlink = BusinessUnitFactory(code="E", name='=HYPERLINK("http://evil","x")')
    services.allocation_rule_save(
        business_unit=hyperlink, tag_key="team", tag_values=["e"], priority=10
    )
    lines = [
        *(focus_line(cost="100.003", tags={"team": "a"}, resource=f"a-gpu-{i}") for i in range(6)),
        focus_line(cost="0.334", tags={"team": "a"}, resource="a-disk", service="Amazon S3"),
        focus_line(cost="-12.005", tags={"team": "a"}, resource="a-gpu-1", category="Credit"),
        focus_line(cost="300.00", tags={"team": "b"}, resource=CHECKOUT),
        focus_line(cost="-30.00", category="Credit", resource=CHECKOUT),  # follows B's usage
        focus_line(cost="100.00", tags={"team": "c"}, resource="c-gpu"),
        focus_line(cost="33.333", tags={"team": "d"}, resource="d-1"),
        focus_line(cost="33.333", tags={"team": "d"}, resource="d-2", service="Amazon S3"),
        focus_line(cost="10.00", tags={"team": f"{LONG}1".lower()}, resource="l1"),
        focus_line(cost="10.00", tags={"team": f"{LONG}2".lower()}, resource="l2"),
        focus_line(cost="5.00", tags={"team": "e"}, resource="e-1"),
        focus_line(cost="200.00", tags={"team": "plat"}, resource="control-plane"),
        focus_line(cost="41.117", resource="untagged-1"),
        focus_line(cost="8.889", resource="untagged-2", service=""),
        focus_line(cost="1234", tags={"team": "a"}, resource="a-tokyo", currency="JPY"),
        focus_line(cost="99.6", resource="untagged-tokyo", currency="JPY"),
    ]
    import_file(tmp_path / "oct-busy.csv", lines)
    return abc


def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def read_focus(result) -> list[dict[str, str]]:
    return read_csv(b"".join(statements_focus_csv(result, batch=7)))


def per_unit(rows, currency, unit_key, amount_key):
    out = defaultdict(lambda: D(0))
    for row in rows:
        if row[currency[0]] == currency[1]:
            out[row[unit_key]] += D(row[amount_key] or "0")
    return dict(out)


def statement_totals(result, currency):
    return {s.unit.code: s.total for s in result.currencies[currency].statements}


def billed(currency):
    return sum(
        (r.billed_cost for r in CostRow.objects.filter(billing_period=OCT, currency=currency)),
        D(0),
    )


def test_statements_csv_rows_sum_to_each_statement_and_the_month(busy):
    result = chargeback.statements_get(user=busy["finance"], month=OCT)
    rows = read_csv(statements_csv(result))
    assert {r["month"] for r in rows} == {"2026-10"}
    assert {r["status"] for r in rows} == {"draft"}
    for currency, cur in result.currencies.items():
        sums = per_unit(rows, ("currency", currency), "business_unit", "amount")
        assert sums.pop("UNALLOCATED") == cur.unallocated + cur.unallocated_adjustment
        assert sums == statement_totals(result, currency)
        assert sum(sums.values(), cur.unallocated) == cur.month_total + cur.adjustments
    usd = [r for r in rows if r["currency"] == "USD"]
    assert next(r for r in usd if r["business_unit"] == "E")["business_unit_name"].startswith(
        "'=HYPERLINK"
    )
    assert next(r for r in rows if r["currency"] == "JPY")["amount"].isdigit()  # no decimals


def test_statements_csv_of_the_abc_month(abc):
    rows = read_csv(statements_csv(chargeback.statements_compute(OCT)))
    sums = per_unit(rows, ("currency", "USD"), "business_unit", "amount")
    assert sums == {
        "A": D("720.00"),
        "B": D("360.00"),
        "C": D("120.00"),
        "PLAT": D("0.00"),
        "UNALLOCATED": D("0.00"),
    }
    plat = [(r["kind"], r["amount"]) for r in rows if r["business_unit"] == "PLAT"]
    assert plat == [("direct", "200.00"), ("shared_out", "-200.00")]


def test_statements_xlsx_summary_unit_sheets_and_formats(busy):
    result = chargeback.statements_get(user=busy["finance"], month=OCT)
    book = load_workbook(io.BytesIO(statements_xlsx(result)))
    codes = sorted(s.unit.code for s in result.currencies["USD"].statements)
    assert book.sheetnames[0] == "Summary"
    assert sorted(book.sheetnames[1:]) == sorted(
        ["A", "B", "C", "D", "E", "PLAT", LONG, f"{LONG[:29]}~2"]
    )
    assert len(book.sheetnames) == len(codes) + 1

    summary = book["Summary"]
    assert summary.freeze_panes == "A2"
    assert all(c.font.b for c in summary[1])
    header = [c.value for c in summary[1]]
    col = {name: header.index(name) for name in header}
    rows = [list(row) for row in summary.iter_rows(min_row=2)]
    for currency, cur in result.currencies.items():
        mine = [r for r in rows if r[col["currency"]].value == currency]
        totals = {
            r[col["business_unit"]].value: D(str(r[col["total"]].value))
            for r in mine
            if r[col["business_unit"]].value not in ("UNALLOCATED", "TOTAL")
        }
        assert totals == statement_totals(result, currency)
        total_row = next(r for r in mine if r[col["business_unit"]].value == "TOTAL")
        assert D(str(total_row[col["total"]].value)) == cur.month_total + cur.adjustments
        assert total_row[col["reconciles"]].value == "yes"
        # The columns add up: direct and credits are the bill, shared costs net to zero.
        assert D(str(total_row[col["direct"]].value)) + D(str(total_row[col["credits"]].value)) == (
            cur.month_total
        )
        assert D(str(total_row[col["shared"]].value)) == 0
        expected = "#,##0" if currency == "JPY" else "#,##0.00"
        assert {r[col["total"]].number_format for r in mine} == {expected}
        assert {r[col["direct"]].number_format for r in mine} == {expected}
    names = [r[col["business_unit_name"]].value for r in rows]
    assert '\'=HYPERLINK("http://evil","x")' in names
    assert not any(str(n).startswith("=") for n in names)

    a = book["A"]
    assert a.freeze_panes == "A2"
    assert [c.value for c in a[1]] == [
        "currency",
        "kind",
        "label",
        "amount",
        "explanation",
    ]
    lines = list(a.iter_rows(min_row=2, values_only=True))
    for currency in ("USD", "JPY"):
        statement = result.statement("A", currency)
        amounts = [D(str(r[3])) for r in lines if r[0] == currency and r[1] != "total"]
        assert sum(amounts) == statement.total
        total = next(r for r in lines if r[0] == currency and r[1] == "total")
        assert D(str(total[3])) == statement.total
    formats = {(row[0].value, row[3].number_format) for row in a.iter_rows(min_row=2)}
    assert formats == {("JPY", "#,##0"), ("USD", "#,##0.00")}
    assert a.column_dimensions["E"].width > a.column_dimensions["A"].width


def test_sheet_title_is_safe_and_unique():
    taken = {"summary"}
    assert sheet_title("a[b]:c*d?e/f\\g", taken) == "a_b__c_d_e_f_g"
    assert sheet_title("Summary", taken) == "Summary~2"
    assert sheet_title("'quoted'", taken) == "quoted"
    assert sheet_title("history", taken) == "history~2"
    assert len(sheet_title("y" * 40, taken)) == 31
    assert sheet_title("y" * 40, taken) == "y" * 29 + "~2"


def test_focus_csv_allocation_adds_up_per_unit_and_billed_cost_to_the_bill(busy):
    result = chargeback.statements_get(user=busy["finance"], month=OCT)
    rows = read_focus(result)
    assert list(rows[0]) == FOCUS_HEADER
    for currency, cur in result.currencies.items():
        mine = [r for r in rows if r["BillingCurrency"] == currency]
        allocated = per_unit(
            mine, ("BillingCurrency", currency), "x_CapgovBusinessUnit", "x_CapgovAllocatedCost"
        )
        assert allocated.pop("UNALLOCATED") == cur.unallocated + cur.unallocated_adjustment
        assert allocated == statement_totals(result, currency)
        assert sum(D(r["BilledCost"] or "0") for r in mine) == billed(currency)
    assert {r["BillingPeriodStart"] for r in rows} == {"2026-10-01T00:00:00Z"}
    assert {r["BillingPeriodEnd"] for r in rows} == {"2026-11-01T00:00:00Z"}

    usd = [r for r in rows if r["BillingCurrency"] == "USD"]
    # A's SageMaker line is spread over its six GPUs, in exact cents, by its cost.
    a_gpus = [
        r for r in usd if r["x_CapgovBusinessUnit"] == "A" and r["x_CapgovLineKind"] == "direct"
    ]
    sagemaker = [r for r in a_gpus if r["ServiceName"] == "Amazon SageMaker"]
    assert [r["ResourceId"] for r in sagemaker] == [f"a-gpu-{i}" for i in range(6)]
    assert sum(D(r["x_CapgovAllocatedCost"]) for r in sagemaker) == next(
        line.amount
        for line in result.statement("A", "USD").lines
        if line.label == "Amazon SageMaker"
    )
    assert {r["BilledCost"] for r in sagemaker} == {"100.003"}
    assert {r["x_CapgovAllocationRule"] for r in sagemaker} == {"rule #10 team in [a]"}
    # B's credit came from an untagged row on its endpoint: one row without source columns.
    b_credit = [
        r for r in usd if r["x_CapgovBusinessUnit"] == "B" and r["x_CapgovLineKind"] == "credit"
    ]
    assert len(b_credit) == 1
    assert b_credit[0]["x_CapgovAllocatedCost"] == "-30.00"
    assert b_credit[0]["BilledCost"] == ""
    assert b_credit[0]["ChargeCategory"] == "Credit"
    moved = next(r for r in usd if r["ResourceId"] == CHECKOUT and r["BilledCost"] == "-30")
    assert moved["x_CapgovBusinessUnit"] == "UNALLOCATED"
    assert moved["x_CapgovAllocatedCost"] == "0.00"
    # Other lines are single Adjustment rows that explain themselves.
    shared = next(
        r for r in usd if r["x_CapgovLineKind"] == "shared" and r["x_CapgovBusinessUnit"] == "C"
    )
    assert shared["ChargeCategory"] == "Adjustment"
    assert shared["BilledCost"] == ""
    assert shared["x_CapgovAllocationRule"].startswith("Platform overhead: proportional:")
    assert "Platform overhead (PLAT" in shared["ChargeDescription"]
    assert {r["x_CapgovStatementStatus"] for r in rows} == {"draft"}
    untagged = [
        r for r in usd if r["x_CapgovBusinessUnit"] == "UNALLOCATED" and r["BilledCost"] != "-30"
    ]
    assert sorted(r["ResourceId"] for r in untagged) == ["untagged-1", "untagged-2"]
    e = next(
        r for r in usd if r["x_CapgovBusinessUnit"] == "E" and r["x_CapgovLineKind"] == "direct"
    )
    assert e["ResourceId"] == "e-1"


def test_focus_csv_spread_unallocated_keeps_its_rows_at_zero(abc, tmp_path):
    import_file(
        tmp_path / "oct-untagged.csv",
        [
            focus_line(cost="600.00", tags={"team": "a"}, resource="a-gpu"),
            focus_line(cost="300.00", tags={"team": "b"}, resource=CHECKOUT),
            focus_line(cost="100.00", tags={"team": "c"}, resource="c-gpu"),
            focus_line(cost="200.00", tags={"team": "plat"}, resource="control-plane"),
            focus_line(cost="50.00", resource="untagged"),
        ],
    )
    policy = AllocationPolicy.objects.get()
    SharedPool.objects.create(policy=policy, name="Untagged", source_unit=None, method="even")
    result = chargeback.statements_compute(OCT)
    assert result.currencies["USD"].unallocated == D("0.00")
    rows = read_focus(result)
    untagged = [r for r in rows if r["x_CapgovBusinessUnit"] == "UNALLOCATED"]
    assert [(r["ResourceId"], r["BilledCost"], r["x_CapgovAllocatedCost"]) for r in untagged] == [
        ("untagged", "50", "0.00")
    ]
    assert sum(D(r["BilledCost"] or "0") for r in rows) == D("1250.00")
    assert per_unit(
        rows, ("BillingCurrency", "USD"), "x_CapgovBusinessUnit", "x_CapgovAllocatedCost"
    ) == {
        **statement_totals(result, "USD"),
        "UNALLOCATED": D("0.00"),
    }


def test_member_exports_hold_only_their_own_statement(busy):
    chargeback.period_publish(month=OCT, by=busy["finance"])
    member = UserFactory(username="b-member", units=[busy["B"]])
    result = chargeback.statements_get(user=member, month=OCT)
    assert not result.complete

    rows = read_csv(statements_csv(result))
    assert {r["business_unit"] for r in rows} == {"B"}
    assert {r["status"] for r in rows} == {"published"}
    assert sum(D(r["amount"]) for r in rows) == result.statement("B").total

    book = load_workbook(io.BytesIO(statements_xlsx(result)))
    assert book.sheetnames == ["Summary", "B"]
    units = {row[4] for row in book["Summary"].iter_rows(min_row=2, values_only=True)}
    assert units == {"B"}

    focus = read_focus(result)
    assert {r["x_CapgovBusinessUnit"] for r in focus} == {"B"}
    assert sum(D(r["x_CapgovAllocatedCost"]) for r in focus) == result.statement("B").total
    assert {r["x_CapgovStatementStatus"] for r in focus} == {"published"}
    assert all(r["ResourceId"] in ("", CHECKOUT) for r in focus)


def test_focus_csv_of_a_published_month_matches_the_stored_statements(busy):
    chargeback.period_publish(month=OCT, by=busy["finance"])
    result = chargeback.statements_get(user=busy["finance"], month=OCT)
    assert result.complete
    assert result.status == "published"
    rows = read_focus(result)
    for currency in result.currencies:
        allocated = per_unit(
            rows, ("BillingCurrency", currency), "x_CapgovBusinessUnit", "x_CapgovAllocatedCost"
        )
        allocated.pop("UNALLOCATED")
        assert allocated == statement_totals(result, currency)


def test_focus_csv_queries_do_not_grow_with_resources(busy, django_assert_max_num_queries):
    result = chargeback.statements_get(user=busy["finance"], month=OCT)
    statements = sum(len(c.statements) for c in result.currencies.values())
    assert statements >= 9
    # One query per unit and currency, then per currency one for units without a statement
    # and one for Unallocated.
    with django_assert_max_num_queries(statements + 2 * len(result.currencies)):
        chunks = list(statements_focus_csv(result))
    assert len(read_csv(b"".join(chunks))) > 20


def test_statement_exports_registry():
    assert set(STATEMENT_EXPORTS) == {"csv", "xlsx", "focus"}
    assert STATEMENT_EXPORTS["csv"].file_name(OCT) == "statements-2026-10.csv"
    assert STATEMENT_EXPORTS["xlsx"].file_name(OCT) == "statements-2026-10.xlsx"
    assert STATEMENT_EXPORTS["focus"].file_name(OCT) == "statements-2026-10-focus.csv"
    assert STATEMENT_EXPORTS["focus"].streamed
    assert not STATEMENT_EXPORTS["csv"].streamed
    assert STATEMENT_EXPORTS["xlsx"].content_type.endswith("spreadsheetml.sheet")


SAMPLES = [
    "focus/focus_1.0_sample_1000.csv",
    "aws/aws_cur_legacy_sample_koku.csv",
    "aws/aws_cur_legacy_costcategory_nok_koku.csv",
    "gcp/gcp_bq_export_standard_sample_koku.csv",
    "azure/azure_ea_actualcost_small.csv",
]


@pytest.mark.parametrize("relative", SAMPLES)
def test_focus_csv_of_real_samples_adds_up(billing_samples, org, relative):
    services.allocation_rules_load(
        text="rules:\n"
        "  - {business_unit: RES, tag: application, values: [databricks], priority: 10}\n"
        "  - {business_unit: ADS, tag: environment, values: [prod, dev], priority: 20}\n"
        "  - {business_unit: ADS, tag: costCategory/cost_env, values: [prod], priority: 30}\n"
    )
    assert services.billing_import(path=billing_samples / relative).status == "succeeded"
    months = CostRow.objects.values_list("billing_period", flat=True).distinct().order_by()
    for month in sorted(set(months)):
        result = chargeback.statements_compute(month)
        assert not result.error
        rows = read_csv(b"".join(statements_focus_csv(result)))
        lines = read_csv(statements_csv(result))
        for currency, cur in result.currencies.items():
            allocated = per_unit(
                rows, ("BillingCurrency", currency), "x_CapgovBusinessUnit", "x_CapgovAllocatedCost"
            )
            assert allocated.pop("UNALLOCATED", D(0)) == cur.unallocated
            assert allocated == statement_totals(result, currency)
            billed = sum(
                (D(r["BilledCost"] or "0") for r in rows if r["BillingCurrency"] == currency),
                D(0),
            )
            bill = CostRow.objects.filter(billing_period=month, currency=currency)
            assert abs(billed - sum((r.billed_cost for r in bill), D(0))) < D("1e-6")
            amounts = [D(r["amount"]) for r in lines if r["currency"] == currency]
            assert sum(amounts, D(0)) == cur.month_total + cur.adjustments


def test_focus_csv_spreads_by_the_basis_and_keeps_a_published_line_after_late_data(abc, tmp_path):
    policy = AllocationPolicy.objects.get()
    policy.basis = "effective"
    policy.save()
    import_file(
        tmp_path / "oct-effective.csv",
        [
            focus_line(cost="600.00", tags={"team": "a"}, resource="a-gpu"),
            focus_line(cost="300.00", effective="100.00", tags={"team": "a"}, resource="a-ri"),
            focus_line(cost="300.00", tags={"team": "b"}, resource=CHECKOUT),
            focus_line(cost="200.00", tags={"team": "plat"}, resource="control-plane"),
        ],
    )
    chargeback.period_publish(month=OCT, by=abc["finance"])
    published = chargeback.statements_get(user=abc["finance"], month=OCT)
    a = {r["ResourceId"]: r for r in read_focus(published) if r["x_CapgovBusinessUnit"] == "A"}
    assert a["a-gpu"]["x_CapgovAllocatedCost"] == "600.00"
    assert a["a-ri"]["x_CapgovAllocatedCost"] == "100.00"
    assert a["a-ri"]["BilledCost"] == "300"
    assert a["a-ri"]["EffectiveCost"] == "100"

    # Late data replaces October's rows; the published lines still add up, in proportion.
    import_file(
        tmp_path / "oct-late.csv",
        [
            focus_line(cost="900.00", tags={"team": "a"}, resource="a-gpu"),
            focus_line(cost="300.00", tags={"team": "a"}, resource="a-ri"),
            focus_line(cost="300.00", tags={"team": "b"}, resource=CHECKOUT),
            focus_line(cost="200.00", tags={"team": "plat"}, resource="control-plane"),
        ],
    )
    rows = read_focus(published)
    a = {r["ResourceId"]: r for r in rows if r["x_CapgovBusinessUnit"] == "A"}
    direct = published.statement("A").subtotal("direct")
    assert direct == D("700.00")
    assert a["a-gpu"]["x_CapgovAllocatedCost"] == "525.00"  # 900 of 1200, of 700.00
    assert a["a-ri"]["x_CapgovAllocatedCost"] == "175.00"
    allocated = per_unit(
        rows, ("BillingCurrency", "USD"), "x_CapgovBusinessUnit", "x_CapgovAllocatedCost"
    )
    assert allocated == statement_totals(published, "USD")  # nothing untagged: no UNALLOCATED
