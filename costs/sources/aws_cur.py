"""AWS Cost and Usage Reports (legacy CUR and CUR 2.0 / Data Exports) into the charge shape.

Legacy CUR headers (``lineItem/UnblendedCost``) and CUR 2.0 headers
(``line_item_unblended_cost``) are both normalised with ``snake_case`` so one mapping serves
both. Billed cost is the unblended (invoice) cost; effective cost is the amortised cost
rebuilt with AWS's documented formula from the reservation and Savings Plan columns.
"""

from __future__ import annotations

import json

import polars as pl

from costs.sources.base import (
    DECIMAL,
    LINE,
    ParsedCharges,
    SourceTable,
    finish,
    map_charge_category,
    month_start,
    parse_datetime,
    parse_decimal,
    parse_key_values,
    snake_case,
    text,
)

FORMAT = "aws-cur"

SIGNATURE = ("lineitem/unblendedcost", "line_item_unblended_cost")

# snake_case name -> how the legacy CUR header spells it (for messages).
REQUIRED = {
    "line_item_unblended_cost": "lineItem/UnblendedCost",
    "line_item_line_item_type": "lineItem/LineItemType",
    "line_item_currency_code": "lineItem/CurrencyCode",
    "bill_payer_account_id": "bill/PayerAccountId",
    "bill_billing_period_start_date": "bill/BillingPeriodStartDate",
}

CATEGORY_MAP = {
    "Usage": "Usage",
    "DiscountedUsage": "Usage",
    "SavingsPlanCoveredUsage": "Usage",
    "SavingsPlanNegation": "Usage",
    "RIFee": "Purchase",
    "Fee": "Purchase",
    "SavingsPlanRecurringFee": "Purchase",
    "SavingsPlanUpfrontFee": "Purchase",
    "Credit": "Credit",
    "Refund": "Credit",
    "Discount": "Credit",
    "BundledDiscount": "Credit",
    "EdpDiscount": "Credit",
    "PrivateRateDiscount": "Credit",
    "SppDiscount": "Credit",
    "DistributorDiscount": "Credit",
    "Tax": "Tax",
}

# Amortisation inputs; a file without them (no RIs, no Savings Plans) counts them as 0.
AMORTISATION = (
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
    "reservation_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
)

# CUR 2.0 map columns (JSON text in CSV; key/value lists once read from Parquet).
RESOURCE_TAGS_MAP = "resource_tags"
COST_CATEGORY_MAP = "cost_category"
PRODUCT_MAP = "product"


def matches(columns: set[str]) -> bool:
    """True when the lower-cased header looks like a CUR (legacy or 2.0)."""
    return any(name in columns for name in SIGNATURE)


# Column families of a CUR that this adapter reads only a few of; any other column (tags,
# cost categories, maps) is read in full.
_SKIPPED_FAMILIES = (
    "bill_",
    "identity_",
    "line_item_",
    "pricing_",
    "product_",
    "reservation_",
    "savings_plan_",
)
_USED = frozenset(
    {
        *REQUIRED,
        *AMORTISATION,
        "bill_payer_account_name",
        "identity_time_interval",
        "line_item_availability_zone",
        "line_item_product_code",
        "line_item_resource_id",
        "line_item_usage_account_id",
        "line_item_usage_account_name",
        "line_item_usage_amount",
        "line_item_usage_start_date",
        "pricing_public_on_demand_cost",
        "pricing_unit",
        "product_location",
        "product_product_family",
        "product_product_name",
        "product_region",
        "product_region_code",
        "product_sku",
        "reservation_reservation_arn",
        "reservation_reservation_a_r_n",
    }
)


def wanted(header: list[str]) -> list[str]:
    """A CUR has up to 200+ columns; read the ones used and every tag-like one."""
    out = []
    for name in header:
        snake = snake_case(name)
        if snake in _USED or not snake.startswith(_SKIPPED_FAMILIES):
            out.append(name)
    return out


def _normalised_columns(table: SourceTable) -> tuple[dict[str, str], list[str]]:
    """snake_case name -> header as written (first wins), and the malformed headers."""
    columns: dict[str, str] = {}
    malformed = [header for header in table.header if header.count("/") > 1]
    for header in table.frame.columns:
        if header == LINE or header.count("/") > 1:
            continue
        columns.setdefault(snake_case(header), header)
    return columns, malformed


