"""The GCP billing export read in BigQuery: the daily query, and its rows as export JSONL.

BigQuery aggregates where the data lives: one query per invoice month sums the export's
hourly lines to one row per usage day (UTC), project, service, SKU, location, label set, cost
type and currency. Its rows are written back in the shape of the standard export's JSONL, so
``costs.sources.gcp_export`` imports them exactly as it imports a downloaded export, and the
import replaces the (gcp-export, billing account, invoice month) slice.

Money stays exact: the export's FLOAT64 amounts are cast to NUMERIC line by line before
summing (BigQuery's advice for money; NUMERIC keeps nine decimals), arrive as decimal
strings, and are written as JSON strings, which the importer reads without going through
binary floats.

Credits are summed per group and credit (type, name), credits that cancel out are dropped,
and they come back as the row's repeated ``credits``: the importer makes each entry a
``Credit`` row of its parent line, so the net cost (cost + credits) is kept, with the
line's labels, and the types stay readable in the file. Labels are kept as JSON text, never
unnested beside the credits, which would multiply the rows and count the credits twice.
``@label_keys`` keeps only the account's cost allocation label keys when it names some.

Pure: no Django, no Google client; the sync adapter runs the query and imports the file.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

# BigQuery table names as the account stores them: project.dataset.table. Backticks quote the
# name in the SQL; nothing else the user wrote reaches the query text.
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

DAILY_QUERY = """\
WITH lines AS (
  SELECT
    DATE(usage_start_time) AS usage_date,
    project.id AS project_id,
    project.name AS project_name,
    TO_JSON_STRING(ARRAY(
      SELECT AS STRUCT l.key, l.value FROM UNNEST(project.labels) AS l
      WHERE ARRAY_LENGTH(@label_keys) = 0 OR l.key IN UNNEST(@label_keys)
      ORDER BY l.key, l.value
    )) AS project_labels,
    service.id AS service_id,
    service.description AS service_description,
    sku.id AS sku_id,
    sku.description AS sku_description,
    location.region AS region,
    location.location AS location,
    TO_JSON_STRING(ARRAY(
      SELECT AS STRUCT l.key, l.value FROM UNNEST(labels) AS l
      WHERE ARRAY_LENGTH(@label_keys) = 0 OR l.key IN UNNEST(@label_keys)
      ORDER BY l.key, l.value
    )) AS labels,
    cost_type,
    currency,
    usage.unit AS usage_unit,
    usage.pricing_unit AS pricing_unit,
    CAST(cost AS NUMERIC) AS cost,
    CAST(cost_at_list AS NUMERIC) AS cost_at_list,
    CAST(usage.amount AS NUMERIC) AS usage_amount,
    CAST(usage.amount_in_pricing_units AS NUMERIC) AS usage_amount_in_pricing_units,
    credits
  FROM {table}
  WHERE invoice.month = @invoice_month
    AND billing_account_id = @billing_account_id
),
daily AS (
  SELECT
    usage_date,
    project_id,
    ANY_VALUE(project_name) AS project_name,
    project_labels,
    service_id,
    ANY_VALUE(service_description) AS service_description,
    sku_id,
    ANY_VALUE(sku_description) AS sku_description,
    region,
    location,
    labels,
    cost_type,
    currency,
    usage_unit,
    pricing_unit,
    SUM(cost) AS cost,
    SUM(cost_at_list) AS cost_at_list,
    SUM(usage_amount) AS usage_amount,
    SUM(usage_amount_in_pricing_units) AS usage_amount_in_pricing_units,
    COUNT(*) AS export_lines,
    ARRAY_CONCAT_AGG(credits) AS all_credits
  FROM lines
  GROUP BY usage_date, project_id, project_labels, service_id, sku_id, region, location,
    labels, cost_type, currency, usage_unit, pricing_unit
)
SELECT
  * EXCEPT (all_credits),
  ARRAY(
    SELECT AS STRUCT c.type AS type, c.name AS name, SUM(CAST(c.amount AS NUMERIC)) AS amount
    FROM UNNEST(all_credits) AS c
    GROUP BY c.type, c.name
    ORDER BY c.type, c.name
  ) AS credits
