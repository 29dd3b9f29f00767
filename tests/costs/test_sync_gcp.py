"""GCP syncs against a local server speaking Google's REST shapes, through the real clients.

Costs: recorded BigQuery result rows (the daily aggregate of the billing export) become cost
rows through the gcp-export importer. Prices: Compute Engine SKUs from the Cloud Billing
catalog price the registry's GCP hardware. Billing accounts: the account and its projects.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import json
import logging
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from django.db.models import Count, Sum

from costs import services, sync, sync_gcp
from costs.models import BillingImport, CloudAccount, CostRow, SyncRun
from costs.sources import gcp_bigquery
from registry.models import HardwarePrice, HardwareProfile
from registry.services import hardware_price_current
from tests.costs.gcp_server import GoogleFake, schema_fields

BILLING_ID = "01A2B3-C4D5E6-F7A8B9"
TABLE = "acme-billing.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9"
COMPUTE = "6F81-5844-456A"
NOV, OCT = dt.date(2026, 11, 1), dt.date(2026, 10, 1)
WINDOW = {"start": dt.date(2026, 10, 1), "end": dt.date(2026, 12, 1)}
FAKE_KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDfakeFAKEfake0123"
FAKE_KEY_ID = "f00dfeedbeefcafe0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setattr(sync_gcp, "RETRY_INITIAL", 0.01)
    monkeypatch.setattr(sync_gcp, "RETRY_MAXIMUM", 0.02)
    monkeypatch.setattr(sync_gcp, "RETRY_SECONDS", 0.5)


@pytest.fixture
def google(settings):
    fake = GoogleFake()
    url = fake.start()
    settings.CAPGOV_GCP_API_ENDPOINT = url
    settings.CAPGOV_BIGQUERY_API_ENDPOINT = url
    yield fake
    fake.stop()


@pytest.fixture
def account(db):
    return CloudAccount.objects.create(
        name="Acme GCP",
        provider="gcp",
        account_id=BILLING_ID,
        gcp_project="acme-billing",
        bq_table=TABLE,
        cost_source="bigquery",
    )


def run_sync(account, kind, org, capture, **window):
    """Queue a run as an admin would and let the (eager) task execute it."""
    with capture(execute=True):
        run = sync.sync_run_create(account=account, kind=kind, by=org.admin, **window)
    run.refresh_from_db()
    return run


def execute(account, kind, **window) -> SyncRun:
    """Execute a run directly, without the task (for the throttled paths)."""
    run = SyncRun.objects.create(
        account=account,
        kind=kind,
        period_start=window.get("start"),
        period_end=window.get("end"),
    )
    try:
        sync.sync_run_execute(run=run)
    finally:
        run.refresh_from_db()
    return run


# --- costs: recorded BigQuery rows ----------------------------------------------------------


def bq_row(
    day: str,
    cost: str,
    *,
    credits: tuple[tuple[str, str, str], ...] = (),
    labels: dict[str, str] | None = None,
    project_labels: dict[str, str] | None = None,
    project: str | None = "ml-prod",
    service: tuple[str, str] | None = (COMPUTE, "Compute Engine"),
    sku: tuple[str, str] | None = ("L4EU-0001", "Nvidia L4 GPU running in Netherlands"),
    region: str | None = "europe-west4",
    cost_type: str = "regular",
    usage: tuple[str, str] | None = ("86400", "3600"),
) -> dict:
    """One row as the daily query returns it (labels as TO_JSON_STRING text)."""

    def as_json(pairs: dict[str, str] | None) -> str:
        return json.dumps([{"key": k, "value": v} for k, v in sorted((pairs or {}).items())])

    return {
        "usage_date": day,
        "project_id": project,
        "project_name": "ML production" if project else None,
        "project_labels": as_json(project_labels),
        "service_id": service[0] if service else None,
        "service_description": service[1] if service else None,
        "sku_id": sku[0] if sku else None,
        "sku_description": sku[1] if sku else None,
        "region": region,
        "location": region,
        "labels": as_json(labels),
        "cost_type": cost_type,
        "currency": "EUR",
        "usage_unit": "seconds" if usage else None,
        "pricing_unit": "hour" if usage else None,
        "cost": Decimal(cost),
        "cost_at_list": Decimal(cost),
        "usage_amount": Decimal(usage[0]) if usage else None,
        "usage_amount_in_pricing_units": Decimal(usage[1]) if usage else None,
        "export_lines": 24,
        "credits": [{"type": t, "name": n, "amount": Decimal(a)} for t, n, a in credits],
    }


NOVEMBER = [
    bq_row(
        "2026-11-02",
        "13.441000000",
        labels={"team": "research"},
        credits=(("SUSTAINED_USAGE_DISCOUNT", "Sustained usage discount", "-2.688200000"),),
    ),
    bq_row("2026-11-02", "6.720500000", labels={"team": "ads"}),
    bq_row(
        "2026-11-03",
        "0.000001250",
        project_labels={"env": "prod"},
        service=("24E6-581D-38E5", "BigQuery"),
        sku=("5E1B-49E5-A33C", "Analysis"),
        region="EU",
        usage=("1048576", "0.000000954"),
        credits=(("FREE_TIER", "Free tier", "-0.000001250"),),
    ),
    # Late usage: October's last day, invoiced in November.
    bq_row(
        "2026-10-31",
        "0.560040000",
        labels={"team": "research"},
        credits=(
            ("COMMITTED_USAGE_DISCOUNT", "Committed use discount", "-0.060040000"),
            ("PROMOTION", "Research credits", "-0.500000000"),
        ),
    ),
    bq_row(
        "2026-11-30",
        "1.230000000",
        cost_type="tax",
        project=None,
        service=None,
        sku=None,
        region=None,
        usage=None,
    ),
]
OCTOBER = [
    bq_row(
        "2026-10-05",
        "10.000000001",
        labels={"team": "research"},
        credits=(("SUSTAINED_USAGE_DISCOUNT", "Sustained usage discount", "-1.000000001"),),
    ),
    bq_row(
        "2026-10-06",
        "0.123456789",
        labels={"team": "ads"},
        service=("95FF-2EF5-5EA1", "Cloud Storage"),
        sku=("E5F0-6A5D-7BAD", "Standard Storage Netherlands"),
    ),
]


@pytest.fixture
def bigquery(google):
    google.bigquery_fields = schema_fields(
        gcp_bigquery.RESULT_SCHEMA, credits=gcp_bigquery.CREDIT_SCHEMA
    )
    google.query_results = {"202611": NOVEMBER, "202610": OCTOBER}
    google.bigquery_page_size = 2  # the client fetches the rest with jobs.getQueryResults
    return google


def totals() -> dict[tuple[dt.date, str], Decimal]:
    """Stored billed cost per (billing period, charge category)."""
    rows = (
        CostRow.objects.filter(source="gcp-export", billing_account_id=BILLING_ID)
        .values("billing_period", "charge_category")
        .annotate(total=Sum("billed_cost"), n=Count("id"))
    )
    return {(r["billing_period"], r["charge_category"]): r["total"] for r in rows}


EXPECTED = {
    (OCT, "Usage"): Decimal("10.123456790"),
    (OCT, "Credit"): Decimal("-1.000000001"),
    (NOV, "Usage"): Decimal("20.72154125"),
    (NOV, "Tax"): Decimal("1.23"),
    (NOV, "Credit"): Decimal("-3.24824125"),
}


def test_costs_sync_imports_each_invoice_month_with_its_credits(
    account, bigquery, org, django_capture_on_commit_callbacks
):
    run = run_sync(account, "costs", org, django_capture_on_commit_callbacks, **WINDOW)

    assert run.status == "succeeded", run.error
    assert totals() == EXPECTED
    assert run.rows == CostRow.objects.count() == 11
    months = run.detail["months"]
    assert Decimal(months["2026-11"]["billed_totals"]["EUR"]) == Decimal("18.7033")
    assert Decimal(months["2026-10"]["billed_totals"]["EUR"]) == Decimal("9.123456789")
    assert run.detail["months"]["2026-11"]["query_rows"] == 5
    assert run.detail["warnings"] == []

    research = {"team": "research"}
    late = CostRow.objects.get(usage_date=dt.date(2026, 10, 31), charge_category="Usage")
    assert late.billing_period == NOV  # the invoice month decides the period
    # Two credits of the late line: one Credit row, with the line's labels.
    credit = CostRow.objects.get(usage_date=dt.date(2026, 10, 31), charge_category="Credit")
    assert (credit.billed_cost, credit.tag_set.tags) == (Decimal("-0.56004"), research)
    assert (late.quantity, late.pricing_unit, late.region) == (
        Decimal(3600),
        "hour",
        "europe-west4",
    )
    analysis = CostRow.objects.get(sku_id="5E1B-49E5-A33C", charge_category="Usage")
    assert analysis.tag_set.tags == {"env": "prod"}  # project labels when the resource has none
    assert analysis.service_name == "BigQuery"
    assert analysis.sub_account_id == "ml-prod"
    tax = CostRow.objects.get(charge_category="Tax")
    assert (tax.sub_account_id, tax.tag_set.tags) == ("", {})


def test_costs_sync_sends_one_parameterised_query_per_month(
    account, bigquery, org, django_capture_on_commit_callbacks
):
    account.cost_allocation_tags = ["team"]
    account.save()
    run = run_sync(account, "costs", org, django_capture_on_commit_callbacks, **WINDOW)
    assert run.status == "succeeded", run.error

    posts = bigquery.calls("POST", r"/bigquery/v2/projects/acme-billing/queries$")
    assert len(posts) == 2
    params = [
        {
            p["name"]: p["parameterValue"].get("value")
            or [v["value"] for v in p["parameterValue"].get("arrayValues", [])]
            for p in post.body["queryParameters"]
        }
        for post in posts
    ]
    assert params == [
        {"invoice_month": month, "billing_account_id": BILLING_ID, "label_keys": ["team"]}
        for month in ("202610", "202611")
    ]
    query = posts[0].body["query"]
    assert f"FROM `{TABLE}`" in query
    assert "invoice.month = @invoice_month" in query
    assert "UNNEST(all_credits)" in query
    assert "202610" not in query
    assert BILLING_ID not in query
    assert posts[0].body["useLegacySql"] is False
    # Two rows per page: the rest came through jobs.getQueryResults.
    assert bigquery.calls("GET", r"/queries/job_\d+$")


def test_costs_sync_rerun_replaces_the_months(
    account, bigquery, org, django_capture_on_commit_callbacks
):
    first = run_sync(account, "costs", org, django_capture_on_commit_callbacks, **WINDOW)
    count = CostRow.objects.count()
    second = run_sync(account, "costs", org, django_capture_on_commit_callbacks, **WINDOW)

    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert totals() == EXPECTED
    assert CostRow.objects.count() == count
    old = BillingImport.objects.get(pk=first.detail["months"]["2026-11"]["billing_import"])
    assert old.superseded_by_id == second.detail["months"]["2026-11"]["billing_import"]


def test_costs_sync_replaces_a_file_import_of_the_same_month(
    account, bigquery, org, tmp_path, django_capture_on_commit_callbacks
):
    bigquery.query_results["202611"] = NOVEMBER[:2]
    path = gcp_bigquery.write_export(
        NOVEMBER, path=tmp_path / "nov.jsonl", invoice_month="202611", billing_account_id=BILLING_ID
    ).path
    assert services.billing_import(path=path, fmt="gcp-export").status == "succeeded"

    run = run_sync(account, "costs", org, django_capture_on_commit_callbacks, **WINDOW)
    assert run.status == "succeeded", run.error
    assert totals()[(NOV, "Usage")] == Decimal("20.1615")
    assert (NOV, "Tax") not in totals()


def test_costs_sync_throttled_first_query_is_retried_by_the_client(
    account, bigquery, org, django_capture_on_commit_callbacks
):
    bigquery.fail(
        "POST", r"/queries$", 429, message="Rate limit exceeded", reason="rateLimitExceeded"
    )
    run = run_sync(account, "costs", org, django_capture_on_commit_callbacks, **WINDOW)

    assert run.status == "succeeded", run.error
    assert len(bigquery.calls("POST", r"/queries$")) == 3  # October twice, then November
    assert totals() == EXPECTED


def test_costs_sync_still_throttled_requeues_then_recovers(account, bigquery, monkeypatch):
    monkeypatch.setattr(sync_gcp, "RETRY_SECONDS", 0.2)
    bigquery.fail(
        "POST", r"/queries$", 503, message="Backend unavailable", reason="backendError", times=1000
    )
    with pytest.raises(sync.SyncRetryableError):
        execute(account, "costs", **WINDOW)
    run = SyncRun.objects.get()
    assert run.status == "queued"
    assert run.error.startswith("Will retry: Google Cloud still refused after retries")
    assert "503 Backend unavailable" in run.error
    assert CostRow.objects.count() == 0

    bigquery.failures.clear()
    sync.sync_run_execute(run=run)
    run.refresh_from_db()
    assert (run.status, run.error) == ("succeeded", "")
    assert totals() == EXPECTED


def test_costs_sync_refused_marks_the_run_failed_and_keeps_earlier_rows(
    account, bigquery, org, caplog, django_capture_on_commit_callbacks
):
    run_sync(account, "costs", org, django_capture_on_commit_callbacks, **WINDOW)
    before = totals()
    bigquery.query_results["202610"] = OCTOBER[:1]
    # November's query is refused after October's succeeded: nothing is imported.
    bigquery.fail(
        "POST",
        r"/queries$",
        403,
        message="Access Denied: Table acme-billing:billing_export.gcp_billing_export_v1: "
        "User does not have permission (Authorization: Bearer ya29.a0AfB_fakeTOKEN123)",
        reason="accessDenied",
        after=1,
    )
    with caplog.at_level(logging.DEBUG):
        run = run_sync(account, "costs", org, django_capture_on_commit_callbacks, **WINDOW)

    assert run.status == "failed"
    assert "Permission denied while querying" in run.error
    assert "for invoice month 202611 (403 Access Denied" in run.error
    assert "BigQuery Data Viewer" in run.error
    assert "ya29" not in run.error
    assert "ya29" not in caplog.text
    assert totals() == before


def test_costs_sync_refuses_a_table_name_that_is_not_one(
    account, bigquery, org, django_capture_on_commit_callbacks
):
    account.bq_table = "acme.billing.export` WHERE 1=1; --"
    account.save()
    run = run_sync(account, "costs", org, django_capture_on_commit_callbacks, **WINDOW)
    assert run.status == "failed"
    assert "is not a BigQuery table name" in run.error
    assert bigquery.requests == []


def test_costs_sync_needs_a_billing_account_id_and_a_project(
    account, bigquery, org, django_capture_on_commit_callbacks
):
    account.gcp_project = ""
    account.save()
    run = run_sync(account, "costs", org, django_capture_on_commit_callbacks, **WINDOW)
    assert run.status == "failed"
    assert "names no GCP project" in run.error
    assert "acme-billing" in run.error
    account.account_id = "123456789012"
    account.save()
    run = run_sync(account, "billing_accounts", org, django_capture_on_commit_callbacks)
    assert "is not a GCP billing account id" in run.error


def test_costs_sync_keeps_a_month_the_export_has_no_rows_for(
    account, bigquery, org, django_capture_on_commit_callbacks
):
    run_sync(account, "costs", org, django_capture_on_commit_callbacks, **WINDOW)
    del bigquery.query_results["202610"]
    run = run_sync(account, "costs", org, django_capture_on_commit_callbacks, **WINDOW)
    assert run.status == "succeeded", run.error
    assert run.detail["months"]["2026-10"] == {"query_rows": 0}
    assert "no rows for invoice month 2026-10" in run.detail["warnings"][0]
    assert totals() == EXPECTED


def _aggregate_like_bigquery(path: Path) -> dict[str, list[dict]]:
    """What the daily query returns for a downloaded export: the recorded rows."""
    groups: dict[tuple, dict] = {}
    for line in csv.DictReader(path.open(encoding="utf-8")):
        labels = json.dumps(
            sorted(ast.literal_eval(line["labels"]), key=lambda x: (x["key"], x["value"]))
        )
        key = (
            line["invoice.month"],
            line["usage_start_time"][:10],
            line["project.id"],
            line["service.id"],
            line["sku.id"],
            line["location.region"] or None,
            line["location.location"] or None,
            labels,
            line["cost_type"],
            line["currency"],
        )
        group = groups.setdefault(
            key,
            {
                "usage_date": key[1],
                "project_id": key[2],
                "project_name": line["project.name"],
                "project_labels": "[]",
                "service_id": key[3],
                "service_description": line["service.description"],
                "sku_id": key[4],
                "sku_description": line["sku.description"],
                "region": key[5],
                "location": key[6],
                "labels": labels,
                "cost_type": key[8],
                "currency": key[9],
                "usage_unit": line["usage.unit"],
                "pricing_unit": line["usage.pricing_unit"],
                "cost": Decimal(0),
                "export_lines": 0,
                "_credits": defaultdict(Decimal),
            },
        )
        nine = Decimal("0.000000001")  # CAST(FLOAT64 AS NUMERIC)
        group["cost"] += Decimal(line["cost"]).quantize(nine)
        group["export_lines"] += 1
        for credit in ast.literal_eval(line["credits"]):
            amount = Decimal(repr(credit["amount"])).quantize(nine)
            group["_credits"][(credit["type"], credit["name"])] += amount
    out: dict[str, list[dict]] = defaultdict(list)
    for key, group in groups.items():
        credits = group.pop("_credits")
        group["credits"] = [
            {"type": t, "name": n, "amount": a} for (t, n), a in sorted(credits.items())
        ]
        out[key[0]].append(group)
    return out


def test_costs_sync_matches_the_file_import_of_a_real_export(
    billing_samples, google, db, tmp_path, django_capture_on_commit_callbacks, org
):
    sample = billing_samples / "gcp" / "gcp_bq_export_standard_sample_koku.csv"
    direct = services.billing_import(path=sample, fmt="gcp-export")
    assert direct.status == "succeeded", direct.error
    account_id = direct.billing_accounts[0]

    def by_category():
        rows = CostRow.objects.values("billing_period", "charge_category", "usage_date")
        return {
            (r["billing_period"], r["charge_category"], r["usage_date"]): r["total"]
            for r in rows.annotate(total=Sum("billed_cost"))
        }

    expected, expected_rows = by_category(), CostRow.objects.count()
    google.bigquery_fields = schema_fields(
        gcp_bigquery.RESULT_SCHEMA, credits=gcp_bigquery.CREDIT_SCHEMA
    )
    google.query_results = _aggregate_like_bigquery(sample)
    account = CloudAccount.objects.create(
        name="koku", provider="gcp", account_id=account_id, gcp_project="p", bq_table="p.d.t"
    )
    run = run_sync(
        account,
        "costs",
        org,
        django_capture_on_commit_callbacks,
        start=dt.date(2020, 11, 1),
        end=dt.date(2020, 12, 1),
    )
    assert run.status == "succeeded", run.error
    assert run.detail["months"]["2020-11"]["export_lines"] == 25
    assert run.detail["months"]["2020-11"]["billed_totals"] == direct.billed_totals
    assert by_category() == expected
    assert CostRow.objects.count() == expected_rows


# --- prices: the Cloud Billing catalog ------------------------------------------------------


def sku(
    sku_id: str,
    description: str,
    regions: list[str],
    *prices: tuple[int, int],
    usage_type: str = "OnDemand",
    unit: str = "h",
    effective: str = "2026-12-03T06:10:42.123456Z",
) -> dict:
    """A SKU in the catalog's JSON; ``prices`` are the tiers' (units, nanos)."""
    return {
        "name": f"services/{COMPUTE}/skus/{sku_id}",
        "skuId": sku_id,
        "description": description,
        "category": {
            "serviceDisplayName": "Compute Engine",
            "resourceFamily": "Compute",
            "resourceGroup": "GPU" if "GPU" in description else "CPU",
            "usageType": usage_type,
        },
        "serviceRegions": regions,
        "pricingInfo": [
            {
                "summary": "",
                "pricingExpression": {
                    "usageUnit": unit,
                    "usageUnitDescription": "hour",
                    "baseUnit": "s",
                    "baseUnitConversionFactor": 3600,
                    "displayQuantity": 1,
                    "tieredRates": [
                        {
                            "startUsageAmount": 720 * i,
                            "unitPrice": {
                                "currencyCode": "USD",
                                "units": str(units),
                                "nanos": nanos,
                            },
                        }
                        for i, (units, nanos) in enumerate(prices)
                    ],
                },
                "aggregationInfo": {"aggregationLevel": "ACCOUNT", "aggregationInterval": "DAILY"},
                "currencyConversionRate": 1,
                "effectiveTime": effective,
            }
        ],
        "serviceProviderName": "Google",
    }


def catalog_skus(effective: str = "2026-12-03T06:10:42.123456Z", l4_nanos: int = 616044000):
    nl = ["europe-west4"]
    return [
        sku(
            "N1C0-0001",
            "N1 Predefined Instance Core running in Americas",
            ["us-central1"],
            (0, 31611000),
        ),
        sku(
            "G2C0-0001",
            "G2 Instance Core running in Netherlands",
            nl,
            (0, 27484000),
            effective=effective,
        ),
        sku(
            "G2C0-SPOT",
            "Spot Preemptible G2 Instance Core running in Netherlands",
            nl,
            (0, 8200000),
            usage_type="Preemptible",
        ),
        sku(
            "G2R0-0001",
            "G2 Instance Ram running in Netherlands",
            nl,
            (0, 3220000),
            unit="GiBy.h",
            effective=effective,
        ),
        sku(
            "L4EM-0001",
            "Nvidia L4 GPU running in EMEA",
            ["europe-west1", "europe-west4", "europe-west9"],
            (0, 700000000),
        ),
        sku(
            "L4NL-0001",
            "Nvidia L4 GPU running in Netherlands",
            nl,
            (0, l4_nanos),
            effective=effective,
        ),
        sku(
            "L4NL-CUD1",
            "Commitment v1: Nvidia L4 GPU in Netherlands for 1 Year",
            nl,
            (0, 388000000),
            usage_type="Commit1Yr",
        ),
        sku(
            "L4NL-SPOT",
            "Nvidia L4 GPU attached to Spot Preemptible VMs running in Netherlands",
            nl,
            (0, 200000000),
            usage_type="Preemptible",
        ),
        sku(
            "H100-0001",
            "Nvidia H100 80GB GPU running in Americas",
            ["us-central1", "us-east4"],
            (11, 500000000),
            (11, 60604000),
            effective=effective,
        ),
    ]


@pytest.fixture
def catalog(google):
    google.services = [
        {
            "name": "services/24E6-581D-38E5",
            "serviceId": "24E6-581D-38E5",
            "displayName": "BigQuery",
        },
        {
            "name": "services/95FF-2EF5-5EA1",
            "serviceId": "95FF-2EF5-5EA1",
            "displayName": "Cloud Storage",
        },
        {"name": f"services/{COMPUTE}", "serviceId": COMPUTE, "displayName": "Compute Engine"},
    ]
    google.skus[COMPUTE] = catalog_skus()
    return google


SINCE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def hardware(db):
    l4 = HardwareProfile.objects.create(
        name="1 x L4 24GB", accelerator="NVIDIA L4", accelerator_count=1
    )
    h100 = HardwareProfile.objects.create(
        name="8 x H100 80GB", accelerator="NVIDIA H100 80GB", accelerator_count=8
    )
    t4 = HardwareProfile.objects.create(name="1 x T4", accelerator="NVIDIA T4", accelerator_count=1)
    gcp = {"provider": "gcp", "effective_from": SINCE}
    HardwarePrice.objects.create(
        hardware_profile=l4,
        instance_type="g2-standard-8",
        region="europe-west4",
        hourly_price=Decimal("0.85"),
        **gcp,
    )
    HardwarePrice.objects.create(
        hardware_profile=h100,
        instance_type="Nvidia H100 80GB GPU running in Americas",
        region="us-central1",
        hourly_price=Decimal("80"),
        **gcp,
    )
    HardwarePrice.objects.create(
        hardware_profile=t4,
        instance_type="n1-standard-8",
        region="us-central1",
        hourly_price=Decimal("0.73"),
        **gcp,
    )
    HardwarePrice.objects.create(
        hardware_profile=l4,
        provider="aws",
        instance_type="g6.xlarge",
        region="us-east-1",
        hourly_price=Decimal("0.8048"),
        effective_from=SINCE,
    )
    return {"l4": l4, "h100": h100, "t4": t4}


EFFECTIVE = dt.datetime(2026, 12, 3, 6, 10, 42, 123456, tzinfo=dt.UTC)


def current(profile, provider):
    """The price in force once the catalog's dates have passed, whatever today is."""
    return hardware_price_current(
        hardware_profile=profile, provider=provider, at=dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    )


