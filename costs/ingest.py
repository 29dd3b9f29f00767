"""Billing file -> daily cost rows ready to store. Pure: polars and plain data, no ORM.

``prepare`` reads a file, detects or checks its format, runs the adapter, validates what
every import needs (currency, account, tags), and aggregates to the daily grain of
DESIGN.md §3: one row per (account, resource, SKU, tag set, charge category, usage day).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import polars as pl

from costs.sources import aws_cur, azure_export, focus, gcp_export
from costs.sources.base import (
    LINE,
    TEXT_LIMITS,
    BillingFileError,
    ParsedCharges,
    SourceTable,
)
from costs.sources.reader import iter_tables, read_header, read_table

ADAPTERS = {
    focus.FORMAT: focus,
    aws_cur.FORMAT: aws_cur,
    gcp_export.FORMAT: gcp_export,
    azure_export.FORMAT: azure_export,
}
FORMATS = ("auto", *ADAPTERS)

GROUP_KEYS = (
    "provider",
    "billing_account_id",
    "sub_account_id",
    "billing_period",
    "usage_date",
    "charge_category",
    "service_name",
    "service_category",
    "resource_id",
    "sku_id",
    "region",
    "pricing_unit",
    "tag_digest",
    "currency",
)
AMOUNTS = ("billed_cost", "effective_cost", "list_cost", "quantity")
NAMES = ("billing_account_name", "sub_account_name", "resource_name")

Progress = Callable[[str, int], None]
# Lines parsed at a time: bounds memory; larger chunks gain little speed.
CHUNK_ROWS = 100_000


@dataclass
class PreparedImport:
    """A parsed, validated, aggregated billing file."""

    format: str
    daily: pl.DataFrame
    tag_sets: dict[str, dict[str, str]]
    rows_read: int
    billed_totals: dict[str, Decimal]
    period_totals: dict[str, dict[str, Decimal]]
    slices: list[tuple[str, str]]
    warnings: list[str] = field(default_factory=list)

    @property
    def billing_periods(self) -> list[str]:
        return sorted({period[:7] for _, period in self.slices})

    @property
    def billing_accounts(self) -> list[str]:
        return sorted({account for account, _ in self.slices})


def detect(header: list[str], *, file: str) -> str:
    """Name the format whose signature columns the header carries."""
    columns = {c.strip().lower() for c in header}
    for fmt, adapter in ADAPTERS.items():
        if adapter.matches(columns):
            return fmt
    shown = ", ".join(header[:7])
    raise BillingFileError(
        "cannot tell which billing format this is",
        file=file,
        line=1,
        hint=(
            f"the header starts {shown} …; expected FOCUS (BilledCost, ChargePeriodStart), "
            "AWS CUR (lineItem/UnblendedCost or line_item_unblended_cost), the GCP BigQuery "
            "export (billing_account_id, cost, invoice.month) or an Azure cost export "
            "(BillingAccountId, Date, Cost/CostInBillingCurrency); or choose the format "
            "yourself (the Format field, or --format)"
        ),
    )


def canonical_tags(tags: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Trim keys and values, sort, and digest: the identity of a tag set."""
    clean: dict[str, str] = {}
    for key, value in tags.items():
        key = key.strip()
        if "\x00" in key or "\x00" in value:
            raise ValueError("a tag holds a NUL character")
        if key and key not in clean:
            clean[key] = value.strip()
    ordered = dict(sorted(clean.items()))
    text = json.dumps(ordered, ensure_ascii=False, separators=(",", ":"))
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(), ordered


