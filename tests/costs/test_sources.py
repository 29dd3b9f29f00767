"""Billing source adapters (AWS CUR, GCP export, Azure export, FOCUS). Pure: no database."""

from __future__ import annotations

import ast
import csv
import json
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from costs.ingest import detect, prepare
from costs.sources import aws_cur, azure_export, focus, gcp_export
from costs.sources.base import CHARGE_SCHEMA, BillingFileError, ParsedCharges
from costs.sources.reader import read_table

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "billing"
AWS_LEGACY = "aws/aws_cur_legacy_sample_koku.csv"
AWS_NOK = "aws/aws_cur_legacy_costcategory_nok_koku.csv"
GCP_CSV = "gcp/gcp_bq_export_standard_sample_koku.csv"
AZURE_EA = "azure/azure_ea_actualcost_small.csv"
FOCUS_CSV = "focus/focus_1.0_sample_1000.csv"

# Rounding to the 18 decimal places of the parsing precision, summed over a few lines.
TOLERANCE = Decimal("1e-15")


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"sample billing files not found at {SAMPLES}")
    return SAMPLES


def _write_csv(tmp_path: Path, name: str, header: list[str], rows: list[list[str]]) -> Path:
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _parse(path: Path, adapter) -> ParsedCharges:
    return adapter.parse(read_table(path))


def _raw_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def _amount(value: str | None) -> Decimal:
    value = (value or "").strip()
    return Decimal(value) if value and value.upper() != "NULL" else Decimal(0)


def _raw_aws(path: Path) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in _raw_rows(path):
        totals[row["lineItem/CurrencyCode"]] += _amount(row["lineItem/UnblendedCost"])
    return dict(totals)


def _raw_gcp(path: Path) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in _raw_rows(path):
        totals[row["currency"]] += _amount(row["cost"])
        for credit in ast.literal_eval(row["credits"] or "[]"):
            totals[row["currency"]] += Decimal(str(credit["amount"]))
    return dict(totals)


def _raw_azure(path: Path) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in _raw_rows(path):
        totals[row["BillingCurrency"]] += _amount(row["Cost"])
    return dict(totals)


def _raw_focus(path: Path) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in _raw_rows(path):
        totals[row["BillingCurrency"]] += _amount(row["BilledCost"])
    return dict(totals)


SAMPLE_CASES = [
    (AWS_LEGACY, aws_cur.FORMAT, _raw_aws),
    (AWS_NOK, aws_cur.FORMAT, _raw_aws),
    (GCP_CSV, gcp_export.FORMAT, _raw_gcp),
    (AZURE_EA, azure_export.FORMAT, _raw_azure),
    (FOCUS_CSV, focus.FORMAT, _raw_focus),
]


# --- the real samples -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt", "raw_totals"), SAMPLE_CASES)
def test_prepare_detects_sample_format(samples, name, fmt, raw_totals):
    prepared = prepare(samples / name)
    assert prepared.format == fmt
    assert prepared.rows_read > 0


@pytest.mark.parametrize(("name", "fmt", "raw_totals"), SAMPLE_CASES)
def test_prepare_billed_totals_equal_raw_decimal_sum(samples, name, fmt, raw_totals):
    prepared = prepare(samples / name)
    expected = raw_totals(samples / name)
    assert set(prepared.billed_totals) == set(expected)
    for currency, total in expected.items():
        assert isinstance(prepared.billed_totals[currency], Decimal)
        assert abs(prepared.billed_totals[currency] - total) < TOLERANCE, currency


def test_aws_cur_keeps_nok_and_leading_zero_account(samples):
    prepared = prepare(samples / AWS_NOK)
    assert set(prepared.billed_totals) == {"NOK"}
    assert prepared.billing_accounts == ["0099999999999"]
    assert prepared.daily["sub_account_id"].unique().to_list() == ["0099999999999"]


def test_aws_cur_warns_about_malformed_header(samples):
    prepared = prepare(samples / AWS_NOK)
    assert any(
        "ignored malformed column" in w and "pricing/OfferingClasspricing/PurchaseOption" in w
        for w in prepared.warnings
    )


