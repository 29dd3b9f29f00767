"""FOCUS 1.0-1.2 exports (any provider) into the internal charge shape."""

from __future__ import annotations

import polars as pl

from costs.sources.base import (
    LINE,
    ParsedCharges,
    SourceTable,
    col_or_null,
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

FORMAT = "focus"

# The columns of each FOCUS release (see shared/data/billing/focus_columns.md).
COLUMNS_1_0: tuple[str, ...] = (
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
)
ADDED_IN_1_1: tuple[str, ...] = (
    "CapacityReservationId",
    "CapacityReservationStatus",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountUnit",
    "ServiceSubcategory",
    "SkuMeter",
    "SkuPriceDetails",
)
ADDED_IN_1_2: tuple[str, ...] = (
    "BillingAccountType",
    "InvoiceId",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "SubAccountType",
)
KNOWN_COLUMNS = frozenset(c.lower() for c in (*COLUMNS_1_0, *ADDED_IN_1_1, *ADDED_IN_1_2))
REQUIRED = (
    "BilledCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargePeriodStart",
)
# Enough to recognise FOCUS even when a required column (say BilledCost) is missing, so the
# error names that column instead of "unknown format".
SIGNATURE = frozenset({"chargeperiodstart", "billingcurrency", "chargecategory"})

CATEGORY_MAP = {c: c for c in ("Usage", "Purchase", "Tax", "Credit", "Adjustment")}


# The columns this adapter reads; the rest of a FOCUS file is left on disk.
USED = frozenset(
    c.lower()
    for c in (
        *REQUIRED,
        "EffectiveCost",
        "ListCost",
        "ConsumedQuantity",
        "PricingQuantity",
        "ProviderName",
        "BillingAccountName",
        "SubAccountId",
        "SubAccountName",
        "ServiceName",
        "ServiceCategory",
        "ResourceId",
        "ResourceName",
        "SkuId",
        "RegionId",
        "RegionName",
        "AvailabilityZone",
        "PricingUnit",
        "ConsumedUnit",
        "Tags",
    )
)


def wanted(header: list[str]) -> list[str]:
    return [c for c in header if c.lower() in USED]


def matches(columns: set[str]) -> bool:
    """True when the lower-cased header looks like FOCUS."""
    return columns >= SIGNATURE


def parse(table: SourceTable) -> ParsedCharges:
    cols = require_columns(table, REQUIRED, fmt="FOCUS")
    frame = table.frame
    warnings = []
    unknown = [
        c for c in table.header if c.lower() not in KNOWN_COLUMNS and not c.lower().startswith("x_")
    ]
    if unknown:
        warnings.append(
            f"{table.name}: ignored {len(unknown)} column(s) that are not FOCUS: "
            + ", ".join(unknown[:10])
            + (" …" if len(unknown) > 10 else "")
        )

    billed = parse_decimal(table, frame, cols["BilledCost"], required=True)
    effective_col = optional_column(table, "EffectiveCost")
    effective = parse_decimal(table, frame, effective_col, required=False, default_zero=False)
    list_cost = parse_decimal(
        table, frame, optional_column(table, "ListCost"), required=False, default_zero=False
    )
    quantity = parse_decimal(
        table, frame, optional_column(table, "ConsumedQuantity", "PricingQuantity"), required=False
    )
    period = parse_datetime(table, frame, cols["BillingPeriodStart"], as_written=True)
    charge_start = parse_datetime(table, frame, cols["ChargePeriodStart"])
    category = map_charge_category(table, frame, cols["ChargeCategory"], CATEGORY_MAP)

    out = frame.select(
        col_or_null(table, "ProviderName").alias("provider"),
        text(pl.col(cols["BillingAccountId"])).alias("billing_account_id"),
        col_or_null(table, "BillingAccountName").alias("billing_account_name"),
        col_or_null(table, "SubAccountId").alias("sub_account_id"),
        col_or_null(table, "SubAccountName").alias("sub_account_name"),
        col_or_null(table, "ServiceName").alias("service_name"),
        col_or_null(table, "ServiceCategory").alias("service_category"),
        col_or_null(table, "ResourceId").alias("resource_id"),
        col_or_null(table, "ResourceName").alias("resource_name"),
        col_or_null(table, "SkuId").alias("sku_id"),
        col_or_null(table, "RegionId", "RegionName", "AvailabilityZone").alias("region"),
        col_or_null(table, "PricingUnit", "ConsumedUnit").alias("pricing_unit"),
        col_or_null(table, "Tags").alias("tags"),
        text(pl.col(cols["BillingCurrency"])).str.to_uppercase().alias("currency"),
        pl.col(LINE),
    ).with_columns(
        billing_period=month_start(period),
        usage_date=charge_start.dt.date(),
        charge_category=category,
        billed_cost=billed,
        # FOCUS requires EffectiveCost and ListCost; when a file leaves them empty the billed
        # amount is the best statement of both.
        effective_cost=pl.coalesce(effective, billed),
        list_cost=pl.coalesce(list_cost, billed),
        quantity=quantity,
    )
    return ParsedCharges(
        format=FORMAT, frame=finish(out), tag_parser=parse_json_tags, warnings=warnings
    )