def test_prices_sync_records_exact_on_demand_prices(
    account, catalog, hardware, org, django_capture_on_commit_callbacks
):
    run = run_sync(account, "prices", org, django_capture_on_commit_callbacks)

    assert run.status == "succeeded", run.error
    assert run.rows == 2
    l4 = current(hardware["l4"], "gcp")
    # 8 x G2 core 0.027484 + 32 GiB x 0.00322 + 1 x L4 (Netherlands, not EMEA) 0.616044
    assert l4.hourly_price == Decimal("0.938956")
    assert (l4.effective_from, l4.source, l4.currency) == (EFFECTIVE, "gcp-catalog", "USD")
    assert (l4.instance_type, l4.region) == ("g2-standard-8", "europe-west4")
    h100 = current(hardware["h100"], "gcp")
    assert h100.hourly_price == Decimal("88.484832")  # 8 GPUs x the last tier, 11.060604
    aws = current(hardware["l4"], "aws")
    assert aws.hourly_price == Decimal("0.8048")
    assert HardwarePrice.objects.count() == 6

    [l4_detail, h100_detail] = sorted(run.detail["prices"], key=lambda p: p["hardware_profile"])
    assert [(s["sku_id"], s["quantity"]) for s in l4_detail["skus"]] == [
        ("G2C0-0001", "8"),
        ("G2R0-0001", "32"),
        ("L4NL-0001", "1"),
    ]
    assert (l4_detail["status"], l4_detail["previous"]) == ("recorded", "0.8500000000")
    assert h100_detail["skus"][0]["unit_price"] == "11.060604"
    assert run.detail["service"] == f"services/{COMPUTE}"
    assert run.detail["skus_read"] == 9
    [warning] = run.detail["warnings"]
    assert warning.startswith("1 x T4 (n1-standard-8): not a machine type this sync prices")
    # The SKU list came in pages of two.
    assert len(catalog.calls("GET", rf"/v1/services/{COMPUTE}/skus$")) == 5
    assert len(catalog.calls("GET", r"/v1/services$")) == 2