def test_aws_cur_usage_date_comes_from_time_interval(samples):
    # lineItem/UsageStartDate is 2018-06-01 on every line; identity/TimeInterval is hourly.
    frame = _parse(samples / AWS_LEGACY, aws_cur).frame
    assert set(frame["usage_date"].to_list()) == {date(2018, 6, 18), date(2018, 6, 19)}
    assert frame["billing_period"].unique().to_list() == [date(2018, 6, 1)]


def test_aws_cur_savings_plan_covered_usage_is_amortised(samples):
    frame = _parse(samples / AWS_NOK, aws_cur).frame
    assert frame["charge_category"].unique().to_list() == ["Usage"]
    assert frame["billed_cost"].to_list() == [Decimal(10)] * 3
    assert frame["effective_cost"].to_list() == [Decimal("0.1")] * 3
    assert frame["list_cost"].to_list() == [Decimal(10)] * 3
    assert frame["region"].unique().to_list() == ["us-west-1"]


def test_aws_cur_cost_categories_become_tags_and_no_tags_are_ignored(samples):
    parsed = _parse(samples / AWS_NOK, aws_cur)
    tags = [parsed.tag_parser(t) for t in parsed.frame["tags"].unique().to_list()]
    assert tags == [
        {
            "costCategory/cost_env": "prod",
            "costCategory/name": "compute",
            "costCategory/qe_source": "aws-single",
        }
    ]


def test_gcp_export_credits_become_credit_rows(samples):
    frame = _parse(samples / GCP_CSV, gcp_export).frame
    credits = frame.filter(pl.col("charge_category") == "Credit")
    assert credits.height == 8
    assert all(amount < 0 for amount in credits["billed_cost"])
    assert credits["quantity"].unique().to_list() == [Decimal(0)]
    usage = frame.filter(pl.col("charge_category") == "Usage")
    assert usage.height == 25
    parent = usage.filter(pl.col("_line") == credits["_line"][0])
    assert parent["sku_id"].to_list() == [credits["sku_id"][0]]
    assert parent["usage_date"].to_list() == [credits["usage_date"][0]]


def test_gcp_export_python_literal_labels_become_tags(samples):
    parsed = _parse(samples / GCP_CSV, gcp_export)
    tags = {
        json.dumps(parsed.tag_parser(t), sort_keys=True)
        for t in parsed.frame["tags"].drop_nulls().unique().to_list()
    }
    assert tags == {
        json.dumps({"goog-resource-type": kind})
        for kind in ("bigquery_dataset", "bigquery_project", "bigquery_resource")
    }


def test_azure_export_purchase_row_is_purchase(samples):
    frame = _parse(samples / AZURE_EA, azure_export).frame
    purchase = frame.filter(pl.col("_line") == 2).row(0, named=True)
    assert purchase["charge_category"] == "Purchase"
    assert purchase["billed_cost"] == Decimal("3.25")
    assert purchase["list_cost"] == Decimal("3.25")
    assert frame.filter(pl.col("_line") > 2)["charge_category"].unique().to_list() == ["Usage"]
    assert purchase["billing_period"] == date(2023, 9, 1)
    assert purchase["usage_date"] == date(2023, 9, 21)


def test_azure_export_does_not_claim_focus_sample(samples):
    columns = set(read_table(samples / FOCUS_CSV).columns_lower())
    assert not azure_export.matches(columns)
    assert not aws_cur.matches(columns)
    assert not gcp_export.matches(columns)


# --- AWS CUR, inline -------------------------------------------------------------------

CUR2_HEADER = [
    "bill_payer_account_id",
    "bill_billing_period_start_date",
    "identity_time_interval",
    "line_item_usage_account_id",
    "line_item_usage_account_name",
    "line_item_usage_start_date",
    "line_item_line_item_type",
    "line_item_product_code",
    "line_item_resource_id",
    "line_item_availability_zone",
    "line_item_currency_code",
    "line_item_unblended_cost",
    "line_item_usage_amount",
    "pricing_public_on_demand_cost",
    "pricing_unit",
    "product_sku",
    "reservation_effective_cost",
    "reservation_reservation_a_r_n",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
    "resource_tags",
    "cost_category",
]