def _tag_columns(table: SourceTable) -> dict[str, str]:
    """Tag key -> header, for per-tag columns (legacy CSV ``resourceTags/user:team`` and
    ``costCategory/X``; legacy Parquet ``resource_tags_user_team``)."""
    tags: dict[str, str] = {}
    for header in table.frame.columns:
        lower = header.lower()
        if header.count("/") > 1 or lower.startswith("notags/"):
            continue
        if lower.startswith("resourcetags/"):
            key = header.split("/", 1)[1]
        elif lower.startswith("costcategory/"):
            key = "costCategory/" + header.split("/", 1)[1]
        elif "/" in header:
            continue
        elif (snake := snake_case(header)).startswith("resource_tags_"):
            key = snake.removeprefix("resource_tags_")
            for prefix in ("user", "aws"):
                if key.startswith(prefix + "_"):
                    key = f"{prefix}:{key[len(prefix) + 1 :]}"
                    break
        elif snake.startswith("cost_category_"):
            key = "costCategory/" + snake.removeprefix("cost_category_")
        else:
            continue
        if key.strip():
            tags.setdefault(key, header)
    return tags


def parse_tags(raw: str) -> dict[str, str]:
    """The per-row tags text built by :func:`parse`; empty values are dropped."""
    value = json.loads(raw) if raw else {}
    tags = {str(k): str(v) for k, v in (value.get("columns") or {}).items() if v not in (None, "")}
    for key, tag in parse_key_values(value.get("resource_tags")).items():
        tags.setdefault(key.removeprefix("user_"), tag)
    for key, tag in parse_key_values(value.get("cost_category")).items():
        tags.setdefault(f"costCategory/{key}", tag)
    return tags


def _tags_expr(table: SourceTable, columns: dict[str, str]) -> pl.Expr:
    tag_columns = _tag_columns(table)
    parts = []
    if tag_columns:
        parts.append(
            pl.struct(text(pl.col(h)).alias(k) for k, h in tag_columns.items()).alias("columns")
        )
    for name in (RESOURCE_TAGS_MAP, COST_CATEGORY_MAP):
        if name in columns:
            parts.append(text(pl.col(columns[name])).alias(name))
    if not parts:
        return pl.lit(None, dtype=pl.String)
    return pl.struct(parts).struct.json_encode()


def parse(table: SourceTable) -> ParsedCharges:
    columns, malformed = _normalised_columns(table)
    missing = [legacy for snake, legacy in REQUIRED.items() if snake not in columns]
    if missing:
        raise table.error(
            f"missing required column{'s' if len(missing) > 1 else ''} "
            + ", ".join(f"{m} ({snake_case(m)})" for m in missing),
            line=1,
            hint="an AWS CUR must have these columns; check the report definition",
        )
    warnings = []
    if malformed:
        warnings.append(
            f"{table.name}: ignored malformed column(s) with more than one '/': "
            + ", ".join(malformed[:10])
            + (" …" if len(malformed) > 10 else "")
        )
    frame = table.frame

    def col(*names: str) -> pl.Expr:
        """The first of ``names`` the file has, as trimmed text (null if none)."""
        present = [text(pl.col(columns[n])) for n in names if n in columns]
        if not present:
            return pl.lit(None, dtype=pl.String)
        return pl.coalesce(present) if len(present) > 1 else present[0]

    def amount(name: str, *, required: bool = False, default_zero: bool = True) -> pl.Series:
        return parse_decimal(
            table, frame, columns.get(name), required=required, default_zero=default_zero
        )

    billed = amount("line_item_unblended_cost", required=True)
    list_cost = amount("pricing_public_on_demand_cost", default_zero=False)
    quantity = amount("line_item_usage_amount")
    amortisation = {name: amount(name) for name in AMORTISATION}
    category = map_charge_category(table, frame, columns["line_item_line_item_type"], CATEGORY_MAP)
    period = parse_datetime(
        table, frame, columns["bill_billing_period_start_date"], as_written=True
    )
    usage = _usage_start(table, columns)

    region_from_zone = col("line_item_availability_zone").str.extract(r"^(.*\d)[a-z]$", 1)
    product_name = col("product_product_name")
    if PRODUCT_MAP in columns:
        from_map = text(pl.col(columns[PRODUCT_MAP])).str.extract(
            r"""["']product_name["']\s*:\s*["']([^"']*)["']""", 1
        )
        product_name = pl.coalesce(product_name, text(from_map))
    reservation_arn = col("reservation_reservation_arn", "reservation_reservation_a_r_n")

    out = frame.select(
        pl.lit("AWS").alias("provider"),
        col("bill_payer_account_id").alias("billing_account_id"),
        col("bill_payer_account_name").alias("billing_account_name"),
        col("line_item_usage_account_id").alias("sub_account_id"),
        col("line_item_usage_account_name").alias("sub_account_name"),
        pl.coalesce(product_name, col("line_item_product_code")).alias("service_name"),
        col("product_product_family").alias("service_category"),
        col("line_item_resource_id").alias("resource_id"),
        pl.lit(None, dtype=pl.String).alias("resource_name"),
        col("product_sku").alias("sku_id"),
        pl.coalesce(
            col("product_region_code", "product_region"), region_from_zone, col("product_location")
        ).alias("region"),
        col("pricing_unit").alias("pricing_unit"),
        _tags_expr(table, columns).alias("tags"),
        col("line_item_currency_code").str.to_uppercase().alias("currency"),
        col("line_item_line_item_type").str.to_lowercase().alias("_type"),
        reservation_arn.is_not_null().alias("_reserved"),
        pl.col(LINE),
    ).with_columns(
        billing_period=month_start(period),
        usage_date=usage.dt.date(),
        charge_category=category,
        billed_cost=billed,
        list_cost=pl.coalesce(list_cost, billed),
        quantity=quantity,
        **amortisation,
    )
    out = out.with_columns(effective_cost=_effective_cost())
    return ParsedCharges(format=FORMAT, frame=finish(out), tag_parser=parse_tags, warnings=warnings)