def test_prices_sync_rerun_records_only_changes(
    account, catalog, hardware, org, django_capture_on_commit_callbacks
):
    run_sync(account, "prices", org, django_capture_on_commit_callbacks)
    count = HardwarePrice.objects.count()
    # The catalog dates current prices "within the last hours": a new time, same price.
    catalog.skus[COMPUTE] = catalog_skus(effective="2026-12-10T05:00:00Z")
    again = run_sync(account, "prices", org, django_capture_on_commit_callbacks)
    assert (again.status, again.rows) == ("succeeded", 0)
    assert {p["status"] for p in again.detail["prices"]} == {"unchanged"}
    assert HardwarePrice.objects.count() == count

    catalog.skus[COMPUTE] = catalog_skus(effective="2026-12-17T05:00:00Z", l4_nanos=590000000)
    changed = run_sync(account, "prices", org, django_capture_on_commit_callbacks)
    assert changed.rows == 1
    l4 = current(hardware["l4"], "gcp")
    assert l4.hourly_price == Decimal("0.912912")
    assert l4.effective_from == dt.datetime(2026, 12, 17, 5, tzinfo=dt.UTC)


def test_prices_sync_throttled_page_is_retried(
    account, catalog, hardware, org, django_capture_on_commit_callbacks
):
    catalog.fail("GET", r"/skus$", 429, message="Quota exceeded", after=1)
    run = run_sync(account, "prices", org, django_capture_on_commit_callbacks)
    assert run.status == "succeeded", run.error
    pages = [r.query.get("pageToken") for r in catalog.calls("GET", r"/skus$")]
    assert pages == [None, ["2"], ["2"], ["4"], ["6"], ["8"]]