def _cur2_row(kind: str, unblended: str, **values: str) -> list[str]:
    row = dict.fromkeys(CUR2_HEADER, "")
    row.update(
        bill_payer_account_id="012345678901",
        bill_billing_period_start_date="2024-09-01T00:00:00Z",
        identity_time_interval="2024-09-03T05:00:00Z/2024-09-03T06:00:00Z",
        line_item_usage_account_id="000111222333",
        line_item_usage_account_name="ml-training",
        line_item_usage_start_date="2024-09-03T05:00:00Z",
        line_item_line_item_type=kind,
        line_item_product_code="AmazonEC2",
        line_item_currency_code="usd",
        line_item_unblended_cost=unblended,
    )
    row.update(values)
    return list(row.values())


def test_aws_cur_parses_cur2_snake_case(tmp_path):
    arn = "arn:aws:ec2:us-east-1:012345678901:reserved-instances/abc"
    rows = [
        _cur2_row(
            "Usage",
            "1.25",
            line_item_availability_zone="us-east-1b",
            line_item_usage_amount="2",
            pricing_public_on_demand_cost="1.50",
            resource_tags=json.dumps({"user_team": "research", "user_env": ""}),
            cost_category=json.dumps({"unit": "ml"}),
        ),
        _cur2_row("DiscountedUsage", "0", reservation_effective_cost="0.4"),
        _cur2_row(
            "RIFee",
            "30",
            reservation_unused_amortized_upfront_fee_for_billing_period="2",
            reservation_unused_recurring_fee="1.5",
        ),
        _cur2_row("Fee", "100", reservation_reservation_a_r_n=arn),
        _cur2_row("Fee", "7"),
        _cur2_row("SavingsPlanCoveredUsage", "0.9", savings_plan_savings_plan_effective_cost="0.6"),
        _cur2_row("SavingsPlanNegation", "-0.9"),
        _cur2_row(
            "SavingsPlanRecurringFee",
            "24",
            savings_plan_total_commitment_to_date="24",
            savings_plan_used_commitment="20.5",
        ),
        _cur2_row("SavingsPlanUpfrontFee", "1000"),
        _cur2_row("Credit", "-3"),
        _cur2_row("EdpDiscount", "-1"),
        _cur2_row("Tax", "2.1"),
    ]
    path = _write_csv(tmp_path, "cur2.csv", CUR2_HEADER, rows)
    table = read_table(path)
    assert detect(table.header, file=table.name) == aws_cur.FORMAT
    parsed = aws_cur.parse(table)
    frame = parsed.frame
    assert frame.columns == list(CHARGE_SCHEMA)
    assert frame["charge_category"].to_list() == [
        "Usage", "Usage", "Purchase", "Purchase", "Purchase", "Usage", "Usage", "Purchase",
        "Purchase", "Credit", "Credit", "Tax",
    ]  # fmt: skip
    assert frame["effective_cost"].to_list() == [
        Decimal(x)
        for x in ("1.25", "0.4", "3.5", "0", "7", "0.6", "0", "3.5", "0", "-3", "-1", "2.1")
    ]
    assert frame["billed_cost"].sum() == Decimal("1160.35")
    first = frame.row(0, named=True)
    assert first["list_cost"] == Decimal("1.5")
    assert first["quantity"] == Decimal(2)
    assert first["region"] == "us-east-1"
    assert first["currency"] == "USD"
    assert first["billing_account_id"] == "012345678901"
    assert first["sub_account_id"] == "000111222333"
    assert first["sub_account_name"] == "ml-training"
    assert first["service_name"] == "AmazonEC2"
    assert first["usage_date"] == date(2024, 9, 3)
    assert frame.row(1, named=True)["list_cost"] == Decimal(0)  # falls back to unblended
    assert parsed.tag_parser(first["tags"]) == {"team": "research", "costCategory/unit": "ml"}
    assert parsed.warnings == []


