"""Benchmark: 50 signed-in users on the production stack over ten million cost rows.

Run from the repository root (PostgreSQL at 127.0.0.1:5432 by default)::

    .venv/bin/python bench/load.py [--rows 10000000] [--users 50] [--duration 60]
        [--warmup 20] [--workers 4] [--think 0.5:2.5] [--rebuild]

1. **Data.** Builds ``capgov_load`` (``LOAD_DATABASE_URL`` names another) once: 12 full
   months of daily cost rows for five billing accounts on three clouds (tags the demo's
   allocation rules map, the untagged and messy ones too), streamed in with COPY; then the
   demo organisation (``manage.py seed_demo``: people, units, rules, budgets, registry,
   approvals, incidents and two more months of billing), and every earlier month's statements
   published and closed by finance. The database's COMMENT is the build marker: a second run
   with the same size and months reuses the data; ``--rebuild`` starts over.
2. **Server.** ``collectstatic`` and gunicorn (``deploy/gunicorn.conf.py`` when the ops set-up
   is there) with ``DJANGO_ENV=production``, a throwaway secret key, WhiteNoise and the real
   middleware. The load generator plays the TLS proxy: it sends ``X-Forwarded-Proto: https``.
3. **Load.** Locust (headless, in a child process) signs in through the login form as finance
   and as two business-unit owners, then ``--users`` users ask for the dashboard, the
   chargeback page, a published month's statements and one unit's statement, and the API lists
   (cost rows, statements, approval requests, models), each user pausing ``--think`` seconds
   between requests. After ``--warmup`` seconds the figures are reset and ``--duration``
   seconds are measured. Anything but a 200 is an error.

The last line printed is machine-readable::

    users=50 rows=… requests=… rps=… p50_ms=… p95_ms=… p99_ms=… errors=…
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/capgov_load"
BUILD_VERSION = 1  # bump when the generated data changes shape
TARGET_P95_MS = 150.0
SEED = 7
PASSWORD = "capgov-demo"  # noqa: S105 - the demo's printed password
# Who signs in, and how many of the users act as them. Finance sees every unit; the owners
# see their own, so the scoped code paths are measured too.
PERSONAS = (("fiona", 2), ("mark", 1), ("priya", 1))

# --- the generated bill -------------------------------------------------------------------

# provider, billing account id, name, currency, share of the resources (percent)
ACCOUNTS = (
    ("AWS", "210000000001", "bench-aws-payer", "USD", 40),
    ("AWS", "210000000002", "bench-aws-labs", "USD", 15),
    ("Google Cloud", "0BE4C1-7A2B3C-000001", "Bench org (GCP)", "USD", 25),
    ("Microsoft", "91000001", "Bench EA", "USD", 15),
    ("Microsoft", "91000002", "Bench Europe GmbH", "EUR", 5),
)
# Teams as the tags spell them; ml-research matches no rule (it lands in Unallocated).
TEAMS = ("research", "ads", "search", "platform", "ml-research")
REGIONS = {
    "AWS": ("us-east-1", "us-west-2", "eu-west-1"),
    "Google Cloud": ("us-central1", "europe-west4"),
    "Microsoft": ("eastus", "westeurope"),
}
# service, category, SKU, pricing unit, unit price, units a day, resource id template, weight
PRODUCTS = {
    "AWS": (
        ("Amazon Elastic Compute Cloud", "Compute", "BENCH-P5-48XL", "Hours", "98.32", 24,
         "arn:aws:ec2:{region}:{sub}:instance/i-{hex}", 2),
        ("Amazon Elastic Compute Cloud", "Compute", "BENCH-G5-12XL", "Hours", "5.672", 24,
         "arn:aws:ec2:{region}:{sub}:instance/i-{hex}", 8),
        ("Amazon Elastic Compute Cloud", "Compute", "BENCH-M6I-4XL", "Hours", "0.768", 24,
         "arn:aws:ec2:{region}:{sub}:instance/i-{hex}", 25),
        ("Amazon SageMaker", "AI and Machine Learning", "BENCH-ML-G5-2XL", "Hours", "1.515", 24,
         "arn:aws:sagemaker:{region}:{sub}:endpoint/bench-{n}", 10),
        ("Amazon Bedrock", "AI and Machine Learning", "BENCH-SONNET-IN", "1K tokens", "0.003",
         4000, "arn:aws:bedrock:{region}:{sub}:application-inference-profile/bench-{n}", 5),
        ("Amazon Simple Storage Service", "Storage", "BENCH-S3-STD", "GB-Mo", "0.0007", 2000,
         "arn:aws:s3:::bench-{n}", 30),
        ("Amazon Virtual Private Cloud", "Networking", "BENCH-NAT-GB", "GB", "0.045", 300,
         "arn:aws:ec2:{region}:{sub}:natgateway/nat-{hex}", 20),
    ),
    "Google Cloud": (
        ("Compute Engine", "Compute", "BENCH-H100-GPU", "Hours", "11.0612", 24,
         "//compute.googleapis.com/projects/{sub}/zones/{region}-a/instances/bench-{n}", 4),
        ("Compute Engine", "Compute", "BENCH-N2-CORE", "Hours", "0.031611", 384,
         "//compute.googleapis.com/projects/{sub}/zones/{region}-a/instances/bench-{n}", 30),
        ("Vertex AI", "AI and Machine Learning", "BENCH-VERTEX-L4", "Hours", "1.384", 24,
         "//aiplatform.googleapis.com/projects/{sub}/locations/{region}/endpoints/{n}", 16),
        ("Cloud Storage", "Storage", "BENCH-GCS-STD", "GiB-Mo", "0.00066", 3000,
         "//storage.googleapis.com/projects/_/buckets/bench-{n}", 40),
        ("BigQuery", "Analytics", "BENCH-BQ-SCAN", "TiB", "6.25", 2,
         "//bigquery.googleapis.com/projects/{sub}/datasets/bench_{n}", 10),
    ),
    "Microsoft": (
        ("Virtual Machines", "Compute", "BENCH-ND96-H100", "Hours", "98.32", 24,
         "{sub}/resourceGroups/rg-bench/providers/Microsoft.Compute/virtualMachines/vm-{n}", 2),
        ("Azure Machine Learning", "AI and Machine Learning", "BENCH-AML-NC24", "Hours", "3.60",
         24, "{sub}/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/"
         "workspaces/bench/onlineEndpoints/ep-{n}", 18),
        ("Storage", "Storage", "BENCH-BLOB-HOT", "GB-Mo", "0.00061", 2000,
         "{sub}/resourceGroups/rg-bench/providers/Microsoft.Storage/storageAccounts/st{n}", 80),
    ),
}  # fmt: skip
COPY_COLUMNS = (
    "billing_import_id", "source", "provider", "billing_account_id", "billing_account_name",
    "sub_account_id", "sub_account_name", "billing_period", "usage_date", "charge_category",
    "service_name", "service_category", "resource_id", "resource_name", "sku_id", "region",
    "pricing_unit", "tag_set_id", "currency", "billed_cost", "effective_cost", "list_cost",
    "quantity",
)  # fmt: skip
SCALE = 10**10  # amounts are generated as integers of 1e-10, the stored precision


def bench_months(today: dt.date, count: int = 12) -> list[dt.date]:
    """The ``count`` full months before ``today``'s, oldest first."""
    months, cursor = [], today.replace(day=1)
    for _ in range(count):
        cursor = (cursor - dt.timedelta(days=1)).replace(day=1)
        months.append(cursor)
    return months[::-1]


