"""The internal charge shape every billing adapter produces, and the column helpers they share.

An adapter turns one external file shape into a polars frame with exactly the columns of
``CHARGE_SCHEMA``, one row per source line (or more, where a line carries credits). It knows
nothing about the database. Bad values raise :class:`BillingFileError` naming file, line and
column; the helpers here find the first bad line with vectorised checks, so no adapter loops
over rows in Python.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from governance.exceptions import DomainError

# Precision used while parsing and summing; storage keeps 10 decimal places.
DECIMAL = pl.Decimal(38, 18)
LINE = "_line"

CHARGE_SCHEMA: dict[str, pl.DataType] = {
    "provider": pl.String(),
    "billing_account_id": pl.String(),
    "billing_account_name": pl.String(),
    "sub_account_id": pl.String(),
    "sub_account_name": pl.String(),
    "billing_period": pl.Date(),
    "usage_date": pl.Date(),
    "charge_category": pl.String(),
    "service_name": pl.String(),
    "service_category": pl.String(),
    "resource_id": pl.String(),
    "resource_name": pl.String(),
    "sku_id": pl.String(),
    "region": pl.String(),
    "pricing_unit": pl.String(),
    "tags": pl.String(),
    "currency": pl.String(),
    "billed_cost": DECIMAL,
    "effective_cost": DECIMAL,
    "list_cost": DECIMAL,
    "quantity": DECIMAL,
    LINE: pl.Int64(),
}

CHARGE_CATEGORIES = ("Usage", "Purchase", "Tax", "Credit", "Adjustment")

# Longest text each column may hold once stored (the CostRow fields' max_length).
TEXT_LIMITS = {
    "provider": 64,
    "billing_account_id": 128,
    "billing_account_name": 255,
    "sub_account_id": 128,
    "sub_account_name": 255,
    "service_name": 255,
    "service_category": 128,
    "resource_id": 1024,
    "resource_name": 512,
    "sku_id": 255,
    "region": 64,
    "pricing_unit": 64,
}
# Amounts are stored with 14 digits before the point; refuse what would not fit.
AMOUNT_LIMIT = 10**13

TagParser = Callable[[str], dict[str, str]]


class BillingFileError(DomainError):
    """A billing file that cannot be imported; says where and how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        file: str,
        line: int | None = None,
        column: str | None = None,
        hint: str = "",
    ) -> None:
        where = file
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        text = f"{where}: {message}"
        if hint:
            text += f" — {hint}"
        super().__init__(text)
        self.file = file
        self.line = line
        self.column = column


@dataclass
class ParsedCharges:
    """What an adapter hands to the importer."""

    format: str
    frame: pl.DataFrame
    tag_parser: TagParser
    warnings: list[str] = field(default_factory=list)


@dataclass
class SourceTable:
    """A billing file read into memory as text columns, before any interpretation."""

    path: Path
    frame: pl.DataFrame
    first_line: int = 2
    # Every column of the file, also those not read because the adapter does not use them.
    header: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.header:
            self.header = [c for c in self.frame.columns if c != LINE]

    @property
    def name(self) -> str:
        return self.path.name

    def columns_lower(self) -> dict[str, str]:
        """Lower-cased, trimmed header -> header as written."""
        return {c.strip().lower(): c for c in self.frame.columns}

    def error(
        self, message: str, *, line: int | None = None, column: str | None = None, hint: str = ""
    ) -> BillingFileError:
        return BillingFileError(message, file=self.name, line=line, column=column, hint=hint)


_NOTHING = ["", "NULL", "null", "Null", "NONE", "None", "none", "NaN", "nan", "NAN"]


def text(expr: pl.Expr) -> pl.Expr:
    """A trimmed text value, with the spellings of 'nothing' as null."""
    stripped = expr.cast(pl.String).str.strip_chars()
    return pl.when(stripped.is_in(_NOTHING)).then(None).otherwise(stripped)


def require_columns(table: SourceTable, wanted: Iterable[str], *, fmt: str) -> dict[str, str]:
    """Map each wanted column (case-insensitive) to its header, or fail naming the missing."""
    lower = table.columns_lower()
    missing = [w for w in wanted if w.lower() not in lower]
    if missing:
        raise table.error(
            f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            line=1,
            hint=f"a {fmt} export must have these columns; check the file is complete",
        )
    return {w: lower[w.lower()] for w in wanted}