LEGACY_HEADER = [
    "identity/TimeInterval",
    "bill/PayerAccountId",
    "bill/BillingPeriodStartDate",
    "lineItem/UsageAccountId",
    "lineItem/LineItemType",
    "lineItem/UsageStartDate",
    "lineItem/ProductCode",
    "lineItem/AvailabilityZone",
    "lineItem/CurrencyCode",
    "lineItem/UnblendedCost",
    "product/ProductName",
    "product/location",
    "resourceTags/user:team",
    "resourceTags/aws:createdBy",
    "noTags/user:ignored",
]


def _legacy_row(kind="Usage", cost="1.5", zone="eu-west-1a", interval="", team="vision"):
    return [
        interval,
        "0099999999999",
        "2024-09-01T00:00:00Z",
        "0099999999999",
        kind,
        "2024-09-05 10:00:00",
        "AmazonSageMaker",
        zone,
        "EUR",
        cost,
        "Amazon SageMaker",
        "EU (Ireland)",
        team,
        "AROA:someone",
        "x",
    ]


def test_aws_cur_legacy_tags_keep_their_prefix(tmp_path):
    path = _write_csv(
        tmp_path,
        "legacy.csv",
        LEGACY_HEADER,
        [_legacy_row(), _legacy_row(zone="", team="")],
    )
    parsed = _parse(path, aws_cur)
    first, second = parsed.frame.rows(named=True)
    assert parsed.tag_parser(first["tags"]) == {
        "user:team": "vision",
        "aws:createdBy": "AROA:someone",
    }
    assert parsed.tag_parser(second["tags"]) == {"aws:createdBy": "AROA:someone"}
    assert first["service_name"] == "Amazon SageMaker"
    assert first["region"] == "eu-west-1"
    assert second["region"] == "EU (Ireland)"
    # No identity/TimeInterval value: the usage start date is used.
    assert first["usage_date"] == date(2024, 9, 5)


def test_aws_cur_missing_amortisation_columns_count_as_zero(tmp_path):
    path = _write_csv(
        tmp_path, "ri.csv", LEGACY_HEADER, [_legacy_row(kind="DiscountedUsage", cost="0")]
    )
    frame = _parse(path, aws_cur).frame
    assert frame["effective_cost"].to_list() == [Decimal(0)]
    assert frame["charge_category"].to_list() == ["Usage"]


def test_aws_cur_rejects_text_in_cost_naming_file_line_and_column(tmp_path):
    path = _write_csv(
        tmp_path, "bad.csv", LEGACY_HEADER, [_legacy_row(), _legacy_row(cost="12,50 EUR")]
    )
    with pytest.raises(BillingFileError) as exc:
        prepare(path)
    assert "bad.csv, line 3, column lineItem/UnblendedCost" in str(exc.value)
    assert "'12,50 EUR' is not a number" in str(exc.value)


def test_aws_cur_rejects_unknown_line_item_type(tmp_path):
    path = _write_csv(
        tmp_path, "kind.csv", LEGACY_HEADER, [_legacy_row(), _legacy_row(kind="Bogus")]
    )
    with pytest.raises(BillingFileError) as exc:
        prepare(path)
    assert "kind.csv, line 3, column lineItem/LineItemType" in str(exc.value)
    assert "'Bogus'" in str(exc.value)


def test_aws_cur_rejects_bad_time_interval(tmp_path):
    path = _write_csv(
        tmp_path, "when.csv", LEGACY_HEADER, [_legacy_row(interval="yesterday/today")]
    )
    with pytest.raises(BillingFileError) as exc:
        prepare(path)
    assert "when.csv, line 2, column identity/TimeInterval" in str(exc.value)


def test_aws_cur_requires_unblended_cost(tmp_path):
    header = [h for h in LEGACY_HEADER if h != "lineItem/UnblendedCost"]
    header.append("line_item_unblended_cost_x")
    path = _write_csv(tmp_path, "nocost.csv", header, [_legacy_row()])
    with pytest.raises(BillingFileError) as exc:
        aws_cur.parse(read_table(path))
    assert "lineItem/UnblendedCost" in str(exc.value)
    assert "nocost.csv, line 1" in str(exc.value)


