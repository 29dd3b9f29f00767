"""Azure Cost Management exports (EA and MCA; actual or amortised cost) into the charge shape.

EA exports use PascalCase headers (``CostInBillingCurrency``, ``BillingCurrency``), MCA and
newer exports camelCase (``costInBillingCurrency``); columns are looked up case-insensitively.
Azure's FOCUS exports are handled by the FOCUS adapter, not this one. Whether the file is the
actual or the amortised view is the export's choice: billed and effective cost are both the
cost as exported (never add an actual and an amortised file together).
"""

from __future__ import annotations

import polars as pl

from costs.sources.base import (
    LINE,
    ParsedCharges,
    SourceTable,
    finish,
    map_charge_category,
    month_start,
    optional_column,
    parse_datetime,
    parse_decimal,
    parse_json_tags,
    require_columns,
    text,
)

FORMAT = "azure-export"

REQUIRED = ("BillingAccountId", "Date", "ChargeType")
COST_COLUMNS = ("CostInBillingCurrency", "Cost")
CURRENCY_COLUMNS = ("BillingCurrency", "BillingCurrencyCode")

CATEGORY_MAP = {
    "Usage": "Usage",
    "Purchase": "Purchase",
    "Refund": "Credit",
    "UnusedReservation": "Usage",
    "UnusedSavingsPlan": "Usage",
    "RoundingAdjustment": "Adjustment",
    "Tax": "Tax",
}


def matches(columns: set[str]) -> bool:
    """True when the lower-cased header looks like an Azure cost export (not FOCUS)."""
    return (
        {"billingaccountid", "date", "chargetype"} <= columns
        and any(c.lower() in columns for c in COST_COLUMNS)
        and "billedcost" not in columns
    )


def _first_of(table: SourceTable, *candidates: str) -> pl.Expr:
    """Per line, the first non-empty value among the candidate columns the file has."""
    present = []
    for candidate in candidates:
        name = optional_column(table, candidate)
        if name is not None:
            present.append(text(pl.col(name)))
    if not present:
        return pl.lit(None, dtype=pl.String)
    return pl.coalesce(present) if len(present) > 1 else present[0]


def _one_of(table: SourceTable, candidates: tuple[str, ...]) -> str:
    name = optional_column(table, *candidates)
    if name is None:
        raise table.error(
            f"missing required column {' or '.join(candidates)}",
            line=1,
            hint="an Azure cost export must have these columns; check the export is complete",
        )
    return name


def parse(table: SourceTable) -> ParsedCharges:
    cols = require_columns(table, REQUIRED, fmt="Azure cost export")
    cost_col = _one_of(table, COST_COLUMNS)
    currency_col = _one_of(table, CURRENCY_COLUMNS)
    frame = table.frame

    billed = parse_decimal(table, frame, cost_col, required=True)
    quantity_col = optional_column(table, "Quantity")
    quantity = parse_decimal(table, frame, quantity_col, required=False)
    payg_col = optional_column(table, "PayGPrice")
    payg = parse_decimal(table, frame, payg_col, required=False, default_zero=False)
    usage = parse_datetime(table, frame, cols["Date"])
    period_col = optional_column(table, "BillingPeriodStartDate")
    period = (
        parse_datetime(table, frame, period_col, required=False, as_written=True)
        if period_col
        else usage
    )
    category = map_charge_category(table, frame, cols["ChargeType"], CATEGORY_MAP)

    out = frame.select(
        pl.lit("Microsoft").alias("provider"),
        text(pl.col(cols["BillingAccountId"])).alias("billing_account_id"),
        _first_of(table, "BillingAccountName").alias("billing_account_name"),
        _first_of(table, "SubscriptionId", "SubscriptionGuid").alias("sub_account_id"),
        _first_of(table, "SubscriptionName").alias("sub_account_name"),
        _first_of(table, "MeterCategory", "ConsumedService", "ServiceName").alias("service_name"),
        _first_of(table, "ServiceFamily").alias("service_category"),
        _first_of(table, "ResourceId", "InstanceName", "InstanceId").alias("resource_id"),
        _first_of(table, "ResourceName").alias("resource_name"),
        _first_of(table, "MeterId", "PartNumber", "ProductId").alias("sku_id"),
        # Azure spells one location several ways (EastUS2, eastus2); the name is not
        # case-sensitive, so it is lower-cased. MeterRegion ("UK South") is the fallback.
        pl.coalesce(
            _first_of(table, "ResourceLocation").str.to_lowercase(),
            _first_of(table, "MeterRegion"),
        ).alias("region"),
        _first_of(table, "UnitOfMeasure").alias("pricing_unit"),
        _first_of(table, "Tags").alias("tags"),
        text(pl.col(currency_col)).str.to_uppercase().alias("currency"),
        pl.col(LINE),
    ).with_columns(
        # A line without its own billing period (rare) belongs to its usage month.
        billing_period=month_start(pl.coalesce(period, usage)),
        usage_date=usage.dt.date(),
        charge_category=category,
        billed_cost=billed,
        effective_cost=billed,
        quantity=quantity,
        _payg=payg,
    )
    # List cost is the pay-as-you-go price times the quantity for usage. Reservation and
    # savings plan purchases, refunds, tax and rounding carry PayGPrice 0: their list cost
    # is what was billed.
    if payg_col is not None and quantity_col is not None:
        list_cost = (
            pl.when(
                (pl.col("charge_category") == "Usage")
                & pl.col("_payg").is_not_null()
                & (pl.col("_payg") != 0)
            )
            .then((pl.col("_payg") * pl.col("quantity")).cast(billed.dtype))
            .otherwise(pl.col("billed_cost"))
        )
    else:
        list_cost = pl.col("billed_cost")
    out = out.with_columns(list_cost=list_cost)
    return ParsedCharges(format=FORMAT, frame=finish(out), tag_parser=parse_json_tags)