def _sub_accounts(rng: random.Random) -> list[tuple[int, str, str, str]]:
    """(account index, sub-account id, name, team) for every account and team."""
    subs = []
    for index, (provider, *_rest) in enumerate(ACCOUNTS):
        for team in TEAMS:
            for env in ("prod", "dev"):
                name = f"{team}-{env}"
                if provider == "AWS":
                    sub_id = f"{rng.randrange(10**11, 10**12):012d}"
                elif provider == "Google Cloud":
                    sub_id = f"bench-{name}-{index}"
                else:
                    sub_id = f"/subscriptions/{rng.getrandbits(128):032x}"
                subs.append((index, sub_id, name, team))
    return subs


def _tags(rng: random.Random, team: str) -> dict[str, str]:
    """Tags as real bills carry them: mostly clean, some with odd keys or case, some none."""
    roll = rng.random()
    if roll < 0.07:
        return {}
    if roll < 0.12:
        return {"cost-center": rng.choice(("5520", "6630", "9999"))}
    if rng.random() < 0.15:
        team = rng.choice(TEAMS)  # a resource in another team's account
    key = rng.choices(("team", "Team", "user:team", " team"), weights=(70, 12, 12, 6))[0]
    value = team if rng.random() < 0.85 else team.capitalize()
    tags = {key: value, "env": rng.choice(("prod", "prod", "staging", "dev", "canary"))}
    if rng.random() < 0.6:
        tags["project"] = f"p{rng.randrange(8)}"
    return tags