def test_prices_sync_refused_keeps_the_prices(
    account, catalog, hardware, org, django_capture_on_commit_callbacks
):
    catalog.fail("GET", r"/skus$", 403, message="Cloud Billing API has not been used", after=2)
    run = run_sync(account, "prices", org, django_capture_on_commit_callbacks)
    assert run.status == "failed"
    assert "Permission denied while reading the Cloud Billing catalog (403 Cloud Billing" in (
        run.error
    )
    assert "Enable the Cloud Billing API" in run.error
    assert HardwarePrice.objects.filter(source="gcp-catalog").count() == 0


def test_prices_sync_without_gcp_prices_says_what_to_add(
    account, catalog, org, django_capture_on_commit_callbacks
):
    run = run_sync(account, "prices", org, django_capture_on_commit_callbacks)
    assert (run.status, run.rows) == ("succeeded", 0)
    assert "No Google Cloud hardware price to refresh" in run.detail["warnings"][0]
    assert catalog.requests == []


@pytest.mark.parametrize(
    ("instance_type", "count", "expected"),
    [
        (
            "g2-standard-24",
            2,
            [("G2 Instance Core", 24), ("G2 Instance Ram", 96), ("Nvidia L4 GPU", 2)],
        ),
        (
            "A3-HIGHGPU-8G",
            8,
            [("A3 Instance Core", 208), ("A3 Instance Ram", 1872), ("Nvidia H100 80GB GPU", 8)],
        ),
        ("Nvidia L4 GPU running in Americas", 1, [("Nvidia L4 GPU", 1)]),
        ("Nvidia Tesla A100 GPU", 0, [("Nvidia Tesla A100 GPU", 1)]),
        ("n1-standard-8", 1, None),
        ("", 1, None),
    ],
)
def test_price_components(instance_type, count, expected):
    components = sync_gcp.price_components(instance_type, count)
    got = None if components is None else [(c.sku_name, c.quantity) for c in components]
    assert got == expected