# --- GCP, inline -----------------------------------------------------------------------


def _gcp_line(**changes) -> dict:
    line = {
        "billing_account_id": "01A2B3-C4D5E6-F7G8H9",
        "service": {"id": "6F81-5844-456A", "description": "Compute Engine"},
        "sku": {"id": "2E27-4F75-95CD", "description": "N1 Predefined Instance Core"},
        "usage_start_time": "2024-09-30 23:00:00 UTC",
        "usage_end_time": "2024-10-01 00:00:00 UTC",
        "project": {
            "id": "ml-prod",
            "name": "ML production",
            "labels": [{"key": "team", "value": "platform"}, {"key": "env", "value": "prod"}],
        },
        "labels": [{"key": "team", "value": "research"}],
        "system_labels": [{"key": "compute.googleapis.com/machine_spec", "value": "n1"}],
        "location": {"location": "europe-west4", "region": "europe-west4", "zone": None},
        "cost": 12.5,
        "currency": "EUR",
        "usage": {
            "amount": 3600,
            "unit": "seconds",
            "amount_in_pricing_units": 1,
            "pricing_unit": "hour",
        },
        "credits": [
            {"name": "Sustained use", "amount": -2.5, "type": "SUSTAINED_USAGE_DISCOUNT"},
            {"name": "Free tier", "amount": -0.25, "type": "FREE_TIER"},
        ],
        "invoice": {"month": "202409"},
        "cost_type": "regular",
    }
    line.update(changes)
    return line