def optional_column(table: SourceTable, *candidates: str) -> str | None:
    lower = table.columns_lower()
    for candidate in candidates:
        if candidate.lower() in lower:
            return lower[candidate.lower()]
    return None


def col_or_null(table: SourceTable, *candidates: str) -> pl.Expr:
    name = optional_column(table, *candidates)
    return text(pl.col(name)) if name else pl.lit(None, dtype=pl.String)


def first_bad(frame: pl.DataFrame, bad: pl.Expr, value: pl.Expr) -> tuple[int, str] | None:
    hit = (
        frame.select(pl.col(LINE), value.alias("_value"), bad.alias("_bad"))
        .filter(pl.col("_bad"))
        .head(1)
    )
    if hit.height == 0:
        return None
    return int(hit[LINE][0]), str(hit["_value"][0])


def _check_parsed(
    table: SourceTable,
    frame: pl.DataFrame,
    raw: pl.Expr,
    parsed: pl.Expr,
    column: str,
    *,
    required: bool,
    what: str,
    hint: str,
) -> None:
    """Fail on the first line whose value did not parse, or is empty where required."""
    found = first_bad(frame, raw.is_not_null() & parsed.is_null(), raw)
    if found:
        line, value = found
        raise table.error(f"{value!r} is not {what}", line=line, column=column, hint=hint)
    if required:
        missing = first_bad(frame, raw.is_null(), pl.lit(""))
        if missing:
            raise table.error(
                f"empty value where {what} is required",
                line=missing[0],
                column=column,
                hint=hint,
            )


def parse_decimal(
    table: SourceTable,
    frame: pl.DataFrame,
    column: str | None,
    *,
    required: bool,
    default_zero: bool = True,
) -> pl.Series:
    """Parse a money or quantity column; fail on the first value that is not a number."""
    if column is None:
        return (
            pl.Series([0] * frame.height, dtype=DECIMAL)
            if default_zero
            else pl.Series([None] * frame.height, dtype=DECIMAL)
        )
    raw = text(pl.col(column))
    # Thousands separators and currency symbols are not numbers here; say so.
    parsed = raw.cast(DECIMAL, strict=False)
    _check_parsed(
        table,
        frame,
        raw,
        parsed,
        column,
        required=required,
        what="a number",
        hint="cost and quantity columns must hold plain decimal numbers (0 is fine)",
    )
    too_big = first_bad(frame, parsed.abs() >= AMOUNT_LIMIT, raw)
    if too_big:
        raise table.error(
            f"{too_big[1]!r} is too large for an amount",
            line=too_big[0],
            column=column,
            hint=f"amounts must be below {AMOUNT_LIMIT:,}; is the column in the right unit?",
        )
    result = frame.select(parsed.alias(column)).to_series()
    return result.fill_null(0) if default_zero else result


_DATETIME_FORMATS_TZ = ("%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M%:z")
_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%Y%m%d",
)


def datetime_expr(raw: pl.Expr) -> pl.Expr:
    """Parse the date/time spellings seen in billing files into naive UTC datetimes."""
    cleaned = raw.str.replace(r"(?i)(z| utc)$", "+00:00").str.replace("T", " ", literal=True)
    cleaned = cleaned.str.replace(r"([+-]\d\d)(\d\d)$", "$1:$2")
    candidates = [
        cleaned.str.strptime(pl.Datetime("us", "UTC"), fmt, strict=False)
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None)
        for fmt in _DATETIME_FORMATS_TZ
    ]
    candidates += [
        cleaned.str.strptime(pl.Datetime("us"), fmt, strict=False) for fmt in _DATETIME_FORMATS
    ]
    return pl.coalesce(candidates)