def _attach_tag_sets(
    table: SourceTable, parsed: ParsedCharges
) -> tuple[pl.DataFrame, dict[str, dict[str, str]]]:
    """Parse each distinct tags text once and replace the column by the tag-set digest."""
    frame = parsed.frame
    distinct = (
        frame.select(pl.col("tags"), pl.col(LINE)).group_by("tags").agg(pl.col(LINE).min())
    ).sort(LINE)
    digests: list[str] = []
    tag_sets: dict[str, dict[str, str]] = {}
    for raw, line in distinct.iter_rows():
        try:
            digest, clean = canonical_tags(parsed.tag_parser(raw) if raw else {})
        except (ValueError, SyntaxError, RecursionError, TypeError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
            raise table.error(
                f"tags cannot be read: {reason}",
                line=line,
                column="Tags",
                hint='tags must be a key/value object such as {"team": "research"}',
            ) from exc
        digests.append(digest)
        tag_sets[digest] = clean
    lookup = distinct.select(pl.col("tags"), pl.Series("tag_digest", digests, dtype=pl.String))
    frame = frame.join(lookup, on="tags", how="left", nulls_equal=True).drop("tags")
    return frame, tag_sets


_EARLIEST, _LATEST = dt.date(1990, 1, 1), dt.date(2199, 12, 31)


def _validate(table: SourceTable, frame: pl.DataFrame) -> None:
    checks = [
        (
            ~pl.col("currency").str.contains(r"^[A-Z]{3}$"),
            "currency",
            "the billing currency is not a 3-letter ISO 4217 code",
        ),
        (pl.col("billing_account_id") == "", "billing account", "the billing account is empty"),
        (pl.col("billing_period").is_null(), "billing period", "the billing period is empty"),
        (pl.col("usage_date").is_null(), "usage date", "the usage date is empty"),
    ]
    for name in ("billing_period", "usage_date"):
        checks.append(
            (
                ~pl.col(name).is_between(_EARLIEST, _LATEST),
                name.replace("_", " "),
                f"the {name.replace('_', ' ')} is outside {_EARLIEST:%Y} to {_LATEST:%Y}",
            )
        )
    for name, limit in TEXT_LIMITS.items():
        checks.append(
            (
                pl.col(name).str.len_chars() > limit,
                name.replace("_", " "),
                f"the {name.replace('_', ' ')} is longer than {limit} characters",
            )
        )
    for name in (*TEXT_LIMITS, "tags"):
        checks.append(
            (
                pl.col(name).str.contains("\x00", literal=True).fill_null(False),
                name.replace("_", " "),
                "the value holds a NUL character, which a billing export never has; "
                "is the file corrupt?",
            )
        )
    for bad, column, message in checks:
        hit = frame.filter(bad).head(1)
        if hit.height:
            raise table.error(message, line=int(hit[LINE][0]), column=column)


# Key columns with few distinct values; held as categoricals between chunks to save memory.
_LOW_CARDINALITY = (
    "provider",
    "billing_account_id",
    "sub_account_id",
    "charge_category",
    "service_name",
    "service_category",
    "sku_id",
    "region",
    "pricing_unit",
    "tag_digest",
    "currency",
    "billing_account_name",
    "sub_account_name",
)


def _aggregate(frame: pl.DataFrame) -> pl.DataFrame:
    return (
        frame.lazy()
        .with_columns(pl.col(c).cast(pl.Categorical) for c in _LOW_CARDINALITY)
        .group_by(list(GROUP_KEYS))
        .agg(*[pl.col(a).sum() for a in AMOUNTS], *[pl.col(n).max() for n in NAMES])
        .collect()
    )


def _decimal_totals(frame: pl.DataFrame, by: list[str]) -> list[tuple]:
    return frame.group_by(by).agg(pl.col("billed_cost").sum()).sort(by).rows()


def prepare(
    path: Path,
    *,
    fmt: str = "auto",
    display_name: str | None = None,
    progress: Progress | None = None,
) -> PreparedImport:
    """Read, check and aggregate one billing file. Raises ``BillingFileError`` on bad input."""
    report = progress or (lambda stage, percent: None)
    if fmt not in FORMATS:
        raise BillingFileError(
            f"unknown format {fmt!r}", file=display_name or path.name, hint=f"use {FORMATS}"
        )
    report("reading", 5)
    name = display_name or path.name
    header = read_header(path, display_name=display_name)
    if header:
        chosen = _choose(header, fmt, name)
        tables = iter_tables(
            path,
            display_name=display_name,
            columns=getattr(ADAPTERS[chosen], "wanted", None),
            chunk_rows=CHUNK_ROWS,
        )
    else:  # JSON lines: the header is known only once the rows are read
        table = read_table(path, display_name=display_name)
        chosen = _choose(table.header, fmt, name)
        tables = iter([table])
    adapter = ADAPTERS[chosen]

    # Chunk by chunk: parse, check, aggregate; then merge the partial daily rows. Sums are
    # associative, so the result is the same as one pass over the whole file.
    partials: list[pl.DataFrame] = []
    tag_sets: dict[str, dict[str, str]] = {}
    warnings: list[str] = []
    period_totals: dict[str, dict[str, Decimal]] = {}
    rows_read = 0
    for table in tables:
        report("parsing", min(25 + rows_read // 30_000, 60))
        parsed = adapter.parse(table)
        rows_read += table.frame.height
        if parsed.frame.height == 0:
            continue
        _validate(table, parsed.frame)
        frame, chunk_tags = _attach_tag_sets(table, parsed)
        tag_sets.update(chunk_tags)
        warnings += [w for w in parsed.warnings if w not in warnings]
        for period, currency, amount in _decimal_totals(frame, ["billing_period", "currency"]):
            month = period_totals.setdefault(period.strftime("%Y-%m"), {})
            month[currency] = month.get(currency, Decimal(0)) + Decimal(amount)
        partials.append(_aggregate(frame))
        del frame, parsed, table
    if not partials:
        raise BillingFileError(
            "no charge lines left after reading", file=name, hint="is this the right file?"
        )
    totals: dict[str, Decimal] = {}
    for month in period_totals.values():
        for currency, amount in month.items():
            totals[currency] = totals.get(currency, Decimal(0)) + amount
    report("aggregating", 65)
    daily = _aggregate(pl.concat(partials)) if len(partials) > 1 else partials[0]
    daily = daily.sort("billing_period", "usage_date", "billing_account_id").with_columns(
        pl.col(c).cast(pl.String) for c in _LOW_CARDINALITY
    )
    slices = [
        (account, period.strftime("%Y-%m-%d"))
        for account, period in daily.select("billing_account_id", "billing_period")
        .unique()
        .sort("billing_account_id", "billing_period")
        .rows()
    ]
    return PreparedImport(
        format=chosen,
        daily=daily,
        tag_sets=tag_sets,
        rows_read=rows_read,
        billed_totals=dict(sorted(totals.items())),
        period_totals=dict(sorted(period_totals.items())),
        slices=slices,
        warnings=warnings,
    )


def _choose(header: list[str], fmt: str, file: str) -> str:
    if fmt == "auto":
        return detect(header, file=file)
    if not ADAPTERS[fmt].matches({c.strip().lower() for c in header}):
        try:
            guess = detect(header, file=file)
        except BillingFileError:
            guess = "no known format"
        raise BillingFileError(
            f"the header does not look like {fmt}",
            file=file,
            line=1,
            hint=f"this looks like {guess}; choose automatic detection "
            "(the Format field, or --format auto)",
        )
    return fmt