def test_sku_names_and_money():
    assert sync_gcp.sku_name("Nvidia L4 GPU running in Americas") == "nvidia l4 gpu"
    assert sync_gcp.sku_name("Spot Preemptible Nvidia L4 GPU running in Iowa") == (
        "spot preemptible nvidia l4 gpu"
    )
    assert sync_gcp.sku_name("Commitment v1: Nvidia L4 GPU in Iowa for 1 Year") is None
    assert sync_gcp.money_decimal(0, 616044000) == Decimal("0.616044")
    assert sync_gcp.money_decimal(-1, -500000000) == Decimal("-1.5")
    assert sync_gcp.money_decimal(2, 1) == Decimal("2.000000001")


# --- billing accounts -----------------------------------------------------------------------


@pytest.fixture
def billing(google):
    google.billing_accounts[BILLING_ID] = {
        "name": f"billingAccounts/{BILLING_ID}",
        "open": True,
        "displayName": "Acme main billing",
        "masterBillingAccount": "",
        "parent": "organizations/123456789",
        "currencyCode": "EUR",
    }
    google.project_billing[BILLING_ID] = [
        {
            "name": f"projects/{p}/billingInfo",
            "projectId": p,
            "billingAccountName": f"billingAccounts/{BILLING_ID}",
            "billingEnabled": p != "old-sandbox",
        }
        for p in ("ml-prod", "old-sandbox", "ads-ranking")
    ]
    return google


