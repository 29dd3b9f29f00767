"""Benchmark: import N generated FOCUS rows into Capgov, then compare with DuckDB.

Run from the repository root (see bench/README.md for what the figures mean)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/capgov_bench \\
        .venv/bin/python bench/ingest.py [--rows 1000000] [--seed 7] [--keep]

The CSV is generated and DuckDB runs in child processes, so ``peak_rss_mb`` (this process's
``ru_maxrss``) is what Capgov's import and chargeback needed, not what the generator or the
reference engine did. Unless ``--keep`` is given, the imported rows are deleted afterwards
through ``costs.services.billing_import_delete``; the generated CSV is always removed.

The last line printed is machine-readable::

    rows=… import_s=… rows_per_s=… chargeback_s=… duckdb_s=… ratio_to_duckdb=… peak_rss_mb=…
    statements_s=… focus_export_s=…
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parent.parent
DESCRIPTION = "Import N generated FOCUS rows into Capgov and compare with DuckDB."
MONTH = "2026-10"

# The grain Capgov stores (DESIGN.md §3): per account, resource, SKU, tag set, charge
# category and usage day. DuckDB reads and groups the same file at that grain.
DUCKDB_DAILY = """
    select BillingAccountId, SubAccountId, ResourceId, SkuId, Tags, ChargeCategory,
           cast(ChargePeriodStart as date) as usage_date,
           sum(BilledCost), sum(EffectiveCost), sum(ListCost), sum(ConsumedQuantity), count(*)
    from read_csv_auto($path, nullstr = 'NULL')
    group by all
"""
DUCKDB_TOTALS = """
    select BillingCurrency, sum(cast(BilledCost as decimal(38, 10)))::varchar
    from read_csv_auto($path, all_varchar = true)
    group by all
"""

TARGETS = {
    "import_s": 15.0,
    "rows_per_s": 66_000.0,
    "ratio_to_duckdb": 10.0,
    "peak_rss_mb": 1536.0,
    "chargeback_s": 1.0,
}


def _ensure_repo_on_path() -> None:
    # Run as `python bench/ingest.py`, sys.path[0] is bench/; the apps live one level up.
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def _demo_policy(month: dt.date):
    """Load the demo's units and rules and a policy sharing PLAT's costs; returns the policy."""
    from costs.models import AllocationPolicy, SharedPool
    from costs.services import allocation_rules_load
    from governance.models import BusinessUnit

    rules = REPO / "costs" / "demo" / "allocation_rules.yaml"
    allocation_rules_load(text=rules.read_text(), file_name=rules.name)
    policy, _ = AllocationPolicy.objects.update_or_create(
        first_month=month, defaults={"name": "bench", "basis": "billed"}
    )
    SharedPool.objects.get_or_create(
        policy=policy,
        source_unit=BusinessUnit.objects.get(code="PLAT"),
        defaults={"name": "Platform", "method": "proportional"},
    )
    return policy


def _peak_rss_mb(who: int) -> float:
    """Peak resident set size in MB; Linux reports ru_maxrss in KiB."""
    return resource.getrusage(who).ru_maxrss / 1024


def generate(path: Path, rows: int, seed: int) -> tuple[int, float, float]:
    """Child process: write the bench CSV; return (rows, seconds, peak RSS MB)."""
    _ensure_repo_on_path()
    from costs.sampledata import write_focus_csv

    started = time.perf_counter()
    written = write_focus_csv(path, rows=rows, seed=seed, months=(MONTH,), profile="bench")
    return written, time.perf_counter() - started, _peak_rss_mb(resource.RUSAGE_SELF)


def duckdb_reference(path: Path) -> tuple[float, int, dict[str, str], float]:
    """Child process: time DuckDB reading and grouping the file to the daily grain.

    Returns (seconds, groups, exact billed total per currency, peak RSS MB). The totals
    query is not timed; it is the yardstick the import's totals are checked against.
    """
    import duckdb

    started = time.perf_counter()
    groups = duckdb.sql(DUCKDB_DAILY, params={"path": str(path)}).fetchall()
    seconds = time.perf_counter() - started
    totals = duckdb.sql(DUCKDB_TOTALS, params={"path": str(path)}).fetchall()
    return seconds, len(groups), dict(totals), _peak_rss_mb(resource.RUSAGE_SELF)


def ensure_database() -> str:
    """Create the PostgreSQL database DATABASE_URL names if missing; return a display name."""
    import dj_database_url

    url = os.environ.get("DATABASE_URL", "")
    if not url:
        return "SQLite (DATABASE_URL unset; figures are meaningful on PostgreSQL only)"
    config = dj_database_url.parse(url)
    if "postgresql" not in config["ENGINE"]:
        return f"{config['ENGINE']} {config['NAME']}"
    import psycopg
    from psycopg import sql

    server = {
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
    }
    name = str(config["NAME"])
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
            print(f"created database {name}")
    return f"PostgreSQL {server['host'] or 'local socket'}:{server['port'] or 5432}/{name}"


def setup_django() -> None:
    """Configure Django for DATABASE_URL and bring the schema up to date."""
    _ensure_repo_on_path()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def _check(name: str, value: float) -> str:
    """'ok' / 'MISSED' against the README's target for ``name``."""
    target = TARGETS[name]
    met = value >= target if name == "rows_per_s" else value < target
    bound = "≥" if name == "rows_per_s" else "<"
    return f"{'ok' if met else 'MISSED'} (target {bound} {target:g})"


