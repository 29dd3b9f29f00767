"""Google Cloud BigQuery billing export (standard or detailed) into the charge shape.

Works on the CSV download (dotted column names such as ``service.description``) and on
newline-delimited JSON, which the reader flattens to the same dotted names. ``cost`` is the
gross charge; each entry of the repeated ``credits`` field becomes its own ``Credit`` row,
so the billed total is the net cost (cost + sum of credits) without unnesting labels and
credits together.
"""

from __future__ import annotations

import json

import polars as pl

from costs.sources.base import (
    DECIMAL,
    LINE,
    ParsedCharges,
    SourceTable,
    col_or_null,
    finish,
    first_bad,
    map_charge_category,
    optional_column,
    parse_datetime,
    parse_decimal,
    parse_key_values,
    require_columns,
    text,
)

FORMAT = "gcp-export"

SIGNATURE = frozenset({"billing_account_id", "cost", "invoice.month"})
REQUIRED = ("billing_account_id", "cost", "currency", "invoice.month", "usage_start_time")

CATEGORY_MAP = {
    "regular": "Usage",
    "tax": "Tax",
    "adjustment": "Adjustment",
    "rounding_error": "Adjustment",
}

# One credit amount inside the credits text, JSON ("amount": -1.5) or a Python literal
# ('amount': -1.5e-06, as in the CSV download); string-quoted numbers are accepted too.
_CREDIT_AMOUNT = r"""["']amount["']\s*:\s*["']?([^,}\]\s"']+)"""


def matches(columns: set[str]) -> bool:
    """True when the lower-cased header looks like the BigQuery billing export."""
    return SIGNATURE.issubset(columns)


def parse_tags(raw: str) -> dict[str, str]:
    """Resource labels, plus the project's labels for keys the resource does not set."""
    value = json.loads(raw) if raw else {}
    tags = parse_key_values(value.get("labels"))
    for key, label in parse_key_values(value.get("project_labels")).items():
        tags.setdefault(key, label)
    return tags


def _tags_expr(table: SourceTable) -> pl.Expr:
    parts = []
    for field, candidates in (("labels", ("labels",)), ("project_labels", ("project.labels",))):
        name = optional_column(table, *candidates)
        if name is not None:
            parts.append(text(pl.col(name)).alias(field))
    if not parts:
        return pl.lit(None, dtype=pl.String)
    empty = pl.all_horizontal(
        p.is_null() | p.str.replace_all(r"\s", "").is_in(["[]", "{}"]) for p in parts
    )
    return pl.when(empty).then(None).otherwise(pl.struct(parts).struct.json_encode())


def _invoice_month(table: SourceTable, column: str) -> pl.Series:
    raw = text(pl.col(column))
    parsed = (raw + "01").str.strptime(pl.Date, "%Y%m%d", strict=False)
    bad = raw.is_null() | ~raw.str.contains(r"^\d{6}$") | parsed.is_null()
    found = first_bad(table.frame, bad, raw.fill_null(""))
    if found:
        line, value = found
        raise table.error(
            f"{value!r} is not an invoice month",
            line=line,
            column=column,
            hint="invoice.month must be YYYYMM, e.g. 202011",
        )
    return table.frame.select(parsed.alias(column)).to_series()


def _usage_start(table: SourceTable, column: str) -> pl.Series:
    # BigQuery writes TIMESTAMPs in JSON exports as "2020-11-09 23:00:00 UTC".
    frame = table.frame.with_columns(
        text(pl.col(column)).str.replace(r"(?i)\s*UTC$", "+00:00").alias(column)
    )
    return parse_datetime(table, frame, column)