def _effective_cost() -> pl.Expr:
    """Amortised cost per line item type (AWS CUR 'amortized cost' definition)."""
    kind = pl.col("_type")
    zero = pl.lit(0).cast(DECIMAL)
    return (
        pl.when(kind == "savingsplancoveredusage")
        .then(pl.col("savings_plan_savings_plan_effective_cost"))
        .when(kind == "savingsplanrecurringfee")
        .then(
            pl.col("savings_plan_total_commitment_to_date") - pl.col("savings_plan_used_commitment")
        )
        .when(kind.is_in(["savingsplannegation", "savingsplanupfrontfee"]))
        .then(zero)
        .when(kind == "discountedusage")
        .then(pl.col("reservation_effective_cost"))
        .when(kind == "rifee")
        .then(
            pl.col("reservation_unused_amortized_upfront_fee_for_billing_period")
            + pl.col("reservation_unused_recurring_fee")
        )
        .when((kind == "fee") & pl.col("_reserved"))
        .then(zero)
        .otherwise(pl.col("billed_cost"))
        .cast(DECIMAL)
    )


def _usage_start(table: SourceTable, columns: dict[str, str]) -> pl.Series:
    """Start of ``identity/TimeInterval`` where present, else ``lineItem/UsageStartDate``.

    Some CURs carry the month start in UsageStartDate on every line while TimeInterval is
    the real hour (see shared/data/billing/README.md), so the interval wins.
    """
    frame = table.frame
    interval_col = columns.get("identity_time_interval")
    start_col = columns.get("line_item_usage_start_date")
    if interval_col is None and start_col is None:
        raise table.error(
            "missing required column lineItem/UsageStartDate (line_item_usage_start_date)",
            line=1,
            hint="an AWS CUR needs identity/TimeInterval or lineItem/UsageStartDate",
        )
    candidates = []
    if interval_col is not None:
        starts = frame.with_columns(
            text(pl.col(interval_col)).str.split("/").list.first().alias(interval_col)
        )
        candidates.append(parse_datetime(table, starts, interval_col, required=False))
    if start_col is not None:
        candidates.append(parse_datetime(table, frame, start_col, required=False))
    usage = frame.select(pl.coalesce(candidates).alias("usage")).to_series()
    missing = frame.filter(usage.is_null()).head(1)
    if missing.height:
        raise table.error(
            "empty usage start",
            line=int(missing[LINE][0]),
            column=start_col or interval_col,
            hint="every line needs identity/TimeInterval or lineItem/UsageStartDate",
        )
    return usage
