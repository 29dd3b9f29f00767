"""Every real billing sample imports, and its chargeback reconciles to the file to the cent."""

import ast
import csv
import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest

from costs import selectors, services
from costs.models import CostRow, ImportStatus
from governance.money import money_round


def _month(value: str) -> str:
    value = value.strip()
    if "/" in value:  # Azure EA: MM/DD/YYYY
        month, _, year = value.split("/")
        return f"{year[:4]}-{int(month):02d}"
    if len(value) == 6 and value.isdigit():  # GCP invoice.month: YYYYMM
        return f"{value[:4]}-{value[4:]}"
    return value[:7]


def _num(value: str) -> Decimal:
    return Decimal(value) if value.strip() not in {"", "NULL"} else Decimal(0)


def file_totals(path, fmt) -> dict[tuple[str, str], Decimal]:
    """(month, currency) -> billed total, computed straight from the file with Decimal."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            if fmt == "focus":
                key = (_month(row["BillingPeriodStart"]), row["BillingCurrency"])
                totals[key] += _num(row["BilledCost"])
            elif fmt == "aws-cur":
                key = (_month(row["bill/BillingPeriodStartDate"]), row["lineItem/CurrencyCode"])
                totals[key] += _num(row["lineItem/UnblendedCost"])
            elif fmt == "gcp-export":
                key = (_month(row["invoice.month"]), row["currency"])
                credits = ast.literal_eval(row["credits"] or "[]")
                totals[key] += _num(row["cost"]) + sum(
                    (Decimal(str(c["amount"])) for c in credits), Decimal(0)
                )
            elif fmt == "azure-export":
                key = (_month(row["BillingPeriodStartDate"]), row["BillingCurrency"])
                totals[key] += _num(row["Cost"])
    return dict(totals)


SAMPLES = [
    ("focus/focus_1.0_sample_1000.csv", "focus"),
    ("aws/aws_cur_legacy_sample_koku.csv", "aws-cur"),
    ("aws/aws_cur_legacy_costcategory_nok_koku.csv", "aws-cur"),
    ("gcp/gcp_bq_export_standard_sample_koku.csv", "gcp-export"),
    ("azure/azure_ea_actualcost_small.csv", "azure-export"),
]


@pytest.mark.parametrize(("relative", "fmt"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_sample_imports_and_reconciles_to_the_cent(billing_samples, org, relative, fmt):
    services.allocation_rules_load(
        text="rules:\n"
        "  - {business_unit: RES, tag: application, values: [databricks], priority: 10}\n"
        "  - {business_unit: ADS, tag: environment, values: [prod, dev], priority: 20}\n"
        "  - {business_unit: ADS, tag: costCategory/cost_env, values: [prod], priority: 30}\n"
    )
    path = billing_samples / relative
    expected = file_totals(path, fmt)

    result = services.billing_import(path=path, fmt="auto")
    assert result.status == ImportStatus.SUCCEEDED, result.error
    assert result.detected_format == fmt
    first_rows = CostRow.objects.count()

    again = services.billing_import(path=path, fmt="auto")
    assert again.status == ImportStatus.SUCCEEDED, again.error
    assert CostRow.objects.count() == first_rows

    for (month, currency), total in expected.items():
        chargeback = selectors.chargeback_get(user=None, month=dt.date.fromisoformat(f"{month}-01"))
        cur = chargeback.currencies[currency]
        assert cur.total == money_round(total, currency), (month, currency)
        assert sum(line.amount for line in cur.lines) == cur.total
        # The importer keeps 18 decimal places; the file may carry more.
        assert abs(Decimal(result.period_totals[month][currency]) - total) < Decimal("1e-15")


def test_sample_nok_account_keeps_its_leading_zero_and_currency(billing_samples, org):
    services.billing_import(path=billing_samples / "aws/aws_cur_legacy_costcategory_nok_koku.csv")
    assert set(CostRow.objects.values_list("billing_account_id", "currency")) == {
        ("0099999999999", "NOK")
    }


def test_sample_gcp_credits_are_kept_as_credit_rows(billing_samples, org):
    services.billing_import(path=billing_samples / "gcp/gcp_bq_export_standard_sample_koku.csv")
    credit = CostRow.objects.filter(charge_category="Credit")
    assert credit.exists()
    assert all(row.billed_cost < 0 for row in credit)


def test_sample_azure_reservation_purchase_is_a_purchase(billing_samples, org):
    services.billing_import(path=billing_samples / "azure/azure_ea_actualcost_small.csv")
    assert CostRow.objects.filter(charge_category="Purchase").count() == 1


def test_sample_focus_tags_with_stray_spaces_are_trimmed(billing_samples, org):
    services.billing_import(path=billing_samples / "focus/focus_1.0_sample_1000.csv")
    keys = {k for tags in CostRow.objects.values_list("tag_set__tags", flat=True) for k in tags}
    assert "org" in keys
    assert " org" not in keys


@pytest.mark.parametrize("spread", [False, True], ids=["unallocated-shown", "unallocated-spread"])
@pytest.mark.parametrize(("relative", "fmt"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_sample_statements_reconcile_to_the_cent(billing_samples, org, relative, fmt, spread):
    """Σ statements + Unallocated = the file's billed total, per month and currency, whether
    Unallocated is shown or spread over the units; then published, the same holds."""
    from costs import chargeback
    from costs.models import AllocationPolicy, SharedPool

    services.allocation_rules_load(
        text="rules:\n"
        "  - {business_unit: RES, tag: application, values: [databricks], priority: 10}\n"
        "  - {business_unit: ADS, tag: environment, values: [prod, dev], priority: 20}\n"
    )
    path = billing_samples / relative
    expected = file_totals(path, fmt)
    assert services.billing_import(path=path, fmt="auto").status == ImportStatus.SUCCEEDED
    policy = AllocationPolicy.objects.create(name="p", first_month=dt.date(2000, 1, 1))
    if spread:
        pool = SharedPool.objects.create(policy=policy, name="Untagged", method="even")
        pool.recipients.set([org.research, org.ads])
    for (month, currency), total in expected.items():
        first = dt.date.fromisoformat(f"{month}-01")
        result = chargeback.statements_compute(first)
        assert not result.error, result.error
        cur = result.currencies[currency]
        assert cur.month_total == money_round(total, currency), (month, currency)
        assert cur.statements_total + cur.unallocated == cur.month_total
        assert cur.reconciles
        if spread:
            assert cur.unallocated == 0
        chargeback.period_publish(month=first, by=org.finance)
        rows = {r.currency: r for r in chargeback.reconciliation(month=first, user=org.finance)}
        assert rows[currency].reconciles
        assert rows[currency].bill_now == money_round(total, currency)
