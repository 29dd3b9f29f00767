"""GPU-hours per pool, business unit and day as a CSV file or JSON rows. Pure: no Django.

The file is ``pool,business_unit,day,gpu_hours``: the pool's code, the business unit's code,
the UTC day written YYYY-MM-DD and the GPU-hours (0 or more, at most 3 decimals). Reading
works as for SLO measurements (``governance/slo_csv.py``): optional header, whitespace and a
UTF-8 BOM tolerated, and any bad row refuses the whole file with a message naming line and
column. Business unit codes are matched ignoring case (they are stored upper-case).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from governance.slo_csv import (
    Record,
    UsageFileError,
    cell_day,
    cell_decimal,
    cell_text,
    csv_records,
    duplicates_refuse,
    json_records,
    suggestion,
)

POOL_USAGE_COLUMNS = ("pool", "business_unit", "day", "gpu_hours")
# What PoolUsage stores: 14 digits, 3 after the point.
HOURS_PLACES = 3
HOURS_LIMIT = Decimal(10) ** 11

__all__ = [
    "POOL_USAGE_COLUMNS",
    "PoolUsageRow",
    "UsageFileError",
    "pool_usage_csv_read",
    "pool_usage_json_read",
    "pool_usage_rows_check",
]


@dataclass(frozen=True)
class PoolUsageRow:
    """One checked day of GPU-hours, ready to store."""

    pool: str
    business_unit: str
    day: date
    gpu_hours: Decimal


def pool_usage_rows_check(
    records: Iterable[Record], *, pools: Collection[str], units: Collection[str]
) -> list[PoolUsageRow]:
    """Check every record against the pool codes and unit codes there are; all or nothing."""
    records = list(records)
    by_upper = {code.upper(): code for code in units}
    rows = [_row(record, pools, by_upper) for record in records]
    duplicates_refuse(
        records,
        [(r.pool, r.business_unit, r.day) for r in rows],
        what=lambda key: f"{key[1]} on pool {key[0]} on {key[2]:%Y-%m-%d}",
    )
    return rows


def _row(record: Record, pools: Collection[str], units: dict[str, str]) -> PoolUsageRow:
    pool = cell_text(record, "pool", what="the capacity pool's code, e.g. h100-shared")
    if pool not in pools:
        raise record.error(
            "pool",
            f"no capacity pool has the code {pool!r}{suggestion(pool, pools)}; use the code "
            "of a pool defined in Capgov.",
        )
    unit = cell_text(record, "business_unit", what="the business unit's code, e.g. RES")
    if unit.upper() not in units:
        raise record.error(
            "business_unit",
            f"no business unit has the code {unit!r}{suggestion(unit, list(units.values()))}; "
            "use the code of a business unit defined in Capgov.",
        )
    return PoolUsageRow(
        pool=pool,
        business_unit=units[unit.upper()],
        day=cell_day(record),
        gpu_hours=cell_decimal(
            record,
            "gpu_hours",
            what="the GPU-hours used that day",
            places=HOURS_PLACES,
            limit=HOURS_LIMIT,
        ),
    )


def pool_usage_csv_read(
    data: str | bytes, *, pools: Collection[str], units: Collection[str]
) -> list[PoolUsageRow]:
    """A CSV file ``pool,business_unit,day,gpu_hours``, checked; raises UsageFileError."""
    records = csv_records(data, columns=POOL_USAGE_COLUMNS)
    return pool_usage_rows_check(records, pools=pools, units=units)


def pool_usage_json_read(
    items: object, *, pools: Collection[str], units: Collection[str]
) -> list[PoolUsageRow]:
    """A JSON list of ``{"pool", "business_unit", "day", "gpu_hours"}`` objects, checked."""
    records = json_records(items, columns=POOL_USAGE_COLUMNS)
    return pool_usage_rows_check(records, pools=pools, units=units)