def _fail(message: str) -> NoReturn:
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Generate, import, chargeback, DuckDB reference, clean up; print the figures."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--rows", type=int, default=1_000_000, help="FOCUS rows to generate")
    parser.add_argument("--seed", type=int, default=7, help="seed for the generated data")
    parser.add_argument("--keep", action="store_true", help="keep the imported rows afterwards")
    args = parser.parse_args(argv)

    database = ensure_database()
    setup_django()
    from costs.chargeback import statements_compute
    from costs.selectors import chargeback_get
    from costs.services import billing_import, billing_import_delete
    from costs.statement_exports import statements_focus_csv

    # Spawned, not forked: a fork would share this process's pages and blur the RSS figures.
    children = concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    )
    with tempfile.TemporaryDirectory(prefix="capgov-bench-") as folder, children:
        path = Path(folder) / f"focus-bench-{args.rows}.csv"
        rows, gen_s, gen_rss = children.submit(generate, path, args.rows, args.seed).result()
        size_mb = path.stat().st_size / 2**20
        print(f"database     {database}")
        print(f"generated    {rows:,} rows, {size_mb:,.0f} MB in {gen_s:.2f} s ({path.name})")

        started = time.perf_counter()
        record = billing_import(path=path, fmt="focus")
        import_s = time.perf_counter() - started
        if record.status != "succeeded":
            _fail(f"import #{record.pk} ended {record.status}: {record.error}")
        record_id = record.pk
        policy = None
        try:
            if record.rows_read != rows:
                _fail(f"import read {record.rows_read:,} rows of {rows:,}")
            print(
                f"import       #{record_id}: {record.rows_read:,} rows read, "
                f"{record.rows_stored:,} daily rows stored in {import_s:.2f} s"
            )

            year, month = (int(part) for part in MONTH.split("-"))
            started = time.perf_counter()
            chargeback_get(user=None, month=dt.date(year, month, 1), basis="billed")
            chargeback_s = time.perf_counter() - started
            print(f"chargeback   {MONTH}, organisation-wide, billed basis in {chargeback_s:.3f} s")

            # Statements as the demo organisation would have them: its rules, and the
            # platform's costs shared across the units in proportion to their direct spend.
            policy = _demo_policy(dt.date(year, month, 1))
            started = time.perf_counter()
            statements = statements_compute(dt.date(year, month, 1))
            statements_s = time.perf_counter() - started
            units = sum(len(c.statements) for c in statements.currencies.values())
            print(
                f"statements   {MONTH}: {units} statements, computed live in {statements_s:.3f} s"
            )
            started = time.perf_counter()
            focus_bytes = sum(len(chunk) for chunk in statements_focus_csv(statements))
            focus_s = time.perf_counter() - started
            print(f"focus export {focus_bytes / 2**20:.1f} MB with allocation in {focus_s:.3f} s")

            duck_s, duck_groups, duck_totals, duck_rss = children.submit(
                duckdb_reference, path
            ).result()
            print(f"duckdb       read + group to {duck_groups:,} daily rows in {duck_s:.2f} s")
            stored = {k: Decimal(v) for k, v in record.billed_totals.items()}
            expected = {k: Decimal(v) for k, v in duck_totals.items()}
            if stored != expected:
                _fail(f"billed totals differ: import {stored} vs file {expected}")
            if record.rows_stored != duck_groups:
                print(f"note         stored {record.rows_stored:,} rows, DuckDB {duck_groups:,}")
        finally:
            # Also on failure, so a broken run leaves no million rows behind.
            if policy is not None:
                policy.delete()
            if args.keep:
                print(f"kept         import #{record_id} and its rows")
            else:
                started = time.perf_counter()
                billing_import_delete(billing_import=record)
                print(f"deleted      import #{record_id} in {time.perf_counter() - started:.2f} s")

    peak_mb = _peak_rss_mb(resource.RUSAGE_SELF)
    rows_per_s = rows / import_s if import_s else 0.0
    ratio = import_s / duck_s if duck_s else 0.0
    print()
    print(f"import       {import_s:8.2f} s   {_check('import_s', import_s)}")
    print(f"throughput   {rows_per_s:8.0f} rows/s   {_check('rows_per_s', rows_per_s)}")
    print(f"vs DuckDB    {ratio:8.2f} x   {_check('ratio_to_duckdb', ratio)}")
    print(f"peak memory  {peak_mb:8.0f} MB   {_check('peak_rss_mb', peak_mb)}")
    print(f"chargeback   {chargeback_s:8.3f} s   {_check('chargeback_s', chargeback_s)}")
    print(f"(children: generator peak {gen_rss:.0f} MB, DuckDB peak {duck_rss:.0f} MB)")
    print(
        f"rows={rows} import_s={import_s:.3f} rows_per_s={rows_per_s:.2f} "
        f"chargeback_s={chargeback_s:.3f} duckdb_s={duck_s:.3f} ratio_to_duckdb={ratio:.3f} "
        f"peak_rss_mb={peak_mb:.2f} statements_s={statements_s:.3f} focus_export_s={focus_s:.3f}"
    )


if __name__ == "__main__":
    main()
