import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from costs.models import CostRow
from tests.factories import focus_line, write_focus


def test_import_billing_prints_format_rows_and_billed_totals(org, tmp_path, capsys):
    path = write_focus(tmp_path / "oct.csv", [focus_line(cost="1234.5"), focus_line(cost="0.5")])
    call_command("import_billing", str(path))
    out = capsys.readouterr().out
    assert "as focus (detected)" in out
    assert "rows read:       2" in out
    assert "billed 2026-10 USD: 1,235.00" in out


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([focus_line(cost="1"), focus_line(cost="one")], "line 3, column BilledCost"),
        ([focus_line(cost="1", day="31/31/2026")], "line 2, column ChargePeriodStart"),
    ],
)
def test_import_billing_exits_non_zero_naming_line_and_column(org, tmp_path, lines, message):
    path = write_focus(tmp_path / "bad.csv", lines)
    with pytest.raises(CommandError, match=message):
        call_command("import_billing", str(path))
    assert not CostRow.objects.exists()


def test_import_billing_with_a_wrong_format_says_what_it_looks_like(org, tmp_path):
    path = write_focus(tmp_path / "oct.csv", [focus_line(cost="1")])
    with pytest.raises(CommandError, match=r"does not look like aws-cur.*looks like focus"):
        call_command("import_billing", str(path), "--format", "aws-cur")


def test_load_allocation_rules_reads_the_yaml_file(db, tmp_path, capsys):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "business_units:\n  - {code: RES, name: Research}\n"
        "rules:\n  - {business_unit: RES, tag: team, values: [research], priority: 10}\n"
    )
    call_command("load_allocation_rules", str(path))
    assert "Rules: 1 created" in capsys.readouterr().out


def test_load_allocation_rules_reports_a_missing_file(db, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("load_allocation_rules", str(tmp_path / "nope.yaml"))


def test_chargeback_command_writes_the_statements_as_json(october, tmp_path):
    out = tmp_path / "cb.json"
    call_command("chargeback", "--month", "2026-10", "--format", "json", "--output", str(out))
    body = json.loads(out.read_text())
    usd = body["currencies"]["USD"]
    assert {s["business_unit"]: s["total"] for s in usd["statements"]} == {
        "ADS": "10.01",
        "RES": "3.75",
    }
    assert (usd["unallocated"], usd["month_total"], usd["reconciles"]) == ("2.00", "15.76", True)


def test_chargeback_command_xlsx_has_a_sheet_per_unit(october, tmp_path):
    from openpyxl import load_workbook

    out = tmp_path / "cb.xlsx"
    call_command("chargeback", "--month", "2026-10", "--format", "xlsx", "--output", str(out))
    book = load_workbook(out)
    assert book.sheetnames == ["Summary", "ADS", "RES"]


def test_chargeback_command_prints_the_statements_and_reconciles(october, capsys):
    call_command("chargeback", "--month", "2026-10")
    text = capsys.readouterr().out
    assert "Statements 2026-10 (draft, billed basis)" in text
    assert "month total 15.76 USD: reconciles ✓" in text


def test_chargeback_command_publishes_and_closes(october, capsys):
    call_command("chargeback", "--month", "2026-10", "--action", "publish", "--format", "csv")
    assert "2026-10,published,billed,USD,ADS" in capsys.readouterr().out
    call_command("chargeback", "--month", "2026-10", "--action", "close")
    with pytest.raises(CommandError, match="closed month never changes"):
        call_command("chargeback", "--month", "2026-10", "--action", "publish")


def test_chargeback_command_refuses_a_month_without_costs(db):
    with pytest.raises(CommandError, match="No costs are stored for billing month 2030-01"):
        call_command("chargeback", "--month", "2030-01")