def test_billing_accounts_sync_keeps_the_account_and_its_projects(
    account, billing, org, django_capture_on_commit_callbacks
):
    run = run_sync(account, "billing_accounts", org, django_capture_on_commit_callbacks)

    assert run.status == "succeeded", run.error
    assert run.rows == 3
    assert run.detail == {
        "billing_account": {
            "name": f"billingAccounts/{BILLING_ID}",
            "display_name": "Acme main billing",
            "open": True,
            "currency": "EUR",
            "master_billing_account": None,
            "parent": "organizations/123456789",
        },
        "projects": [
            {"project_id": "ads-ranking", "billing_enabled": True},
            {"project_id": "ml-prod", "billing_enabled": True},
            {"project_id": "old-sandbox", "billing_enabled": False},
        ],
        "projects_billing_disabled": ["old-sandbox"],
        "warnings": [
            "Project old-sandbox has billing disabled: its paid services are stopped; link it "
            "to an open billing account or shut it down."
        ],
    }
    assert len(billing.calls("GET", r"/projects$")) == 2  # two pages


def test_billing_accounts_sync_warns_about_a_closed_account(
    account, billing, org, django_capture_on_commit_callbacks
):
    billing.billing_accounts[BILLING_ID]["open"] = False
    run = run_sync(account, "billing_accounts", org, django_capture_on_commit_callbacks)
    assert run.detail["billing_account"]["open"] is False
    assert run.detail["warnings"][0].startswith(f"Billing account {BILLING_ID} is closed")


