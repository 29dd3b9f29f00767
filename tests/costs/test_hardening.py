"""Regressions from attacking the importer, the exports and the permissions."""

import contextlib
import threading
from decimal import Decimal as D

import pytest
from django.db import connection

from costs import selectors, services
from costs.exports import chargeback_csv, chargeback_xlsx
from costs.models import BillingImport, CostRow, ImportStatus
from tests.costs.conftest import OCT
from tests.factories import PASSWORD, focus_line, write_focus


def _import(tmp_path, name, lines):
    return services.billing_import(path=write_focus(tmp_path / name, lines))


def _october_total():
    return selectors.chargeback_get(user=None, month=OCT).currencies["USD"].total


def test_a_file_cut_mid_line_fails_and_keeps_the_good_month(october, tmp_path):
    before = _october_total()
    full = write_focus(tmp_path / "full.csv", [focus_line(cost="1")] * 40)
    text = full.read_text()
    cut = tmp_path / "cut.csv"
    cut.write_text(text[: len(text) // 2 + 17])
    result = services.billing_import(path=cut)
    assert result.status == ImportStatus.FAILED
    assert "cut.csv, line" in result.error
    assert "looks cut off" in result.error
    assert _october_total() == before


def test_a_positive_offset_period_start_stays_in_its_month(org, tmp_path):
    line = focus_line(cost="3")
    line["BillingPeriodStart"] = "2026-10-01T00:00:00+05:30"
    result = _import(tmp_path, "ist.csv", [line])
    assert result.billing_periods == ["2026-10"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"BilledCost": "1000000000000000"}, "too large for an amount"),
        ({"ResourceId": "r" * 1025}, "longer than 1024 characters"),
        ({"BillingPeriodStart": "0001-01-01 00:00:00"}, "outside 1990 to 2199"),
        ({"Tags": '{"a":' * 3000 + "1" + "}" * 3000}, "nested too deeply"),
        ({"Tags": '{"team": "re\\u0000search"}'}, "NUL character"),
        ({"ServiceName": "Amazon" + "x" * 300}, "longer than 255 characters"),
    ],
    ids=["huge-amount", "long-resource", "year-1", "deep-tags", "nul-in-tags", "long-service"],
)
def test_bad_values_fail_with_line_and_column_not_an_internal_error(
    october, tmp_path, change, message
):
    before = (CostRow.objects.count(), _october_total())
    result = _import(
        tmp_path, "bad.csv", [focus_line(cost="1"), {**focus_line(cost="2"), **change}]
    )
    assert result.status == ImportStatus.FAILED
    assert "internal error" not in result.error
    assert "bad.csv, line 3" in result.error
    assert message in result.error
    assert (CostRow.objects.count(), _october_total()) == before


def test_nested_tag_values_are_kept_as_json(org, tmp_path):
    _import(
        tmp_path, "t.csv", [{**focus_line(cost="1"), "Tags": '{"team": {"x": 1}, "gpu": true}'}]
    )
    assert CostRow.objects.get().tag_set.tags == {"gpu": "true", "team": '{"x": 1}'}


def test_a_redelivered_import_task_does_not_run_twice(org, tmp_path):
    path = write_focus(tmp_path / "r.csv", [focus_line(cost="4.00")])
    record = BillingImport.objects.create(file_name="r.csv", file_path=str(path))
    services.billing_import_run(billing_import=record)
    record.status = ImportStatus.QUEUED  # what a stale copy of the task still believes
    services.billing_import_run(billing_import=record)
    assert CostRow.objects.count() == 1
    assert BillingImport.objects.get(pk=record.pk).status == ImportStatus.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_two_imports_of_one_month_at_once_do_not_double_it(tmp_path, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite admits one writer at a time; the race needs PostgreSQL")
    from tests.factories import OrgFactory

    OrgFactory.build_org()
    # The tag set exists already, as in real life: nothing else makes the imports queue.
    _import(tmp_path, "sep.csv", [focus_line(cost="9", period="2026-09-01", day="2026-09-02")])
    original = services._replace_slices
    barrier = threading.Barrier(2, timeout=2)

    def replace_together(**kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return original(**kwargs)

    monkeypatch.setattr(services, "_replace_slices", replace_together)
    paths = [
        write_focus(tmp_path / f"{n}.csv", [focus_line(cost=c)])
        for n, c in (("a", "1"), ("b", "2"))
    ]
    results = []

    def run(path):
        try:
            results.append(services.billing_import(path=path))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [r.status for r in results] == ["succeeded", "succeeded"]
    october_rows = CostRow.objects.filter(billing_period=OCT)
    assert len(set(october_rows.values_list("billing_import_id", flat=True))) == 1
    assert _october_total() in (D("1.00"), D("2.00"))


def test_exports_write_formula_like_names_as_text(org, tmp_path):
    from openpyxl import load_workbook

    _import(tmp_path, "f.csv", [focus_line(cost="1", service='=HYPERLINK("http://x/","y")')])
    result = selectors.chargeback_get(user=None, month=OCT)
    assert "'=HYPERLINK" in chargeback_csv(result).decode()
    out = tmp_path / "cb.xlsx"
    out.write_bytes(chargeback_xlsx(result))
    cell = load_workbook(out)["Lines"]["F2"]
    assert cell.data_type == "s"
    assert cell.value.startswith("'=")


def test_a_nul_in_the_query_string_is_a_bad_request(client, october):
    client.login(username=october.finance.username, password=PASSWORD)
    assert client.get("/costs/chargeback/resources/?month=2026-10&service=%00").status_code == 400


def test_a_scoped_member_sees_no_empty_foreign_currency(october, tmp_path):
    _import(
        tmp_path,
        "jpy.csv",
        [focus_line(cost="500", currency="JPY", account="jp-1", tags={"cost-center": "4410"})],
    )
    result = selectors.chargeback_get(user=october.researcher, month=OCT).as_dict()
    assert set(result["currencies"]) == {"USD"}


def test_admin_hides_cost_data_from_staff_without_a_cost_role(client, october):
    from django.contrib.auth.models import Permission

    rhea = october.researcher
    rhea.is_staff = True
    rhea.save()
    rhea.user_permissions.set(Permission.objects.filter(content_type__app_label="costs"))
    client.login(username=rhea.username, password=PASSWORD)
    assert client.get("/admin/costs/costrow/").status_code == 403
    assert client.get("/admin/costs/allocationrule/").status_code == 403


def test_text_limits_match_the_cost_row_columns():
    from costs.models import CostRow
    from costs.sources.base import TEXT_LIMITS

    assert {name: CostRow._meta.get_field(name).max_length for name in TEXT_LIMITS} == TEXT_LIMITS