def parse(table: SourceTable) -> ParsedCharges:
    cols = require_columns(table, REQUIRED, fmt="GCP billing export")
    frame = table.frame

    billed = parse_decimal(table, frame, cols["cost"], required=True)
    list_cost = parse_decimal(
        table, frame, optional_column(table, "cost_at_list"), required=False, default_zero=False
    )
    amount = parse_decimal(
        table, frame, optional_column(table, "usage.amount"), required=False, default_zero=False
    )
    priced = parse_decimal(
        table,
        frame,
        optional_column(table, "usage.amount_in_pricing_units"),
        required=False,
        default_zero=False,
    )
    period = _invoice_month(table, cols["invoice.month"])
    usage = _usage_start(table, cols["usage_start_time"])
    cost_type = optional_column(table, "cost_type")
    if cost_type is None:
        category = pl.Series(["Usage"] * frame.height, dtype=pl.String)
    else:
        category = map_charge_category(table, frame, cost_type, CATEGORY_MAP)

    pricing_unit = col_or_null(table, "usage.pricing_unit")
    out = frame.select(
        pl.lit("Google Cloud").alias("provider"),
        text(pl.col(cols["billing_account_id"])).alias("billing_account_id"),
        pl.lit(None, dtype=pl.String).alias("billing_account_name"),
        col_or_null(table, "project.id").alias("sub_account_id"),
        col_or_null(table, "project.name").alias("sub_account_name"),
        col_or_null(table, "service.description").alias("service_name"),
        pl.lit(None, dtype=pl.String).alias("service_category"),
        col_or_null(table, "resource.global_name", "resource.name").alias("resource_id"),
        col_or_null(table, "resource.name").alias("resource_name"),
        col_or_null(table, "sku.id").alias("sku_id"),
        pl.coalesce(
            col_or_null(table, "location.region"), col_or_null(table, "location.location")
        ).alias("region"),
        pl.coalesce(pricing_unit, col_or_null(table, "usage.unit")).alias("pricing_unit"),
        pricing_unit.is_not_null().alias("_priced"),
        _tags_expr(table).alias("tags"),
        text(pl.col(cols["currency"])).str.to_uppercase().alias("currency"),
        pl.col(LINE),
    ).with_columns(
        billing_period=period,
        usage_date=usage.dt.date(),
        charge_category=category,
        billed_cost=billed,
        effective_cost=billed,
        list_cost=pl.coalesce(list_cost, billed),
        _amount=amount,
        _priced_amount=priced,
    )
    # The unit and the quantity go together: amount_in_pricing_units is in pricing_unit,
    # usage.amount in usage.unit.
    out = out.with_columns(
        quantity=pl.when(pl.col("_priced") & pl.col("_priced_amount").is_not_null())
        .then(pl.col("_priced_amount"))
        .otherwise(pl.col("_amount"))
        .fill_null(0)
    )
    out = finish(out)
    credits = _credit_rows(table, out)
    if credits is not None:
        out = pl.concat([out, credits]).sort(LINE, maintain_order=True)
    return ParsedCharges(format=FORMAT, frame=out, tag_parser=parse_tags)


def _credit_rows(table: SourceTable, charges: pl.DataFrame) -> pl.DataFrame | None:
    """One ``Credit`` row per entry of ``credits``, keyed to its parent line."""
    column = optional_column(table, "credits")
    if column is None:
        return None
    amounts = (
        table.frame.select(
            pl.col(LINE),
            text(pl.col(column))
            .str.extract_all(_CREDIT_AMOUNT)
            .list.eval(pl.element().str.extract(_CREDIT_AMOUNT, 1))
            .alias(column),
        )
        .explode(column)
        .filter(pl.col(column).is_not_null())
    )
    if amounts.height == 0:
        return None
    credit = parse_decimal(table, amounts, column, required=False, default_zero=False)
    amounts = amounts.with_columns(credit.alias("_credit")).filter(pl.col("_credit").is_not_null())
    parents = charges.drop("billed_cost", "effective_cost", "list_cost", "quantity")
    rows = amounts.select(LINE, "_credit").join(parents, on=LINE, how="inner")
    rows = rows.with_columns(
        charge_category=pl.lit("Credit"),
        billed_cost=pl.col("_credit"),
        effective_cost=pl.col("_credit"),
        list_cost=pl.col("_credit"),
        quantity=pl.lit(0).cast(DECIMAL),
    )
    return finish(rows)