def parse_datetime(
    table: SourceTable,
    frame: pl.DataFrame,
    column: str,
    *,
    required: bool = True,
    as_written: bool = False,
) -> pl.Series:
    """Parse a date/time column to naive UTC; ``as_written`` keeps the wall-clock value.

    Billing-period starts use ``as_written``: ``2026-10-01T00:00:00+05:30`` is the October
    invoice, even though in UTC it is still the 30th of September.
    """
    # An hourly bill repeats the same few hundred timestamps; parse each distinct one once.
    values = frame.select(text(pl.col(column)).alias("raw"), pl.col(LINE))
    distinct = values.group_by("raw").agg(pl.col(LINE).min()).sort(LINE)
    source = pl.col("raw")
    if as_written:
        source = source.str.replace(r"(?i)\s*(z|utc|[+-]\d\d:?\d\d)$", "")
    distinct = distinct.with_columns(parsed=datetime_expr(source))
    _check_parsed(
        table,
        distinct,
        pl.col("raw"),
        pl.col("parsed"),
        column,
        required=required,
        what="a date",
        hint="use ISO 8601 (2024-09-01T00:00:00Z), YYYY-MM-DD HH:MM:SS or MM/DD/YYYY",
    )
    joined = values.join(
        distinct.select("raw", "parsed"),
        on="raw",
        how="left",
        nulls_equal=True,
        maintain_order="left",
    )
    return joined["parsed"].alias(column)


def month_start(dates: pl.Expr) -> pl.Expr:
    return dates.dt.truncate("1mo").cast(pl.Date)


def map_charge_category(
    table: SourceTable, frame: pl.DataFrame, column: str, mapping: dict[str, str]
) -> pl.Series:
    """Map a source's charge type (case-insensitive) to a FOCUS ChargeCategory."""
    raw = text(pl.col(column))
    lowered = {k.lower(): v for k, v in mapping.items()}
    mapped = raw.str.to_lowercase().replace_strict(lowered, default=None, return_dtype=pl.String)
    found = first_bad(frame, raw.is_null() | mapped.is_null(), raw.fill_null(""))
    if found:
        line, value = found
        known = ", ".join(sorted(set(mapping)))
        raise table.error(
            f"unknown charge type {value!r}",
            line=line,
            column=column,
            hint=f"expected one of {known}",
        )
    return frame.select(mapped.alias(column)).to_series()


def finish(frame: pl.DataFrame) -> pl.DataFrame:
    """Order and type the columns as ``CHARGE_SCHEMA``; text nulls become empty strings."""
    out = []
    for name, dtype in CHARGE_SCHEMA.items():
        expr = pl.col(name).cast(dtype)
        if dtype == pl.String() and name != "tags":
            expr = expr.fill_null("")
        out.append(expr)
    return frame.select(out)


def parse_json_tags(raw: str) -> dict[str, str]:
    """Tags as a JSON object (FOCUS, Azure FOCUS); tolerates the brace-less Azure fragment."""
    text_value = raw.strip()
    if not text_value:
        return {}
    if not text_value.startswith("{"):
        text_value = "{" + text_value + "}"
    try:
        value = json.loads(text_value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"tags are not a JSON object ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise ValueError("tags are not a JSON object")
    return {str(k): _tag_text(v) for k, v in value.items()}


def _tag_text(value: object) -> str:
    """A tag value as text: strings as they are, anything else as its JSON spelling."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def parse_key_values(raw: str | None) -> dict[str, str]:
    """Labels or a tag map as JSON or a Python literal: an object, or a list of {key, value}.

    GCP writes labels as Python-style lists in its CSV export and as JSON in JSONL; CUR 2.0
    maps arrive as JSON objects (CSV) or key/value lists (Parquet). Empty values are dropped.
    """
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError) as exc:
            raise ValueError("neither a JSON object nor a list of {key, value}") from exc
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list | tuple):
        try:
            pairs = [(item["key"], item.get("value")) for item in value]
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError("a list of tags must hold {key, value} objects") from exc
    else:
        raise ValueError("tags must be an object or a list of {key, value} objects")
    return {str(k): str(v) for k, v in pairs if v is not None and str(v) != ""}


_SNAKE_1 = re.compile(r"(.)([A-Z][a-z]+)")
_SNAKE_2 = re.compile(r"([a-z0-9])([A-Z])")


def snake_case(name: str) -> str:
    """``lineItem/UnblendedCost`` -> ``line_item_unblended_cost`` (the CUR 2.0 spelling)."""
    name = name.strip().replace("/", "_").replace(" ", "_").replace(".", "_")
    name = _SNAKE_1.sub(r"\1_\2", name)
    name = _SNAKE_2.sub(r"\1_\2", name)
    return re.sub(r"_+", "_", name).lower()