def _write_ndjson(tmp_path: Path, name: str, lines: list[dict]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def test_gcp_export_parses_ndjson(tmp_path):
    path = _write_ndjson(
        tmp_path,
        "export.jsonl",
        [
            _gcp_line(),
            _gcp_line(
                cost=5e-06,
                credits=[],
                labels=[],
                usage_start_time="2024-10-01T01:00:00Z",
                cost_type="tax",
                invoice={"month": "202409"},
                location={"location": "US", "region": None, "zone": None},
                usage={
                    "amount": 10,
                    "unit": "bytes",
                    "amount_in_pricing_units": None,
                    "pricing_unit": None,
                },
            ),
        ],
    )
    prepared = prepare(path)
    assert prepared.format == gcp_export.FORMAT
    assert prepared.billed_totals == {"EUR": Decimal("9.750005")}

    parsed = _parse(path, gcp_export)
    frame = parsed.frame
    assert frame["charge_category"].to_list() == ["Usage", "Credit", "Credit", "Tax"]
    assert frame["_line"].to_list() == [1, 1, 1, 2]
    # invoice.month, not the usage time, decides the period: line 2 is October usage
    # invoiced in September.
    assert frame["billing_period"].to_list() == [date(2024, 9, 1)] * 4
    assert frame["billed_cost"].to_list() == [
        Decimal("12.5"),
        Decimal("-2.5"),
        Decimal("-0.25"),
        Decimal("0.000005"),
    ]
    usage, credit, _, tax = frame.rows(named=True)
    assert usage["usage_date"] == date(2024, 9, 30)
    assert usage["billing_period"] == date(2024, 9, 1)
    assert usage["provider"] == "Google Cloud"
    assert usage["service_name"] == "Compute Engine"
    assert usage["sub_account_id"] == "ml-prod"
    assert usage["region"] == "europe-west4"
    assert (usage["quantity"], usage["pricing_unit"]) == (Decimal(1), "hour")
    assert (tax["quantity"], tax["pricing_unit"]) == (Decimal(10), "bytes")
    assert tax["usage_date"] == date(2024, 10, 1)
    assert tax["region"] == "US"
    assert credit["quantity"] == Decimal(0)
    assert credit["list_cost"] == credit["effective_cost"] == Decimal("-2.5")
    assert credit["tags"] == usage["tags"]
    # Resource labels win over project labels; system labels are not tags.
    assert parsed.tag_parser(usage["tags"]) == {"team": "research", "env": "prod"}
    assert parsed.tag_parser(tax["tags"]) == {"team": "platform", "env": "prod"}


GCP_CSV_HEADER = [
    "billing_account_id",
    "service.description",
    "sku.id",
    "usage_start_time",
    "project.id",
    "labels",
    "cost",
    "currency",
    "credits",
    "invoice.month",
    "cost_type",
]


def _gcp_csv_row(month="202409", cost_type="regular", credits="[]", cost="1.0", labels="[]"):
    return [
        "01A2B3-C4D5E6-F7G8H9",
        "Vertex AI",
        "AAAA-BBBB-CCCC",
        "2024-09-02 10:00:00+00:00",
        "ml-prod",
        labels,
        cost,
        "USD",
        credits,
        month,
        cost_type,
    ]


def test_gcp_export_maps_cost_types(tmp_path):
    rows = [
        _gcp_csv_row(cost_type=kind) for kind in ("regular", "tax", "adjustment", "rounding_error")
    ]
    path = _write_csv(tmp_path, "types.csv", GCP_CSV_HEADER, rows)
    frame = _parse(path, gcp_export).frame
    assert frame["charge_category"].to_list() == ["Usage", "Tax", "Adjustment", "Adjustment"]


def test_gcp_export_labels_as_plain_dict_and_python_literal(tmp_path):
    rows = [
        _gcp_csv_row(labels='{"team": "nlp"}'),
        _gcp_csv_row(labels="[{'key': 'team', 'value': 'vision'}, {'key': 'x', 'value': None}]"),
    ]
    parsed = _parse(_write_csv(tmp_path, "labels.csv", GCP_CSV_HEADER, rows), gcp_export)
    assert [parsed.tag_parser(t) for t in parsed.frame["tags"]] == [
        {"team": "nlp"},
        {"team": "vision"},
    ]


def test_gcp_export_rejects_malformed_invoice_month(tmp_path):
    rows = [_gcp_csv_row(), _gcp_csv_row(month="2024-09")]
    path = _write_csv(tmp_path, "month.csv", GCP_CSV_HEADER, rows)
    with pytest.raises(BillingFileError) as exc:
        prepare(path)
    assert "month.csv, line 3, column invoice.month" in str(exc.value)
    assert "'2024-09'" in str(exc.value)


def test_gcp_export_rejects_text_in_credit_amount(tmp_path):
    rows = [_gcp_csv_row(credits="[{'name': 'x', 'amount': 'lots'}]")]
    path = _write_csv(tmp_path, "credit.csv", GCP_CSV_HEADER, rows)
    with pytest.raises(BillingFileError) as exc:
        prepare(path)
    assert "credit.csv, line 2, column credits" in str(exc.value)


def test_gcp_export_rejects_unknown_cost_type(tmp_path):
    path = _write_csv(tmp_path, "kind.csv", GCP_CSV_HEADER, [_gcp_csv_row(cost_type="bonus")])
    with pytest.raises(BillingFileError) as exc:
        prepare(path)
    assert "kind.csv, line 2, column cost_type" in str(exc.value)


# --- Azure, inline ---------------------------------------------------------------------

MCA_HEADER = [
    "billingAccountId",
    "billingAccountName",
    "billingPeriodStartDate",
    "subscriptionId",
    "subscriptionName",
    "date",
    "meterCategory",
    "serviceFamily",
    "meterId",
    "resourceId",
    "resourceLocation",
    "unitOfMeasure",
    "quantity",
    "costInBillingCurrency",
    "billingCurrency",
    "PayGPrice",
    "chargeType",
    "tags",
]


def _mca_row(charge="Usage", cost="2.40", quantity="24", payg="0.12", tags=""):
    return [
        "a1b2c3:d4e5_2019-05-31",
        "Contoso",
        "2024-09-01",
        "5e3f0c3e-0000-4000-8000-000000000001",
        "ML platform",
        "2024-09-14",
        "Virtual Machines",
        "Compute",
        "meter-1",
        "/subscriptions/5e3f/resourceGroups/ml/providers/Microsoft.Compute/virtualMachines/gpu1",
        "WestEurope",
        "1 Hour",
        quantity,
        cost,
        "EUR",
        payg,
        charge,
        tags,
    ]


def test_azure_export_parses_mca_camel_case(tmp_path):
    rows = [
        _mca_row(tags='{"team": "research", "env": "prod"}'),
        _mca_row(charge="Refund", cost="-1.00", payg="0"),
        _mca_row(charge="UnusedReservation", cost="0.30", payg=""),
        _mca_row(charge="RoundingAdjustment", cost="0.01", quantity="0", payg="0"),
        _mca_row(charge="Tax", cost="0.50", quantity="0", payg="0"),
    ]
    path = _write_csv(tmp_path, "mca.csv", MCA_HEADER, rows)
    table = read_table(path)
    assert detect(table.header, file=table.name) == azure_export.FORMAT
    parsed = azure_export.parse(table)
    frame = parsed.frame
    assert frame["charge_category"].to_list() == ["Usage", "Credit", "Usage", "Adjustment", "Tax"]
    usage = frame.row(0, named=True)
    assert usage["provider"] == "Microsoft"
    assert usage["billing_account_id"] == "a1b2c3:d4e5_2019-05-31"
    assert usage["sub_account_name"] == "ML platform"
    assert usage["service_name"] == "Virtual Machines"
    assert usage["region"] == "westeurope"
    assert usage["currency"] == "EUR"
    assert usage["billed_cost"] == usage["effective_cost"] == Decimal("2.4")
    assert usage["list_cost"] == Decimal("2.88")  # PayGPrice 0.12 x 24 hours
    assert frame["list_cost"].to_list()[1:] == [
        Decimal("-1"),
        Decimal("0.3"),
        Decimal("0.01"),
        Decimal("0.5"),
    ]
    assert usage["billing_period"] == date(2024, 9, 1)
    assert usage["usage_date"] == date(2024, 9, 14)
    assert parsed.tag_parser(usage["tags"]) == {"team": "research", "env": "prod"}
    assert prepare(path).billed_totals == {"EUR": Decimal("2.21")}


def test_azure_export_rejects_unknown_charge_type(tmp_path):
    path = _write_csv(tmp_path, "kind.csv", MCA_HEADER, [_mca_row(), _mca_row(charge="Bonus")])
    with pytest.raises(BillingFileError) as exc:
        prepare(path)
    assert "kind.csv, line 3, column chargeType" in str(exc.value)


def test_azure_export_rejects_text_in_cost(tmp_path):
    path = _write_csv(tmp_path, "cost.csv", MCA_HEADER, [_mca_row(cost="n/a")])
    with pytest.raises(BillingFileError) as exc:
        prepare(path)
    assert "cost.csv, line 2, column costInBillingCurrency" in str(exc.value)


def test_azure_export_matches_only_azure_headers():
    azure = {"billingaccountid", "date", "chargetype", "costinbillingcurrency"}
    assert azure_export.matches(azure)
    assert azure_export.matches({"billingaccountid", "date", "chargetype", "cost"})
    assert not azure_export.matches({"billingaccountid", "date", "cost"})
    assert not azure_export.matches(azure | {"billedcost"})


def test_parquet_map_columns_are_read_as_tag_text(tmp_path):
    """CUR 2.0 Parquet writes resource_tags as a map column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from costs.sources.reader import read_table

    table = pa.table(
        {
            "line_item_unblended_cost": ["1.5"],
            "resource_tags": pa.array(
                [[("user_team", "research")]], type=pa.map_(pa.string(), pa.string())
            ),
        }
    )
    path = tmp_path / "cur2.parquet"
    pq.write_table(table, path)
    frame = read_table(path).frame
    assert "research" in frame["resource_tags"][0]
    assert "user_team" in frame["resource_tags"][0]
