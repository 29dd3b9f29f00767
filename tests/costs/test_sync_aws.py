"""AWS syncs against real boto3 clients talking to moto in server mode (and a Price List
stand-in): Cost Explorer, CUR files in S3, SageMaker endpoints with CloudWatch invocations,
hourly prices; throttling retried, permanent errors recorded, no credential leaked."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import logging
import re
from decimal import Decimal as D

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import time_machine
from django.db.models import Sum

from costs import services, sync_aws
from costs.models import BillingImport, CloudAccount, CostRow, SyncKind, SyncRun, SyncStatus
from costs.sources import aws_cost_explorer as ce
from costs.sync import SYNCS, SyncRetryableError, sync_run_create, sync_run_execute
from registry.models import Endpoint, EndpointUsage, HardwarePrice, HardwareProfile
from registry.services import endpoint_upsert
from tests.costs.aws_server import (
    PriceListServer,
    ce_seed,
    install_injector,
    json_error,
    price_item,
    s3_error,
)
from tests.costs.conftest import DUMMY_KEY_ID, DUMMY_SECRET

UTC = dt.UTC
ACCOUNT_ID = "111122223333"
OCT, NOV, SEP = dt.date(2026, 10, 1), dt.date(2026, 11, 1), dt.date(2026, 9, 1)
NOW = dt.datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
BUCKET = "capgov-billing"


# --- servers and settings ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def aws(moto_aws, price_server, monkeypatch):
    """moto_aws (a clean moto, dummy credentials, short retries) with the Price List stand-in
    and the real sync adapters in place (other tests borrow their registry slots)."""
    price_server.products, price_server.requests = {}, []
    for kind, adapter in (
        (SyncKind.COSTS, sync_aws.aws_costs_sync),
        (SyncKind.CUR, sync_aws.aws_cur_sync),
        (SyncKind.ENDPOINTS, sync_aws.aws_endpoints_sync),
        (SyncKind.PRICES, sync_aws.aws_prices_sync),
    ):
        monkeypatch.setitem(SYNCS, ("aws", kind), adapter)
    return moto_aws


@pytest.fixture
def clock():
    traveller = time_machine.travel(NOW, tick=True)
    coordinates = traveller.start()
    yield coordinates
    traveller.stop()


@pytest.fixture
def faults(monkeypatch):
    return install_injector(monkeypatch)


@pytest.fixture
def account(org):
    services.allocation_rule_save(
        business_unit=org.research, tag_key="team", tag_values=["research"], priority=10
    )
    services.allocation_rule_save(
        business_unit=org.ads, tag_key="team", tag_values=["ads"], priority=20
    )
    return CloudAccount.objects.create(
        name="ML production",
        provider="aws",
        account_id=ACCOUNT_ID,
        aws_region="us-east-1",
        cur_bucket=BUCKET,
        cur_prefix="billing/",
        cost_allocation_tags=["user:team", "cost-center"],
    )


def boto(url: str, service: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


def sync(account: CloudAccount, kind: str, start: dt.date, end: dt.date) -> SyncRun:
    run = SyncRun.objects.create(account=account, kind=kind, period_start=start, period_end=end)
    return sync_run_execute(run=run)


def totals(source: str, period: dt.date) -> dict[str | None, D]:
    rows = (
        CostRow.objects.filter(source=source, billing_period=period, billing_account_id=ACCOUNT_ID)
        .values("tag_set__business_unit__code")
        .annotate(total=Sum("billed_cost"))
    )
    return {r["tag_set__business_unit__code"]: r["total"] for r in rows}


def assert_no_credentials(*texts: str) -> None:
    for text in texts:
        assert DUMMY_SECRET not in text
        assert DUMMY_KEY_ID not in text
        assert "AKIA" not in text


# --- Cost Explorer --------------------------------------------------------------------------


def test_cost_explorer_reads_whole_months_up_to_tomorrow():
    today = dt.date(2026, 11, 15)
    assert ce.query_period(dt.date(2026, 10, 5), dt.date(2026, 10, 10), today=today) == (
        OCT,
        NOV,
    )
    assert ce.query_period(dt.date(2026, 10, 20), dt.date(2026, 11, 3), today=today) == (
        OCT,
        dt.date(2026, 11, 16),
    )
    assert ce.months(OCT, dt.date(2026, 11, 16)) == [OCT, NOV]


def test_cost_explorer_groups_by_the_first_allocation_tag_only():
    grouping, unused = ce.grouping_for(["user:team", "resourceTags/user:env", "team", " "])
    assert grouping.group_by() == [
        {"Type": "DIMENSION", "Key": "SERVICE"},
        {"Type": "TAG", "Key": "team"},
    ]
    assert unused == ["env"]


def test_cost_explorer_rows_refuse_an_amount_that_is_not_a_number():
    page = {
        "ResultsByTime": [day("2026-10-01", "2026-10-02", [group("S", "team$", "1,5", "1", "1")])]
    }
    with pytest.raises(ce.CostExplorerError, match=r"UnblendedCost '1,5' is not a number"):
        ce.focus_rows([page], account_id="1", account_name="a", grouping=ce.Grouping("team"))


def group(service: str, tag: str, billed: str, amortised: str, quantity: str) -> dict:
    return {
        "Keys": [service, tag],
        "Metrics": {
            "UnblendedCost": {"Amount": billed, "Unit": "USD"},
            "AmortizedCost": {"Amount": amortised, "Unit": "USD"},
            "UsageQuantity": {"Amount": quantity, "Unit": "N/A"},
        },
    }


def day(start: str, end: str, groups: list[dict]) -> dict:
    return {
        "TimePeriod": {"Start": start, "End": end},
        "Total": {},
        "Groups": groups,
        "Estimated": False,
    }


CE_PAGES = [
    {
        "ResultsByTime": [
            day(
                "2026-10-01",
                "2026-10-02",
                [
                    group("Amazon SageMaker", "team$research", "12.50", "11.25", "24"),
                    group(
                        "Amazon Elastic Compute Cloud - Compute",
                        "team$ads",
                        "3.3333333333",
                        "3.3333333333",
                        "10",
                    ),
                ],
            ),
            day(
                "2026-10-31",
                "2026-11-01",
                [group("Amazon SageMaker", "team$", "1.05", "1.05", "2")],
            ),
        ],
        "NextPageToken": "page-2",
        "GroupDefinitions": [
            {"Type": "DIMENSION", "Key": "SERVICE"},
            {"Type": "TAG", "Key": "team"},
        ],
        "DimensionValueAttributes": [],
    },
    {
        "ResultsByTime": [
            day(
                "2026-11-01",
                "2026-11-02",
                [
                    group("Amazon SageMaker", "team$research", "7.0000000001", "6.5", "24"),
                    group("AWS Lambda", "team$ads", "0", "0", "0"),
                    group("Amazon Simple Storage Service", "team$ads", "1.5E-3", "1.5E-3", "0.3"),
                ],
            )
        ],
        "GroupDefinitions": [
            {"Type": "DIMENSION", "Key": "SERVICE"},
            {"Type": "TAG", "Key": "team"},
        ],
        "DimensionValueAttributes": [],
    },
]

OCT_CE = {"RES": D("12.50"), "ADS": D("3.3333333333"), None: D("1.05")}
NOV_CE = {"RES": D("7.0000000001"), "ADS": D("0.0015")}


def test_costs_sync_imports_cost_explorer_pages_one_file_per_month(
    account, aws, clock, faults, caplog
):
    caplog.set_level(logging.INFO)
    ce_seed(aws, CE_PAGES)
    observed = faults.add("ce", "GetCostAndUsage")

    run = sync(account, SyncKind.COSTS, OCT, dt.date(2026, 11, 10))

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert totals("focus", OCT) == OCT_CE
    assert totals("focus", NOV) == NOV_CE
    effective = CostRow.objects.filter(billing_period=OCT).aggregate(t=Sum("effective_cost"))["t"]
    assert effective == D("15.6333333333")
    assert run.rows == CostRow.objects.count() == 5  # the all-zero Lambda group is not a row
    # Whole months are read (an import replaces a month), up to tomorrow; both pages followed.
    first, second = (json.loads(request.body) for request in observed.calls)
    assert first == {
        "TimePeriod": {"Start": "2026-10-01", "End": "2026-11-16"},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost", "AmortizedCost", "UsageQuantity"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}],
    }
    assert second["NextPageToken"] == "page-2"
    assert run.detail["pages"] == 2
    assert run.detail["tag_keys_not_read"] == ["cost-center"]
    assert sorted(run.detail["months"]) == ["2026-10", "2026-11"]
    imports = BillingImport.objects.filter(detected_format="focus").order_by("pk")
    assert [i.billing_periods for i in imports] == [["2026-10"], ["2026-11"]]
    assert_no_credentials(caplog.text, run.error, json.dumps(run.detail))


def test_costs_sync_run_again_changes_no_totals(account, aws, clock):
    ce_seed(aws, CE_PAGES)
    first = sync(account, SyncKind.COSTS, OCT, dt.date(2026, 11, 10))
    rows = CostRow.objects.count()

    again = sync(account, SyncKind.COSTS, OCT, dt.date(2026, 11, 10))

    assert again.status == SyncStatus.SUCCEEDED, again.error
    assert (totals("focus", OCT), totals("focus", NOV)) == (OCT_CE, NOV_CE)
    assert CostRow.objects.count() == rows == again.rows == first.rows
    assert BillingImport.objects.filter(superseded_by__isnull=False).count() == 2


def test_costs_sync_retries_a_throttled_first_call(account, aws, clock, faults):
    ce_seed(aws, CE_PAGES)
    throttle = faults.add("ce", "GetCostAndUsage", [json_error("ThrottlingException")])

    run = sync(account, SyncKind.COSTS, OCT, dt.date(2026, 11, 10))

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert len(throttle.calls) == 3  # throttled, retried by botocore, then page 2
    assert totals("focus", OCT) == OCT_CE


def test_costs_sync_throttled_past_the_retries_is_requeued(account, aws, clock, faults):
    faults.add("ce", "GetCostAndUsage", [json_error("ThrottlingException")] * 10)
    run = SyncRun.objects.create(
        account=account, kind=SyncKind.COSTS, period_start=OCT, period_end=NOV
    )

    with pytest.raises(SyncRetryableError):
        sync_run_execute(run=run)

    run.refresh_from_db()
    assert run.status == SyncStatus.QUEUED
    assert run.error.startswith("Will retry: Cost Explorer GetCostAndUsage: AWS is throttling")


def test_costs_sync_permanent_error_fails_the_run_and_keeps_the_data(
    account, aws, clock, faults, caplog
):
    caplog.set_level(logging.INFO)
    ce_seed(aws, CE_PAGES)
    assert sync(account, SyncKind.COSTS, OCT, dt.date(2026, 11, 10)).status == "succeeded"
    rows = CostRow.objects.count()
    leak = (
        f"User arn:aws:iam::{ACCOUNT_ID}:user/ci (key {DUMMY_KEY_ID}, "
        f"aws_secret_access_key={DUMMY_SECRET}) is not authorized to perform ce:GetCostAndUsage"
    )
    faults.add("ce", "GetCostAndUsage", [json_error("AccessDeniedException", leak)])

    run = sync(account, SyncKind.COSTS, OCT, dt.date(2026, 11, 10))

    assert run.status == SyncStatus.FAILED
    assert run.error.startswith(
        "Cost Explorer GetCostAndUsage: access denied for the worker's default AWS credentials"
    )
    assert "grant it the permission in IAM" in run.error
    assert "[redacted" in run.error
    assert (totals("focus", OCT), totals("focus", NOV)) == (OCT_CE, NOV_CE)
    assert CostRow.objects.count() == rows
    assert_no_credentials(run.error, json.dumps(run.detail), caplog.text)
    for stored in SyncRun.objects.values_list("error", "detail"):
        assert_no_credentials(stored[0], json.dumps(stored[1]))


def test_costs_sync_failing_on_the_second_page_writes_nothing(account, aws, clock, faults):
    ce_seed(aws, CE_PAGES)
    faults.add(
        "ce", "GetCostAndUsage", [None, json_error("ValidationException", "Invalid NextPageToken")]
    )

    run = sync(account, SyncKind.COSTS, OCT, dt.date(2026, 11, 10))

    assert run.status == SyncStatus.FAILED
    assert "AWS rejected the request (ValidationException: Invalid NextPageToken)" in run.error
    assert CostRow.objects.count() == 0
    assert BillingImport.objects.count() == 0


def test_costs_sync_without_tag_keys_groups_by_linked_account(account, aws, clock, faults):
    account.cost_allocation_tags = []
    account.save()
    ce_seed(
        aws,
        [
            {
                "ResultsByTime": [
                    day(
                        "2026-10-02",
                        "2026-10-03",
                        [group("Amazon SageMaker", "444455556666", "2.00", "1.80", "1")],
                    )
                ]
            }
        ],
    )
    observed = faults.add("ce", "GetCostAndUsage")

    run = sync(account, SyncKind.COSTS, OCT, NOV)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert json.loads(observed.calls[0].body)["GroupBy"][1] == {
        "Type": "DIMENSION",
        "Key": "LINKED_ACCOUNT",
    }
    (row,) = CostRow.objects.all()
    assert (row.sub_account_id, row.billed_cost, row.effective_cost) == (
        "444455556666",
        D("2.00"),
        D("1.80"),
    )


# --- CUR files in S3 --------------------------------------------------------------------------

CUR2_COLUMNS = [
    "identity_line_item_id",
    "identity_time_interval",
    "bill_payer_account_id",
    "bill_billing_period_start_date",
    "bill_billing_period_end_date",
    "line_item_usage_account_id",
    "line_item_line_item_type",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
    "line_item_product_code",
    "line_item_resource_id",
    "line_item_usage_amount",
    "line_item_currency_code",
    "line_item_unblended_cost",
    "pricing_public_on_demand_cost",
    "product_region_code",
    "resource_tags",
]


def cur2_line(n: int, day_: str, cost: str, tags: dict[str, str], period: dt.date) -> list[str]:
    end = (period + dt.timedelta(days=32)).replace(day=1)
    return [
        f"line-{n}",
        f"{day_}T10:00:00Z/{day_}T11:00:00Z",
        ACCOUNT_ID,
        f"{period}T00:00:00Z",
        f"{end}T00:00:00Z",
        "444455556666",
        "Usage",
        f"{day_}T10:00:00Z",
        f"{day_}T11:00:00Z",
        "AmazonSageMaker",
        f"arn:aws:sagemaker:us-east-1:{ACCOUNT_ID}:endpoint/ep-{n}",
        "1",
        "USD",
        cost,
        cost,
        "us-east-1",
        json.dumps(tags),
    ]


def csv_gz(header: list[str], lines: list[list[str]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(lines)
    return gzip.compress(text.getvalue().encode())


def parquet(lines: list[list[str]]) -> bytes:
    """A CUR 2.0 Parquet part with typed columns and resource_tags as a map, as AWS writes it."""
    columns = list(zip(*lines, strict=True))
    arrays = {}
    for name, values in zip(CUR2_COLUMNS, columns, strict=True):
        if name == "resource_tags":
            maps = [list(json.loads(v).items()) for v in values]
            arrays[name] = pa.array(maps, type=pa.map_(pa.string(), pa.string()))
        elif name in ("line_item_unblended_cost", "pricing_public_on_demand_cost"):
            arrays[name] = pa.array([float(v) for v in values], type=pa.float64())
        elif name.endswith("_date"):
            stamps = [dt.datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values]
            arrays[name] = pa.array(stamps, type=pa.timestamp("ms", tz="UTC"))
        else:
            arrays[name] = pa.array(values, type=pa.string())
    buffer = io.BytesIO()
    pq.write_table(pa.table(arrays), buffer)
    return buffer.getvalue()


OCT_PARTS = [
    [
        cur2_line(1, "2026-10-01", "1.25", {"user_team": "research"}, OCT),
        cur2_line(2, "2026-10-02", "2.50", {"user_team": "ads"}, OCT),
    ],
    [
        cur2_line(3, "2026-10-03", "0.125", {"user_team": "research"}, OCT),
        cur2_line(4, "2026-10-03", "3.00", {}, OCT),
    ],
]
NOV_PARTS = [
    [cur2_line(5, "2026-11-02", "4.00", {"user_team": "research"}, NOV)],
    [cur2_line(6, "2026-11-03", "0.75", {"user_team": "ads"}, NOV)],
]
OCT_CUR = {"RES": D("1.375"), "ADS": D("2.50"), None: D("3.00")}
NOV_CUR = {"RES": D("4.00"), "ADS": D("0.75")}


def put_data_export(url: str, *, oct_count: int = 4) -> None:
    """A CUR 2.0 data export: October as two gzip CSV parts, November as two Parquet parts."""
    s3 = boto(url, "s3")
    s3.create_bucket(Bucket=BUCKET)
    root = "billing/capgov-cur2"
    for period, parts, count, suffix in (
        ("2026-10", OCT_PARTS, oct_count, "csv.gz"),
        ("2026-11", NOV_PARTS, 2, "snappy.parquet"),
    ):
        keys = []
        for number, lines in enumerate(parts, start=1):
            key = f"{root}/data/BILLING_PERIOD={period}/capgov-cur2-{number:05d}.{suffix}"
            body = csv_gz(CUR2_COLUMNS, lines) if suffix == "csv.gz" else parquet(lines)
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            keys.append(f"s3://{BUCKET}/{key}")
        manifest = {
            "executionId": f"exec-{period}",
            "billingPeriod": {"start": f"{period}-01T00:00:00.000Z"},
            "bucket": BUCKET,
            "dataFiles": keys,
            "recordCount": count,
        }
        s3.put_object(
            Bucket=BUCKET,
            Key=f"{root}/metadata/BILLING_PERIOD={period}/capgov-cur2-Manifest.json",
            Body=json.dumps(manifest).encode(),
        )


def test_cur_sync_imports_each_period_of_a_data_export_in_one_go(account, aws, clock, caplog):
    caplog.set_level(logging.INFO)
    put_data_export(aws)

    run = sync(account, SyncKind.CUR, OCT, dt.date(2026, 11, 16))

    assert run.status == SyncStatus.SUCCEEDED, run.error
    # Both parts of each period are there: importing them one by one would keep only the last.
    assert totals("aws-cur", OCT) == OCT_CUR
    assert totals("aws-cur", NOV) == NOV_CUR
    assert run.detail["periods"]["2026-10"]["files"] == 2
    assert run.detail["periods"]["2026-10"]["rows_read"] == 4
    assert run.detail["periods"]["2026-11"]["layout"] == "data-exports"
    assert run.rows == CostRow.objects.count() == 6
    assert_no_credentials(caplog.text, json.dumps(run.detail))


def test_cur_sync_run_again_changes_no_totals(account, aws, clock, faults):
    put_data_export(aws)
    first = sync(account, SyncKind.CUR, OCT, dt.date(2026, 11, 16))
    slow_down = faults.add(
        "s3", "GetObject", [s3_error("SlowDown", "Please reduce your request rate.", 503)]
    )

    again = sync(account, SyncKind.CUR, OCT, dt.date(2026, 11, 16))

    assert again.status == SyncStatus.SUCCEEDED, again.error
    assert len(slow_down.calls) == 2 + 4 + 1  # two manifests, four parts, one retried
    assert (totals("aws-cur", OCT), totals("aws-cur", NOV)) == (OCT_CUR, NOV_CUR)
    assert CostRow.objects.count() == first.rows == again.rows


def test_cur_sync_reads_the_current_legacy_manifest(account, aws, clock):
    s3 = boto(aws, "s3")
    s3.create_bucket(Bucket=BUCKET)
    header = [
        "identity/LineItemId",
        "identity/TimeInterval",
        "bill/PayerAccountId",
        "bill/BillingPeriodStartDate",
        "lineItem/LineItemType",
        "lineItem/UsageStartDate",
        "lineItem/ProductCode",
        "lineItem/UsageAmount",
        "lineItem/CurrencyCode",
        "lineItem/UnblendedCost",
        "product/region",
        "resourceTags/user:team",
    ]

    def line(n: int, cost: str, team: str) -> list[str]:
        return [
            f"l{n}",
            "2026-09-04T00:00:00Z/2026-09-04T01:00:00Z",
            ACCOUNT_ID,
            "2026-09-01T00:00:00Z",
            "Usage",
            "2026-09-04T00:00:00Z",
            "AmazonEC2",
            "1",
            "USD",
            cost,
            "us-east-1",
            team,
        ]

    folder = "billing/legacy-cur/20260901-20261001"
    current, stale = f"{folder}/asm-2", f"{folder}/asm-1"
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{current}/legacy-cur-1.csv.gz",
        Body=csv_gz(header, [line(1, "5.00", "ads")]),
    )
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{current}/legacy-cur-2.csv.gz",
        Body=csv_gz(header, [line(2, "0.40", "research")]),
    )
    s3.put_object(
        Bucket=BUCKET, Key=f"{stale}/legacy-cur-1.csv.gz", Body=csv_gz(header, [line(9, "99", "")])
    )
    for key, assembly in (
        (f"{folder}/legacy-cur-Manifest.json", current),
        (f"{stale}/legacy-cur-Manifest.json", stale),
    ):
        report_keys = [f"{assembly}/legacy-cur-1.csv.gz"]
        if assembly == current:
            report_keys.append(f"{assembly}/legacy-cur-2.csv.gz")
        manifest = {
            "assemblyId": assembly.rsplit("/", 1)[1],
            "account": ACCOUNT_ID,
            "compression": "GZIP",
            "contentType": "text/csv",
            "reportName": "legacy-cur",
            "billingPeriod": {"start": "20260901T000000.000Z", "end": "20261001T000000.000Z"},
            "bucket": BUCKET,
            "reportKeys": report_keys,
        }
        s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest).encode())

    run = sync(account, SyncKind.CUR, SEP, OCT)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert totals("aws-cur", SEP) == {"ADS": D("5.00"), "RES": D("0.40")}
    assert run.detail["periods"]["2026-09"]["layout"] == "legacy"


def test_cur_sync_refuses_a_manifest_whose_row_count_disagrees(account, aws, clock):
    put_data_export(aws)
    assert sync(account, SyncKind.CUR, OCT, dt.date(2026, 11, 16)).status == "succeeded"
    s3 = boto(aws, "s3")
    manifest_key = "billing/capgov-cur2/metadata/BILLING_PERIOD=2026-10/capgov-cur2-Manifest.json"
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    manifest["recordCount"] = 5
    s3.put_object(Bucket=BUCKET, Key=manifest_key, Body=json.dumps(manifest).encode())

    run = sync(account, SyncKind.CUR, OCT, dt.date(2026, 11, 16))

    assert run.status == SyncStatus.FAILED
    assert "says 5 rows but its 2 file(s) hold 4" in run.error
    assert (totals("aws-cur", OCT), totals("aws-cur", NOV)) == (OCT_CUR, NOV_CUR)


def test_cur_sync_missing_bucket_fails_readably_and_keeps_the_data(account, aws, clock, caplog):
    caplog.set_level(logging.INFO)
    put_data_export(aws)
    assert sync(account, SyncKind.CUR, OCT, dt.date(2026, 11, 16)).status == "succeeded"
    account.cur_bucket = "capgov-billing-typo"
    account.save()

    run = sync(account, SyncKind.CUR, OCT, dt.date(2026, 11, 16))

    assert run.status == SyncStatus.FAILED
    assert run.error.startswith("Listing the CUR files in s3://capgov-billing-typo/billing:")
    assert "the bucket 'capgov-billing-typo' does not exist (NoSuchBucket" in run.error
    assert (totals("aws-cur", OCT), totals("aws-cur", NOV)) == (OCT_CUR, NOV_CUR)
    assert_no_credentials(run.error, caplog.text)


def test_cur_sync_with_an_empty_prefix_says_where_it_looked(account, aws, clock):
    boto(aws, "s3").create_bucket(Bucket=BUCKET)

    run = sync(account, SyncKind.CUR, OCT, NOV)

    assert run.status == SyncStatus.FAILED
    assert run.error.startswith(f"CUR: no report manifest under s3://{BUCKET}/billing")


# --- SageMaker endpoints and CloudWatch invocations ------------------------------------------

ENDPOINTS = {
    # name: (variants [(name, count, instance type)], tags)
    "ranker": ([("A", 2, "ml.g4dn.xlarge"), ("B", 1, "ml.g4dn.xlarge")], {"team": "ads"}),
    "summariser": ([("AllTraffic", 1, "ml.g4dn.2xlarge")], {"Team": "Research"}),
    "forgotten": ([("AllTraffic", 1, "ml.m5.large")], {}),
}


def sagemaker_seed(url: str) -> None:
    sm = boto(url, "sagemaker")
    for name, (variants, tags) in ENDPOINTS.items():
        sm.create_model(
            ModelName=f"{name}-model",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
            PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/serve:1"},
        )
        sm.create_endpoint_config(
            EndpointConfigName=f"{name}-config",
            ProductionVariants=[
                {
                    "VariantName": variant,
                    "ModelName": f"{name}-model",
                    "InitialInstanceCount": count,
                    "InstanceType": instance_type,
                }
                for variant, count, instance_type in variants
            ],
        )
        sm.create_endpoint(
            EndpointName=name,
            EndpointConfigName=f"{name}-config",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )


def invocations_put(url: str) -> None:
    cw = boto(url, "cloudwatch")
    points = [
        ("ranker", "A", "2026-10-01T10:00:00", 7),
        ("ranker", "A", "2026-10-02T10:00:00", 100),
        ("ranker", "A", "2026-10-02T14:00:00", 20),
        ("ranker", "B", "2026-10-02T16:00:00", 30),
        ("ranker", "A", "2026-10-03T09:00:00", 5),
        ("summariser", "AllTraffic", "2026-10-05T12:00:00", 42),
        ("summariser", "AllTraffic", "2026-10-09T12:00:00", 1000),  # after the window
    ]
    cw.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": name},
                    {"Name": "VariantName", "Value": variant},
                ],
                "Timestamp": dt.datetime.fromisoformat(stamp).replace(tzinfo=UTC),
                "Value": value,
                "Unit": "None",
            }
            for name, variant, stamp, value in points
        ],
    )


def usage_of(name: str) -> dict[dt.date, int]:
    return dict(EndpointUsage.objects.filter(endpoint__name=name).values_list("day", "invocations"))


def oct_(day_: int) -> dt.date:
    return dt.date(2026, 10, day_)


@pytest.fixture
def three_endpoints(aws, clock):
    """Three endpoints created on 1 October at 08:00; the clock then moves to the 8th, noon."""
    clock.move_to(dt.datetime(2026, 10, 1, 8, 0, tzinfo=UTC))
    sagemaker_seed(aws)
    invocations_put(aws)
    clock.move_to(dt.datetime(2026, 10, 8, 12, 0, tzinfo=UTC))


def test_endpoints_sync_reads_server_errors_for_availability_slos(
    account, aws, three_endpoints, org, django_capture_on_commit_callbacks
):
    """Invocation5XXErrors become the day's errors, and an availability SLO on the endpoint
    is measured from them; a day CloudWatch has no error count for stays unmeasured."""
    from governance.models import ServiceLevelObjective, SloMeasurement
    from registry.services import slo_measurements_from_usage

    boto(aws, "cloudwatch").put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocation5XXErrors",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": "ranker"},
                    {"Name": "VariantName", "Value": variant},
                ],
                "Timestamp": dt.datetime(2026, 10, 2, 12, tzinfo=UTC),
                "Value": value,
                "Unit": "None",
            }
            for variant, value in (("A", 2), ("B", 1))
        ],
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = sync_run_create(account=account, kind=SyncKind.ENDPOINTS, start=oct_(1), end=oct_(8))
    run.refresh_from_db()
    assert run.status == SyncStatus.SUCCEEDED, run.error
    errors = dict(
        EndpointUsage.objects.filter(endpoint__name="ranker").values_list("day", "errors")
    )
    assert errors[oct_(2)] == 3
    assert errors[oct_(1)] is None
    slo = ServiceLevelObjective.objects.create(
        name="ranker-availability", service="ranker", indicator="availability", target=D("99.9")
    )
    slo_measurements_from_usage(days=[oct_(1), oct_(2)])
    measured = SloMeasurement.objects.get(slo=slo)
    assert (measured.day, measured.good, measured.total, measured.value) == (
        oct_(2),
        147,
        150,
        D("98.0000"),
    )


def test_endpoints_sync_records_endpoints_and_daily_invocations(
    account, aws, three_endpoints, org, django_capture_on_commit_callbacks, caplog
):
    caplog.set_level(logging.INFO)
    with django_capture_on_commit_callbacks(execute=True):
        run = sync_run_create(account=account, kind=SyncKind.ENDPOINTS, start=oct_(1), end=oct_(8))
    run.refresh_from_db()

    assert run.status == SyncStatus.SUCCEEDED, run.error
    ranker, summariser, forgotten = (
        Endpoint.objects.get(name=n) for n in ("ranker", "summariser", "forgotten")
    )
    assert (ranker.instance_type, ranker.instance_count, ranker.status) == (
        "ml.g4dn.xlarge",
        3,
        "InService",
    )
    assert ranker.resource_id == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ranker"
    assert (ranker.account_id, ranker.region, ranker.config_name) == (
        ACCOUNT_ID,
        "us-east-1",
        "ranker-config",
    )
    created = dt.datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
    assert abs(ranker.created_in_cloud_at - created) < dt.timedelta(minutes=1)
    assert (ranker.business_unit, summariser.business_unit, forgotten.business_unit) == (
        org.ads,
        org.research,
        None,
    )
    assert summariser.tags == {"Team": "Research"}
    quiet = dict.fromkeys([oct_(d) for d in range(2, 8)], 0)
    # Both variants summed; the 1st (created at 08:00) has only what CloudWatch reported.
    assert usage_of("ranker") == {**quiet, oct_(1): 7, oct_(2): 150, oct_(3): 5}
    assert usage_of("summariser") == {**quiet, oct_(5): 42}
    # Serving all day and never called: zero, not unknown; the partial first day stays unknown.
    assert usage_of("forgotten") == quiet
    assert run.rows == 3 + 7 + 6 + 6
    assert run.detail["quiet_days_as_zero"] == 4 + 5 + 6
    assert_no_credentials(caplog.text, json.dumps(run.detail))


def test_endpoints_sync_run_again_changes_nothing(account, aws, three_endpoints):
    sync(account, SyncKind.ENDPOINTS, oct_(1), oct_(8))
    before = sorted(EndpointUsage.objects.values_list("endpoint__name", "day", "invocations"))

    again = sync(account, SyncKind.ENDPOINTS, oct_(1), oct_(8))

    assert again.status == SyncStatus.SUCCEEDED, again.error
    assert Endpoint.objects.count() == 3
    assert sorted(EndpointUsage.objects.values_list("endpoint__name", "day", "invocations")) == (
        before
    )


def test_endpoints_sync_does_not_zero_days_that_are_not_over(account, aws, three_endpoints, clock):
    clock.move_to(dt.datetime(2026, 10, 8, 1, 0, tzinfo=UTC))  # the 7th ended an hour ago

    run = sync(account, SyncKind.ENDPOINTS, oct_(1), oct_(8))

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert sorted(usage_of("forgotten")) == [oct_(d) for d in range(2, 7)]


def test_endpoints_sync_retries_throttling_and_keeps_data_on_failure(
    account, aws, three_endpoints, faults, caplog
):
    caplog.set_level(logging.INFO)
    throttle = faults.add("sagemaker", "ListEndpoints", [json_error("ThrottlingException")])
    first = sync(account, SyncKind.ENDPOINTS, oct_(1), oct_(8))
    assert first.status == SyncStatus.SUCCEEDED, first.error
    assert len(throttle.calls) == 2
    before = sorted(EndpointUsage.objects.values_list("endpoint__name", "day", "invocations"))
    boto(aws, "sagemaker").delete_endpoint(EndpointName="forgotten")
    faults.add(
        "sagemaker",
        "DescribeEndpoint",
        [None, json_error("ExpiredTokenException", f"token of {DUMMY_KEY_ID} expired")],
    )

    run = sync(account, SyncKind.ENDPOINTS, oct_(1), oct_(8))

    assert run.status == SyncStatus.FAILED
    assert re.match(
        r"SageMaker DescribeEndpoint / ListTags (ranker|summariser): the credentials of the "
        r"worker's default AWS credentials have expired \(ExpiredTokenException: token of "
        r"\[redacted[^]]*\] expired\)",
        run.error,
    ), run.error
    assert "have expired" in run.error
    assert Endpoint.objects.get(name="forgotten").status == "InService"  # untouched
    assert sorted(EndpointUsage.objects.values_list("endpoint__name", "day", "invocations")) == (
        before
    )
    assert_no_credentials(run.error, caplog.text)


# --- prices from the Price List API ---------------------------------------------------------


def sagemaker_product(
    sku: str, instance: str, region: str, usd: str, unit: str = "Hrs", **extra: str
) -> str:
    attributes = {
        "servicecode": "AmazonSageMaker",
        "regionCode": region,
        "instanceName": instance,
        "instanceType": f"{instance}-Hosting",
        "component": "Hosting",
        **extra,
    }
    return price_item(sku=sku, attributes=attributes, usd=usd, unit=unit)


@pytest.fixture
def profiles(account):
    t4 = HardwareProfile.objects.create(name="1 x T4 16GB", accelerator="NVIDIA T4")
    a100 = HardwareProfile.objects.create(
        name="8 x A100 40GB", accelerator="NVIDIA A100 40GB", accelerator_count=8
    )
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    for profile, instance_type, region, price in (
        (t4, "ml.g4dn.xlarge", "us-east-1", "0.70"),
        (a100, "p4d.24xlarge", "", "30.00"),
    ):
        HardwarePrice.objects.create(
            hardware_profile=profile,
            provider="aws",
            instance_type=instance_type,
            region=region,
            hourly_price=D(price),
            effective_from=start,
        )
    HardwarePrice.objects.create(
        hardware_profile=t4,
        provider="gcp",
        region="us-central1",
        hourly_price=D("0.35"),
        effective_from=start,
    )
    endpoint_upsert(
        provider="aws",
        account_id=ACCOUNT_ID,
        region="eu-west-1",
        name="eu-ranker",
        resource_id=f"arn:aws:sagemaker:eu-west-1:{ACCOUNT_ID}:endpoint/eu-ranker",
        instance_type="ml.g4dn.xlarge",
        instance_count=1,
    )
    endpoint_upsert(
        provider="aws",
        account_id=ACCOUNT_ID,
        region="us-east-1",
        name="cpu-box",
        resource_id=f"arn:aws:sagemaker:us-east-1:{ACCOUNT_ID}:endpoint/cpu-box",
        instance_type="ml.m5.large",
        instance_count=1,
    )
    return t4, a100


def price_list(server: PriceListServer) -> None:
    ec2 = {
        "servicecode": "AmazonEC2",
        "regionCode": "us-east-1",
        "instanceType": "p4d.24xlarge",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    server.products = {
        "AmazonSageMaker": [
            sagemaker_product("SM1", "ml.g4dn.xlarge", "us-east-1", "0.7364000000"),
            sagemaker_product("SM2", "ml.g4dn.xlarge", "eu-west-1", "0.8200000000"),
            sagemaker_product("SM3", "ml.g4dn.xlarge", "us-east-1", "0.79", component="Training"),
            price_item(
                sku="SM4",
                attributes={
                    "servicecode": "AmazonSageMaker",
                    "regionCode": "us-east-1",
                    "instanceName": "ml.g4dn.xlarge",
                    "component": "Hosting",
                },
                usd="13.57",
                unit="Quantity",
            ),
        ],
        "AmazonEC2": [
            price_item(
                sku="EC1", attributes=ec2, usd="32.7726000000", effective="2026-08-01T00:00:00Z"
            ),
            price_item(
                sku="EC2",
                attributes={**ec2, "capacitystatus": "UnusedCapacityReservation"},
                usd="1",
            ),
        ],
    }


def test_prices_sync_records_hourly_prices_for_profiles_in_use(
    account, aws, clock, profiles, price_server, faults
):
    price_list(price_server)
    throttle = faults.add("pricing", "GetProducts", [json_error("ThrottlingException")])

    run = sync(account, SyncKind.PRICES, OCT, NOV)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    synced = {
        (p.hardware_profile.name, p.instance_type, p.region): (p.hourly_price, p.effective_from)
        for p in HardwarePrice.objects.filter(source="sync")
    }
    sept, aug = dt.datetime(2026, 9, 1, tzinfo=UTC), dt.datetime(2026, 8, 1, tzinfo=UTC)
    assert synced == {
        ("1 x T4 16GB", "ml.g4dn.xlarge", "us-east-1"): (D("0.7364"), sept),
        ("1 x T4 16GB", "ml.g4dn.xlarge", "eu-west-1"): (D("0.82"), sept),
        ("8 x A100 40GB", "p4d.24xlarge", "us-east-1"): (D("32.7726"), aug),
    }
    assert run.rows == 3
    assert run.detail["instance_types_without_profile"] == ["ml.m5.large"]
    assert len(throttle.calls) >= 2
    asked = [r for r in price_server.requests if r["ServiceCode"] == "AmazonSageMaker"]
    assert {f["Field"]: f["Value"] for f in asked[0]["Filters"]} == {
        "regionCode": "eu-west-1",
        "instanceName": "ml.g4dn.xlarge",
        "component": "Hosting",
    }
    assert any(r.get("NextToken") for r in asked)  # followed the pages

    again = sync(account, SyncKind.PRICES, OCT, NOV)

    assert again.status == SyncStatus.SUCCEEDED, again.error
    assert HardwarePrice.objects.filter(source="sync").count() == 3
    assert HardwarePrice.objects.count() == 6


def test_prices_sync_skips_an_ambiguous_price_rather_than_guessing(
    account, aws, clock, profiles, price_server
):
    price_list(price_server)
    price_server.products["AmazonSageMaker"].append(
        sagemaker_product("SM5", "ml.g4dn.xlarge", "eu-west-1", "0.9100000000")
    )

    run = sync(account, SyncKind.PRICES, OCT, NOV)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert run.detail["skipped"] == [
        "ml.g4dn.xlarge in eu-west-1: more than one hourly price (0.8200000000 USD, "
        "0.9100000000 USD); not guessing"
    ]
    assert not HardwarePrice.objects.filter(source="sync", region="eu-west-1").exists()
    assert HardwarePrice.objects.filter(source="sync").count() == 2


def test_switching_an_account_from_cost_explorer_to_cur_never_counts_a_month_twice(
    account, tmp_path
):
    from costs.models import BillingImport, CostRow
    from tests.factories import focus_line, write_focus

    ce = write_focus(tmp_path / "ce.csv", [focus_line(cost="6.875", account=ACCOUNT_ID)])
    first = services.billing_import(path=ce, fmt="focus")
    cur = tmp_path / "cur.csv.gz"
    cur.write_bytes(csv_gz(CUR2_COLUMNS, [cur2_line(1, "2026-10-05", "1.25", {}, OCT)]))
    second = services.billing_import(path=cur, fmt="aws-cur", also_replaces=("focus",))
    assert second.status == "succeeded", second.error
    assert not CostRow.objects.filter(source="focus").exists()
    assert CostRow.objects.filter(source="aws-cur").count() == 1
    assert BillingImport.objects.get(pk=first.pk).superseded_by_id == second.pk