FROM daily
ORDER BY usage_date, project_id, service_id, sku_id, region, labels, cost_type
"""

# The columns the query returns: (name, BigQuery type, mode). Credits are a repeated record
# of (type STRING, name STRING, amount NUMERIC).
RESULT_SCHEMA: tuple[tuple[str, str, str], ...] = (
    ("usage_date", "DATE", "NULLABLE"),
    ("project_id", "STRING", "NULLABLE"),
    ("project_name", "STRING", "NULLABLE"),
    ("project_labels", "STRING", "NULLABLE"),
    ("service_id", "STRING", "NULLABLE"),
    ("service_description", "STRING", "NULLABLE"),
    ("sku_id", "STRING", "NULLABLE"),
    ("sku_description", "STRING", "NULLABLE"),
    ("region", "STRING", "NULLABLE"),
    ("location", "STRING", "NULLABLE"),
    ("labels", "STRING", "NULLABLE"),
    ("cost_type", "STRING", "NULLABLE"),
    ("currency", "STRING", "NULLABLE"),
    ("usage_unit", "STRING", "NULLABLE"),
    ("pricing_unit", "STRING", "NULLABLE"),
    ("cost", "NUMERIC", "NULLABLE"),
    ("cost_at_list", "NUMERIC", "NULLABLE"),
    ("usage_amount", "NUMERIC", "NULLABLE"),
    ("usage_amount_in_pricing_units", "NUMERIC", "NULLABLE"),
    ("export_lines", "INTEGER", "NULLABLE"),
    ("credits", "RECORD", "REPEATED"),
)
CREDIT_SCHEMA: tuple[tuple[str, str, str], ...] = (
    ("type", "STRING", "NULLABLE"),
    ("name", "STRING", "NULLABLE"),
    ("amount", "NUMERIC", "NULLABLE"),
)


def table_reference(name: str) -> str:
    """The account's ``project.dataset.table`` as a quoted SQL identifier; ValueError if the
    name holds anything a table name cannot."""
    name = name.strip()
    parts = name.split(".")
    if not _TABLE_NAME.fullmatch(name) or len(parts) != 3 or not all(parts):
        raise ValueError(
            f"{name!r} is not a BigQuery table name; give the billing export table as "
            "project.dataset.gcp_billing_export_v1_XXXXXX_XXXXXX_XXXXXX"
        )
    return f"`{name}`"


def daily_query(table: str) -> str:
    """The aggregated daily query over ``table`` (a name checked by ``table_reference``).

    Parameters: ``@invoice_month`` (STRING, YYYYMM), ``@billing_account_id`` (STRING) and
    ``@label_keys`` (ARRAY<STRING>: the label keys to keep; empty keeps every label).
    """
    return DAILY_QUERY.format(table=table_reference(table))


def invoice_months(start: dt.date, end: dt.date) -> list[str]:
    """The invoice months (YYYYMM) that the half-open day range [start, end) touches."""
    if end <= start:
        return []
    last = end - dt.timedelta(days=1)
    months = []
    year, month = start.year, start.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def _amount(value: Any) -> str | None:
    """A decimal as plain text (no exponent), or None."""
    number = _decimal(value)
    if number is None:
        return None
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _labels(raw: Any) -> list[dict[str, str]]:
    """Labels as the query returns them (JSON text of [{key, value}]) or already as a list."""
    if raw is None or raw == "":
        return []
    items = json.loads(raw) if isinstance(raw, str) else raw
    return [
        {"key": str(item["key"]), "value": "" if item.get("value") is None else str(item["value"])}
        for item in items
    ]


def _day(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _credits(raw: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for credit in raw or ():
        amount = _decimal(credit.get("amount"))
        if amount is None or amount == 0:
            continue  # credits that cancel out within the day leave nothing to show
        out.append(
            {"type": credit.get("type"), "name": credit.get("name"), "amount": _amount(amount)}
        )
    return out


def export_line(
    row: Mapping[str, Any], *, invoice_month: str, billing_account_id: str
) -> dict[str, Any]:
    """One query row as one line of the standard export's JSONL (the keys ``gcp_export``
    reads); the usage day becomes a day-long usage window starting at midnight UTC."""
    day = _day(row["usage_date"])
    return {
        "billing_account_id": billing_account_id,
        "invoice": {"month": invoice_month},
        "usage_start_time": f"{day.isoformat()} 00:00:00 UTC",
        "usage_end_time": f"{(day + dt.timedelta(days=1)).isoformat()} 00:00:00 UTC",
        "project": {
            "id": row.get("project_id"),
            "name": row.get("project_name"),
            "labels": _labels(row.get("project_labels")),
        },
        "service": {"id": row.get("service_id"), "description": row.get("service_description")},
        "sku": {"id": row.get("sku_id"), "description": row.get("sku_description")},
        "location": {"region": row.get("region"), "location": row.get("location")},
        "labels": _labels(row.get("labels")),
        "cost_type": row.get("cost_type") or "regular",
        "currency": row.get("currency"),
        "cost": _amount(row.get("cost")) or "0",
        "cost_at_list": _amount(row.get("cost_at_list")),
        "usage": {
            "amount": _amount(row.get("usage_amount")),
            "unit": row.get("usage_unit"),
            "amount_in_pricing_units": _amount(row.get("usage_amount_in_pricing_units")),
            "pricing_unit": row.get("pricing_unit"),
        },
        "credits": _credits(row.get("credits")),
    }


@dataclass
class ExportFile:
    """What one month's rows came to once written."""

    path: Path
    rows: int = 0
    export_lines: int = 0
    # Net cost (cost + credits) per currency, as the import should store it.
    net: dict[str, Decimal] = field(default_factory=dict)


def write_export(
    rows: Iterable[Mapping[str, Any]],
    *,
    path: Path,
    invoice_month: str,
    billing_account_id: str,
) -> ExportFile:
    """Write query rows to ``path`` as export JSONL; returns counts and net totals."""
    result = ExportFile(path=path)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            line = export_line(
                row, invoice_month=invoice_month, billing_account_id=billing_account_id
            )
            fh.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
            result.rows += 1
            result.export_lines += int(row.get("export_lines") or 0)
            net = Decimal(line["cost"]) + sum(Decimal(c["amount"]) for c in line["credits"])
            currency = str(line["currency"] or "")
            result.net[currency] = result.net.get(currency, Decimal(0)) + net
    return result


def query_parameters(
    *, invoice_month: str, billing_account_id: str, label_keys: Sequence[str]
) -> dict[str, Any]:
    """The values of the query's parameters (the adapter wraps them as BigQuery parameters)."""
    return {
        "invoice_month": invoice_month,
        "billing_account_id": billing_account_id,
        "label_keys": [str(k) for k in label_keys],
    }