def test_billing_accounts_sync_retries_throttling_and_names_refusals(
    account, billing, org, django_capture_on_commit_callbacks
):
    billing.fail("GET", rf"/billingAccounts/{BILLING_ID}$", 429)
    run = run_sync(account, "billing_accounts", org, django_capture_on_commit_callbacks)
    assert run.status == "succeeded", run.error
    assert len(billing.calls("GET", rf"/billingAccounts/{BILLING_ID}$")) == 2

    billing.fail("GET", r"/projects$", 403, message="The caller does not have permission")
    run = run_sync(account, "billing_accounts", org, django_capture_on_commit_callbacks)
    assert run.status == "failed"
    assert run.error == (
        f"Permission denied while reading billing account {BILLING_ID} (403 The caller does "
        f"not have permission). Give the service account Billing Account Viewer on billing "
        f"account {BILLING_ID}."
    )
    assert run.detail == {}

    billing.fail("GET", rf"/billingAccounts/{BILLING_ID}$", 401, message="Invalid credentials")
    run = run_sync(account, "billing_accounts", org, django_capture_on_commit_callbacks)
    assert run.status == "failed"
    assert "did not accept the credentials while reading billing account" in run.error

    del billing.billing_accounts[BILLING_ID]
    run = run_sync(account, "billing_accounts", org, django_capture_on_commit_callbacks)
    assert "Not found while reading billing account" in run.error
    assert f"Google has no billing account {BILLING_ID}" in run.error