def _resources(rows_total: int, days_total: int) -> tuple[list[dict], dict[str, dict]]:
    """The resource catalogue (one row per resource per day) and its tag sets by digest."""
    from costs.ingest import canonical_tags

    rng = random.Random(SEED)
    subs = _sub_accounts(rng)
    count = -(-rows_total // days_total)
    weights = [a[4] for a in ACCOUNTS]
    untagged, no_tags = canonical_tags({})
    resources, tag_sets = [], {untagged: no_tags}
    for n in range(count):
        account = rng.choices(range(len(ACCOUNTS)), weights=weights)[0]
        provider, account_id, account_name, currency, _ = ACCOUNTS[account]
        _, sub_id, sub_name, team = rng.choice([s for s in subs if s[0] == account])
        products = PRODUCTS[provider]
        product = rng.choices(products, weights=[p[7] for p in products])[0]
        service, category, sku, unit, price, per_day, template, _ = product
        region = rng.choice(REGIONS[provider])
        digest, tags = canonical_tags(_tags(rng, team))
        tag_sets[digest] = tags
        list_micro = int(Decimal(price) * 10**6)
        resources.append(
            {
                "provider": provider,
                "billing_account_id": account_id,
                "billing_account_name": account_name,
                "sub_account_id": sub_id,
                "sub_account_name": sub_name,
                "service_name": service,
                "service_category": category,
                "resource_id": template.format(
                    region=region, sub=sub_id, n=n, hex=f"{rng.getrandbits(68):017x}"
                ),
                "resource_name": f"bench-{n}",
                "sku_id": sku,
                "region": region,
                "pricing_unit": unit,
                "currency": currency,
                "tag_digest": digest,
                "list_micro": list_micro,
                # Enterprise discount off list; GPU hours partly under a commitment.
                "billed_micro": list_micro * rng.choice((100, 94, 90)) // 100,
                "effective_pct": 72 if sku.endswith(("P5-48XL", "H100-GPU", "H100")) else 100,
                "units_1e4": per_day * 10**4 * rng.choice((1, 1, 2, 4)),
            }
        )
    return resources, tag_sets


def _decimal_text(column: str):
    """An Int64 column of 1e-10 units as exact decimal text (COPY reads it as numeric)."""
    import polars as pl

    value = pl.col(column)
    sign = pl.when(value < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    whole = (value.abs() // SCALE).cast(pl.String)
    fraction = (value.abs() % SCALE).cast(pl.String).str.zfill(10)
    return pl.concat_str([sign, whole, pl.lit("."), fraction])


def _month_frame(resources, tag_ids: dict[str, int], month: dt.date, import_id: int):
    """One billing month: every resource on every day, plus a purchase and a few credits."""
    import polars as pl

    from costs.ingest import canonical_tags

    untagged = tag_ids[canonical_tags({})[0]]  # the tag set of no tags
    days = calendar.monthrange(month.year, month.month)[1]
    catalogue = (
        pl.DataFrame(resources)
        .with_row_index("r")
        .with_columns(
            pl.col("tag_digest").replace_strict(tag_ids, return_dtype=pl.Int64).alias("tag_set_id")
        )
    )
    day = pl.DataFrame({"d": list(range(days))}, schema={"d": pl.Int64})
    frame = catalogue.join(day, how="cross")
    # Utilisation 40-100 % per resource and day: a cheap deterministic mix of the two.
    mix = (pl.col("r").cast(pl.Int64) * 2654435761 + pl.col("d") * 40503 + month.month * 97) % 61
    quantity = pl.col("units_1e4") * (mix + 40) // 100
    frame = frame.with_columns(
        quantity_i=quantity,
        usage_date=pl.lit(month) + pl.duration(days=pl.col("d")),
        charge_category=pl.lit("Usage"),
    ).with_columns(
        list_i=pl.col("quantity_i") * pl.col("list_micro"),
        billed_i=pl.col("quantity_i") * pl.col("billed_micro"),
    )
    frame = frame.with_columns(effective_i=pl.col("billed_i") * pl.col("effective_pct") // 100)
    specials = pl.DataFrame(
        [
            # The month's Savings Plan purchase, untagged (the platform shares it).
            {**resources[0], "tag_set_id": untagged, "d": 0,
             "charge_category": "Purchase", "service_name": "Savings Plans for AWS Compute usage",
             "resource_id": "arn:aws:savingsplans::210000000001:savingsplan/bench",
             "sku_id": "BENCH-SP", "quantity_i": 10**4, "list_i": 150_000 * SCALE,
             "billed_i": 150_000 * SCALE, "effective_i": 0},
            *[
                {**resources[n], "tag_set_id": tag_ids[resources[n]["tag_digest"]], "d": 14,
                 "charge_category": "Credit", "quantity_i": 0, "list_i": 0,
                 "billed_i": -amount * SCALE, "effective_i": -amount * SCALE}
                for n, amount in ((1, 1200), (2, 350), (3, 75))
            ],
        ]
    ).with_columns(usage_date=pl.lit(month) + pl.duration(days=pl.col("d")))  # fmt: skip
    frame = pl.concat([frame.select(specials.columns), specials.select(specials.columns)])
    totals = {
        row["currency"]: Decimal(int(row["billed_i"])) / SCALE
        for row in frame.group_by("currency")
        .agg(pl.col("billed_i").cast(pl.Int128).sum())
        .iter_rows(named=True)
    }
    out = frame.with_columns(
        billing_import_id=pl.lit(import_id, dtype=pl.Int64),
        source=pl.lit("focus"),
        billing_period=pl.lit(month),
        billed_cost=_decimal_text("billed_i"),
        effective_cost=_decimal_text("effective_i"),
        list_cost=_decimal_text("list_i"),
        quantity=_decimal_text("quantity_i"),
    ).select(COPY_COLUMNS)
    return out, totals


def _copy(frame) -> None:
    from django.db import connection

    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False, null_value="\\N")
    sql = f"COPY costs_costrow ({', '.join(COPY_COLUMNS)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        copy.write(buffer.getbuffer())


def build(*, rows: int, months: list[dt.date]) -> None:
    """Generate the cost rows, seed the demo and publish the earlier months (see module doc)."""
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from costs import chargeback, services
    from costs.models import (
        AllocationPolicy,
        BillingImport,
        ImportStatus,
        PeriodStatus,
        SharedPool,
    )
    from governance.models import BusinessUnit, User

    rules = _common.REPO / "costs" / "demo" / "allocation_rules.yaml"
    services.allocation_rules_load(text=rules.read_text(), file_name=rules.name)
    days_total = sum(calendar.monthrange(m.year, m.month)[1] for m in months)
    started = time.perf_counter()
    resources, tag_sets = _resources(rows, days_total)
    tag_ids = services.tag_sets_ensure(tag_sets=tag_sets)
    stored = 0
    for month in months:
        with transaction.atomic():
            record = BillingImport.objects.create(
                requested_format="focus",
                detected_format="focus",
                file_name=f"focus-bench-{month:%Y-%m}.csv",
                file_path="",
                status=ImportStatus.RUNNING,
                started_at=timezone.now(),
            )
            frame, totals = _month_frame(resources, tag_ids, month, record.pk)
            _copy(frame)
            period = f"{month:%Y-%m}"
            BillingImport.objects.filter(pk=record.pk).update(
                status=ImportStatus.SUCCEEDED,
                stage="done",
                progress=100,
                rows_read=frame.height,
                rows_stored=frame.height,
                billing_periods=[period],
                billing_accounts=sorted(a[1] for a in ACCOUNTS),
                billed_totals={c: f"{v:f}" for c, v in totals.items()},
                period_totals={period: {c: f"{v:f}" for c, v in totals.items()}},
                finished_at=timezone.now(),
            )
        stored += frame.height
        print(f"  {month:%Y-%m}: {frame.height:,} cost rows ({stored:,} so far)", flush=True)
    print(
        f"generated    {stored:,} cost rows in {len(months)} months, {len(tag_sets)} tag sets, "
        f"{len(resources):,} resources in {time.perf_counter() - started:.1f} s"
    )

    # Planner statistics before anything reads the rows (autovacuum may be off, or not yet
    # round): without them a year's aggregate is planned as a nested loop over a few rows.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE costs_costrow, costs_tagset")

    started = time.perf_counter()
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    print(f"seed_demo    the demo organisation in {time.perf_counter() - started:.1f} s")

    # The demo's own policy starts with its first month; the bench months before it share
    # the platform's costs the same way.
    started = time.perf_counter()
    policy, created = AllocationPolicy.objects.get_or_create(
        first_month=months[0], defaults={"name": "Bench chargeback policy", "basis": "billed"}
    )
    if created:
        SharedPool.objects.create(
            policy=policy,
            name="Platform",
            source_unit=BusinessUnit.objects.get(code="PLAT"),
            method="proportional",
        )
    fiona = User.objects.get(username="fiona")
    published = 0
    for month in months[:-1]:  # the last month stays a draft for finance, as in the demo
        period = chargeback.period_of(month)
        if period is None or period.status == PeriodStatus.DRAFT:
            chargeback.period_publish(month=month, by=fiona)
            published += 1
        if chargeback.period_of(month).status == PeriodStatus.PUBLISHED:
            chargeback.period_close(month=month, by=fiona)
    seconds = time.perf_counter() - started
    print(f"statements   {published} months published and closed in {seconds:.1f} s")

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"vacuum       VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")


def marker(rows: int, months: list[dt.date]) -> str:
    return (
        f"capgov-load v{BUILD_VERSION} rows={rows} seed={SEED} "
        f"months={months[0]:%Y-%m}..{months[-1]:%Y-%m}"
    )


# --- the load -----------------------------------------------------------------------------


def targets() -> dict[str, list[str]]:
    """What the users ask for, by persona: ``label path`` strings (read from the database)."""
    from costs.models import ChargebackPeriod, CostRow, PeriodStatus

    latest = ChargebackPeriod.objects.exclude(status=PeriodStatus.DRAFT).order_by("-month").first()
    if latest is None:
        raise SystemExit("no published month: the build did not finish; run with --rebuild")
    month = f"{latest.month:%Y-%m}"
    latest_costs = f"{CostRow.objects.order_by('-billing_period').first().billing_period:%Y-%m}"
    common = [
        "dashboard /",
        "chargeback /costs/chargeback/",
        f"statements_month /costs/statements/{month}/",
        # A month's rows, as integrations pull them, and the first page of all ten million.
        f"api_costs /api/v1/costs/?month={latest_costs}",
        "api_costs_all /api/v1/costs/",
        f"api_statements /api/v1/statements/?month={month}",
        "api_approvals /api/v1/approval-requests/",
        "api_models /api/v1/models/",
    ]
    own = {"fiona": "RES", "mark": "RES", "priya": "ADS"}
    return {
        persona: [*common, f"statement_unit /costs/statements/{month}/{own[persona]}/"]
        for persona, _ in PERSONAS
    }


WEIGHTS = {
    "dashboard": 3,
    "chargeback": 2,
    "statements_month": 1,
    "statement_unit": 1,
    "api_costs": 1,
    "api_costs_all": 1,
    "api_statements": 1,
    "api_approvals": 1,
    "api_models": 1,
}


def drive(config: dict) -> dict:
    """Child process (gevent): sign in, run the users, return raw timings per endpoint."""
    import http.client

    import gevent
    from locust import FastHttpUser, between, events
    from locust.env import Environment

    host, port = "127.0.0.1", config["port"]
    base = f"http://{host}:{port}"
    proxy = {**_common.PROXY_HEADERS, "Host": f"{host}:{port}"}

    def sign_in(username: str) -> str:
        """The login form, as a browser would post it; returns the Cookie header to send."""
        jar = _common.Session(port, timeout=30).sign_in(username, PASSWORD).cookies
        return f"sessionid={jar['sessionid']}; csrftoken={jar['csrftoken']}"

    cookies = {persona: sign_in(persona) for persona, _ in PERSONAS}
    plan = config["targets"]

    def first_views() -> dict[str, dict[str, list]]:
        """Each persona asks for each page once, alone, before the users start: what the
        first visitor after an import waits (the month sums are computed then, and cached)."""
        seen: dict[str, dict[str, list]] = {}
        for persona, _ in PERSONAS:
            for line in plan[persona]:
                label, path = line.split(" ", 1)
                conn = http.client.HTTPConnection(host, port, timeout=600)
                started = time.monotonic()
                conn.request("GET", path, headers={**proxy, "Cookie": cookies[persona]})
                answer = conn.getresponse()
                answer.read()
                conn.close()
                elapsed = (time.monotonic() - started) * 1000
                seen.setdefault(persona, {})[label] = [answer.status, round(elapsed, 1)]
        return seen

    first = first_views()
    personas = [p for p, weight in PERSONAS for _ in range(weight)]
    think_min, think_max = config["think"]
    samples: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    error_kinds: dict[str, int] = defaultdict(int)
    measuring = {"on": False}
    counter = {"n": 0}

    def on_request(name, response_time, exception, response=None, **_):
        if not measuring["on"]:
            return
        samples[name].append(response_time)
        if exception is not None:
            errors[name] += 1
            error_kinds[f"{name}: {str(exception)[:80]}"] += 1

    events.request.add_listener(on_request)

    class CapgovUser(FastHttpUser):
        wait_time = between(think_min, think_max)
        host = base

        def on_start(self):
            persona = personas[counter["n"] % len(personas)]
            counter["n"] += 1
            self.headers = {**_common.PROXY_HEADERS, "Cookie": cookies[persona]}
            self.paths = [line.split(" ", 1) for line in plan[persona]]
            self.rng = random.Random(counter["n"])

        def pick(self):
            weights = [WEIGHTS[label] for label, _ in self.paths]
            return self.rng.choices(self.paths, weights=weights)[0]

        def run_one(self):
            label, path = self.pick()
            with self.client.get(
                path, headers=self.headers, name=label, catch_response=True, allow_redirects=False
            ) as response:
                if response.status_code == 0:
                    response.failure("no answer (timed out or refused)")
                elif response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")

        tasks = [run_one]

    env = Environment(user_classes=[CapgovUser], events=events)
    runner = env.create_local_runner()
    runner.start(config["users"], spawn_rate=config["spawn_rate"])
    gevent.sleep(config["warmup"])
    measuring["on"] = True
    started = time.monotonic()
    gevent.sleep(config["duration"])
    measuring["on"] = False
    elapsed = time.monotonic() - started
    runner.quit()
    return {
        "elapsed": elapsed,
        "samples": dict(samples),
        "errors": dict(errors),
        "error_kinds": dict(error_kinds),
        "first": first,
    }


def report(result: dict, *, users: int, rows: int, note: str) -> None:
    samples, errors = result["samples"], result["errors"]
    print()
    print("first views, alone, before the load (ms; the month sums computed and cached):")
    for persona, pages in result["first"].items():
        shown = ", ".join(
            f"{label} {ms:.0f}" + ("" if status == 200 else f" (HTTP {status})")
            for label, (status, ms) in pages.items()
        )
        print(f"  {persona:<6} {shown}")
    print()
    print(
        f"{'endpoint':<18} {'requests':>9} {'errors':>7} {'p50_ms':>8} {'p95_ms':>8} {'p99_ms':>8}"
    )
    everything: list[float] = []
    for label in [label for label in WEIGHTS if label in samples or label in errors]:
        times = sorted(samples.get(label, []))
        everything += times
        p95 = _common.percentile(times, 0.95)
        flag = "" if p95 <= TARGET_P95_MS else "  MISSED"
        print(
            f"{label:<18} {len(times):>9} {errors.get(label, 0):>7} "
            f"{_common.percentile(times, 0.50):>8.1f} {p95:>8.1f} "
            f"{_common.percentile(times, 0.99):>8.1f}{flag}"
        )
    everything.sort()
    total_errors = sum(errors.values())
    p50, p95, p99 = (_common.percentile(everything, q) for q in (0.5, 0.95, 0.99))
    print(
        f"{'overall':<18} {len(everything):>9} {total_errors:>7} {p50:>8.1f} {p95:>8.1f} "
        f"{p99:>8.1f}"
    )
    for kind, count in sorted(result["error_kinds"].items()):
        print(f"  error {kind} x{count}")
    rps = len(everything) / result["elapsed"] if result["elapsed"] else 0.0
    verdict = "ok" if p95 <= TARGET_P95_MS and not total_errors else "MISSED"
    print(f"target       p95 ≤ {TARGET_P95_MS:g} ms and no errors: {verdict}")
    print(f"note         {note}")
    print(
        f"users={users} rows={rows} requests={len(everything)} rps={rps:.1f} "
        f"p50_ms={p50:.1f} p95_ms={p95:.1f} p99_ms={p99:.1f} errors={total_errors}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="generated cost rows")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10.0, help="users started a second")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--think", default="0.5:2.5", help="seconds between a user's requests")
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild the data")
    parser.add_argument(
        "--endpoints",
        default=",".join(WEIGHTS),
        help=f"comma-separated subset of {','.join(WEIGHTS)}",
    )
    parser.add_argument("--build-only", action="store_true", help="build the data and stop")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra setting for the server, e.g. CAPGOV_COST_CACHE_SECONDS=0 (repeatable)",
    )
    parser.add_argument("--drive", help=argparse.SUPPRESS)  # the load generator's child process
    args = parser.parse_args(argv)
    if args.drive:
        print(json.dumps(drive(json.loads(Path(args.drive).read_text()))))
        return

    url = os.environ.get("LOAD_DATABASE_URL", DEFAULT_URL)
    months = bench_months(dt.datetime.now(dt.UTC).date())
    wanted = marker(args.rows, months)
    found = _common.database_comment(url)
    fresh = args.rebuild or found != wanted
    _common.database_create(url, drop=fresh and found is not None)
    # The build runs in this process as the demo does (tasks inline, mail kept in memory).
    _common.setup_django(
        {
            "DATABASE_URL": url,
            "DJANGO_ENV": "development",
            "CELERY_BROKER_URL": "",
            "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "DJANGO_LOG_LEVEL": "WARNING",
            # The demo writes its generated bill and uploads here, not into the checkout's var/.
            "CAPGOV_VAR_DIR": tempfile.mkdtemp(prefix="capgov-load-var-"),
        }
    )
    print(f"database     {url}")
    if fresh:
        started = time.perf_counter()
        build(rows=args.rows, months=months)
        _common.database_mark(url, wanted)
        print(f"built        in {time.perf_counter() - started:.0f} s ({wanted})")
    else:
        print(f"reused       {wanted}")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("select count(*) from costs_costrow")
        rows = cursor.fetchone()[0]
    print(f"cost rows    {rows:,}")
    if args.build_only:
        return
    chosen = [label for label in args.endpoints.split(",") if label]
    unknown = set(chosen) - set(WEIGHTS)
    if unknown:
        raise SystemExit(f"unknown endpoint(s) {', '.join(sorted(unknown))}; see --help")
    plan = {
        persona: [line for line in lines if line.split(" ", 1)[0] in chosen]
        for persona, lines in targets().items()
    }
    connection.close()

    think = tuple(float(part) for part in args.think.split(":"))
    broker = os.environ.get("LOAD_BROKER_URL", "redis://127.0.0.1:6379/15")
    # The server's cache lives in the broker's Redis database: start it empty, so the first
    # views below are what the first visitor after an import sees.
    import redis

    redis.Redis.from_url(broker).flushdb()
    with tempfile.TemporaryDirectory(prefix="capgov-load-") as folder:
        env = _common.production_env(
            database_url=url,
            broker_url=broker,
            static_root=Path(folder) / "static",
            extra=dict(item.split("=", 1) for item in args.server_env),
        )
        started = time.perf_counter()
        _common.collectstatic(env, work=Path(folder))
        print(f"static       collected and compressed in {time.perf_counter() - started:.1f} s")
        port = _common.free_port()
        log_path = Path(folder) / "gunicorn.log"
        with log_path.open("w") as log:
            server = _common.gunicorn_start(env, port=port, workers=args.workers, log=log)
            try:
                _common.wait_http(port, process=server)
                extra = " ".join(args.server_env)
                print(
                    f"server       gunicorn, {args.workers} workers, DJANGO_ENV=production, "
                    f"on 127.0.0.1:{port}{' with ' + extra if extra else ''}"
                )
                config = Path(folder) / "drive.json"
                config.write_text(
                    json.dumps(
                        {
                            "port": port,
                            "targets": plan,
                            "users": args.users,
                            "spawn_rate": args.spawn_rate,
                            "warmup": args.warmup,
                            "duration": args.duration,
                            "think": think,
                        }
                    )
                )
                print(
                    f"load         {args.users} users, think {think[0]:g}-{think[1]:g} s, "
                    f"{args.warmup:g} s warm-up, {args.duration:g} s measured"
                )
                child = subprocess.run(
                    [_common.PYTHON, __file__, "--drive", str(config)],
                    cwd=_common.REPO,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if child.returncode != 0:
                    sys.stderr.write(child.stderr[-4000:])
                    raise SystemExit("the load generator failed")
                result = json.loads(child.stdout.strip().splitlines()[-1])
            finally:
                _common.stop(server)
        server_errors = [
            line
            for line in log_path.read_text().splitlines()
            if '"ERROR"' in line or " ERROR " in line
        ]
        for line in server_errors[:5]:
            print(f"server log   {line[:300]}")
    cores = os.cpu_count()
    note = (
        f"{cores} cores shared by gunicorn ({args.workers} workers), PostgreSQL and the load "
        "generator (locust, one process); timings include the generator's own CPU use"
    )
    if len(chosen) < len(WEIGHTS):
        note += f"; endpoints driven: {', '.join(chosen)} only"
    try:
        load = os.getloadavg()[0]
        note += f"; load average {load:.1f} when it ended"
    except OSError:
        pass
    report(result, users=args.users, rows=rows, note=note)


if __name__ == "__main__":
    main()