# --- credentials ----------------------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path) -> Path:
    """A service-account key file whose private key is not a key: loading it fails locally."""
    path = tmp_path / "capgov-sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "acme-billing",
                "private_key_id": FAKE_KEY_ID,
                "private_key": f"-----BEGIN PRIVATE KEY-----\n{FAKE_KEY_BODY}\n"
                "-----END PRIVATE KEY-----\n",
                "client_email": "capgov@acme-billing.iam.gserviceaccount.com",
                "client_id": "100000000000000000001",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("kind", ["costs", "prices", "billing_accounts"])
@pytest.mark.parametrize("by_env", [False, True])
def test_a_bad_key_file_fails_readably_and_no_key_text_is_kept(
    kind, by_env, account, hardware, key_file, settings, monkeypatch, caplog
):
    # The real credential path, as in production: no test endpoint, anonymous or otherwise.
    settings.CAPGOV_GCP_API_ENDPOINT = ""
    settings.CAPGOV_BIGQUERY_API_ENDPOINT = ""
    if by_env:
        monkeypatch.setenv("CAPGOV_TEST_GCP_KEY", str(key_file))
        account.gcp_credentials = "env:CAPGOV_TEST_GCP_KEY"
    else:
        account.gcp_credentials = str(key_file)
    account.save()
    with caplog.at_level(logging.DEBUG):
        run = execute(account, kind, **(WINDOW if kind == "costs" else {}))

    assert run.status == "failed"
    assert run.error.startswith("Cannot load the GCP credentials of Acme GCP from ")
    assert ("$CAPGOV_TEST_GCP_KEY" if by_env else str(key_file)) in run.error
    assert "service-account key file" in run.error
    stored = run.error + json.dumps(run.detail) + caplog.text
    stored += json.dumps(list(CloudAccount.objects.values()), default=str)
    for secret in (FAKE_KEY_BODY, FAKE_KEY_ID, "BEGIN PRIVATE KEY"):
        assert secret not in stored


def test_a_missing_key_variable_is_named(account, settings, bigquery):
    settings.CAPGOV_GCP_API_ENDPOINT = ""
    settings.CAPGOV_BIGQUERY_API_ENDPOINT = ""
    account.gcp_credentials = "env:CAPGOV_TEST_NO_SUCH_KEY"
    account.save()
    run = execute(account, "costs", **WINDOW)
    assert run.status == "failed"
    assert "The environment variable CAPGOV_TEST_NO_SUCH_KEY" in run.error
    assert "is not set" in run.error


# --- the pure BigQuery module ---------------------------------------------------------------


def test_invoice_months_cover_the_window():
    months = gcp_bigquery.invoice_months
    assert months(dt.date(2026, 11, 1), dt.date(2027, 1, 4)) == ["202611", "202612", "202701"]
    assert months(dt.date(2026, 11, 1), dt.date(2026, 12, 1)) == ["202611"]
    assert months(dt.date(2026, 11, 5), dt.date(2026, 11, 5)) == []


@pytest.mark.parametrize(
    "name",
    ["a.b", "a.b.c.d", "a..c", "a.b.c`", "a.b.c d", "a.b.c;DROP", "", "a.b.c\n"],
)
def test_table_reference_refuses_what_is_not_a_table(name):
    if name == "a.b.c\n":  # surrounding whitespace is trimmed, not refused
        assert gcp_bigquery.table_reference(name) == "`a.b.c`"
        return
    with pytest.raises(ValueError, match="is not a BigQuery table name"):
        gcp_bigquery.table_reference(name)


def test_export_line_keeps_amounts_exact_and_drops_empty_credits():
    row = bq_row(
        "2026-11-02",
        "1E-9",
        labels={"team": "research"},
        credits=(("PROMOTION", "p", "-0E-9"), ("FREE_TIER", "f", "-0.000000001")),
    )
    line = gcp_bigquery.export_line(row, invoice_month="202611", billing_account_id=BILLING_ID)
    assert line["cost"] == "0.000000001"
    assert line["credits"] == [{"type": "FREE_TIER", "name": "f", "amount": "-0.000000001"}]
    assert line["labels"] == [{"key": "team", "value": "research"}]
    assert line["usage_start_time"] == "2026-11-02 00:00:00 UTC"
    assert line["usage_end_time"] == "2026-11-03 00:00:00 UTC"
    assert line["invoice"] == {"month": "202611"}
    assert line["usage"]["amount_in_pricing_units"] == "3600"
