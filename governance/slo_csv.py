"""Daily SLO measurements as a CSV file or JSON rows, checked all or nothing. Pure: no Django.

The file is ``slo,day,value[,good,total]``: the SLO's name (its slug), the UTC day written
YYYY-MM-DD, the day's value (availability in percent, p95 latency in ms) and optionally the
good and total counts behind an availability. A header row is optional (with one, columns
may come in any order); cells may carry surrounding whitespace and the file a UTF-8 BOM.

Any bad row refuses the whole file with a :class:`UsageFileError` whose message names the
line (``row`` for JSON) and the column, and says how to fix it.

The reading helpers here (:func:`csv_records`, :func:`json_records`, the cell parsers) also
serve ``registry/pool_usage_csv.py``: the two uploads behave the same way.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

AVAILABILITY = "availability"
SLO_COLUMNS = ("slo", "day", "value")
SLO_OPTIONAL = ("good", "total")
MAX_ROWS = 200_000
FEW = 8  # name every choice in a message when there are no more than this
# What SloMeasurement stores: 12 digits, 4 after the point; counts fit a signed bigint.
VALUE_PLACES = 4
VALUE_LIMIT = Decimal(10) ** 8
COUNT_LIMIT = 2**63 - 1
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_WHOLE = re.compile(r"[0-9]+")


class UsageFileError(ValueError):
    """The whole file (or list of rows) is refused; the message says where and how to fix it."""


@dataclass(frozen=True)
class Record:
    """One row as read: where it came from ("line 4", "row 2") and its raw cells."""

    where: str
    cells: Mapping[str, object]
    column_word: str = "column"

    def error(self, column: str, problem: str) -> UsageFileError:
        return UsageFileError(f"{self.where}, {self.column_word} {column}: {problem}")


@dataclass(frozen=True)
class SloRow:
    """One checked measurement, ready to store."""

    slo: str
    day: date
    value: Decimal
    good: int | None
    total: int | None


# --- reading --------------------------------------------------------------------------------


def _text(data: str | bytes) -> str:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise UsageFileError(
                f"line {line}: the file is not UTF-8 text; save it as CSV UTF-8 and upload again."
            ) from exc
    return data.removeprefix("\ufeff")


def csv_records(
    data: str | bytes, *, columns: Sequence[str], optional: Sequence[str] = ()
) -> list[Record]:
    """The file's rows as :class:`Record`, blank lines skipped, cells stripped.

    With a header (a first row that names a column and holds no day) the columns are read
    by name; without one they are ``columns`` then ``optional``, in that order, and optional
    columns at the end of a row may be left off. Fails on a header that lacks a column or
    names an unknown one, and on a row with too few or too many cells.
    """
    known = (*columns, *optional)
    expected = ", ".join(columns) + (f"[, {', '.join(optional)}]" if optional else "")
    reader = csv.reader(io.StringIO(_text(data), newline=""), strict=True)
    header: list[str] | None = None
    records: list[Record] = []
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise UsageFileError(
                f"line {reader.line_num}: {exc}; check the quotes of that line."
            ) from exc
        where, line = f"line {line}", reader.line_num + 1
        cells = [cell.strip() for cell in cells]
        if not any(cells):
            continue
        if header is None and not records and _is_header(cells, known):
            header = [c.lower() for c in cells]
            _header_check(header, where=where, columns=columns, known=known, expected=expected)
            continue
        names = header or list(known)
        if len(cells) > len(names) and not any(cells[len(names) :]):
            cells = cells[: len(names)]  # trailing empty cells, as spreadsheets write them
        low = 1 + max(names.index(c) for c in columns)
        if not low <= len(cells) <= len(names):
            raise UsageFileError(
                f"{where}: {len(cells)} values where {_count(low, len(names))} are expected "
                f"({expected}); check for a missing or extra comma."
            )
        records.append(Record(where, dict(zip(names, cells, strict=False))))
        if len(records) > MAX_ROWS:
            raise UsageFileError(f"The file has more than {MAX_ROWS:,} rows; split it by month.")
    if not records:
        raise UsageFileError(f"The file holds no rows; give one row per line: {expected}.")
    return records


def _count(low: int, high: int) -> str:
    return str(low) if low == high else f"{low} to {high}"


def _is_header(cells: list[str], known: Sequence[str]) -> bool:
    # A data row always holds a day; a first row naming a column and holding none is a header.
    return any(c.lower() in known for c in cells) and not any(_DAY.fullmatch(c) for c in cells)


def _header_check(
    header: list[str], *, where: str, columns: Sequence[str], known: Sequence[str], expected: str
) -> None:
    unknown = [c for c in header if c not in known]
    if unknown:
        raise UsageFileError(
            f"{where}: the header names an unknown column {unknown[0]!r}; the columns are "
            f"{expected}."
        )
    doubled = sorted({c for c in header if header.count(c) > 1})
    if doubled:
        raise UsageFileError(f"{where}: the header names {doubled[0]} twice; keep one.")
    missing = [c for c in columns if c not in header]
    if missing:
        raise UsageFileError(
            f"{where}: the header has no column {missing[0]}; the columns are {expected}."
        )


def json_records(
    items: object, *, columns: Sequence[str], optional: Sequence[str] = ()
) -> list[Record]:
    """A JSON list of objects as :class:`Record` (``row 1`` is the first object)."""
    known = (*columns, *optional)
    if not isinstance(items, list):
        raise UsageFileError(
            "Send a JSON list of rows, each an object with " + ", ".join(known) + "."
        )
    if not items:
        raise UsageFileError("The list holds no rows; send at least one.")
    if len(items) > MAX_ROWS:
        raise UsageFileError(f"More than {MAX_ROWS:,} rows at once; send them in parts.")
    records = []
    for n, item in enumerate(items, start=1):
        where = f"row {n}"
        if not isinstance(item, Mapping):
            raise UsageFileError(f"{where}: not an object; give {', '.join(known)}.")
        unknown = sorted(str(k) for k in item if k not in known)
        if unknown:
            raise UsageFileError(
                f"{where}: unknown field {unknown[0]!r}; the fields are {', '.join(known)}."
            )
        missing = [c for c in columns if c not in item]
        if missing:
            raise UsageFileError(f"{where}: field {missing[0]} is missing.")
        records.append(Record(where, dict(item), column_word="field"))
    return records


# --- cells -----------------------------------------------------------------------------------


def _shown(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def cell_text(record: Record, column: str, *, what: str) -> str:
    value = record.cells.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise record.error(column, f"empty; give {what}.")
    if not isinstance(value, str):
        raise record.error(column, f"{_shown(value)} is not text; give {what}.")
    return value.strip()


def cell_day(record: Record, column: str = "day") -> date:
    value = record.cells.get(column)
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = value.strip() if isinstance(value, str) else value
    if text is None or text == "":
        raise record.error(column, "empty; give the UTC day written YYYY-MM-DD, e.g. 2026-10-05.")
    if isinstance(text, str) and _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise record.error(
        column, f"{_shown(text)} is not a date written YYYY-MM-DD (e.g. 2026-10-05)."
    )


def cell_decimal(record: Record, column: str, *, what: str, places: int, limit: Decimal) -> Decimal:
    """A number of at most ``places`` decimals, 0 or more and below ``limit``."""
    value = record.cells.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise record.error(column, f"empty; give {what}.")
    number = _number(value)
    if number is None or not number.is_finite():
        raise record.error(
            column, f"{_shown(value)} is not a number; give {what} with a point for decimals."
        )
    if number < 0:
        raise record.error(column, f"{_shown(value)} is negative; give {what}, 0 or more.")
    if number >= limit:
        raise record.error(column, f"{_shown(value)} is too large; give {what} below {limit:,}.")
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise record.error(
            column, f"{_shown(value)} has more than {places} decimal places; round it to {places}."
        )
    return number


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal | int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


def cell_count(record: Record, column: str) -> int | None:
    """A whole number of requests, or None when the cell is empty or absent."""
    value = record.cells.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        count = int(value.strip())
    else:
        raise record.error(
            column, f"{_shown(value)} is not a whole number 0 or more; {column} counts requests."
        )
    if count < 0:
        raise record.error(column, f"{count} is negative; {column} counts requests, 0 or more.")
    if count > COUNT_LIMIT:
        raise record.error(column, f"{count} is too large for a count of requests.")
    return count


def suggestion(value: str, choices: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, the choices when there are few, or nothing."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [lowered[value.lower()]] if value.lower() in lowered else []
    if close:
        return f" (did you mean {close[0]!r}?)"
    if 0 < len(choices) <= FEW:
        return f" (there are {', '.join(sorted(choices))})"
    return ""


def duplicates_refuse(
    records: Sequence[Record], keys: Sequence[tuple], *, what: Callable[[tuple], str]
) -> None:
    """Refuse the second row of the same key, naming both rows."""
    seen: dict[tuple, Record] = {}
    for record, key in zip(records, keys, strict=True):
        first = seen.setdefault(key, record)
        if first is not record:
            raise UsageFileError(
                f"{record.where}: {what(key)} is already on {first.where}; give one row per day."
            )


# --- SLO measurements ---------------------------------------------------------------------------


def slo_rows_check(records: Iterable[Record], *, indicators: Mapping[str, str]) -> list[SloRow]:
    """Check every record against the SLOs there are (name -> indicator); all or nothing."""
    records = list(records)
    rows = [_slo_row(record, indicators) for record in records]
    duplicates_refuse(
        records,
        [(row.slo, row.day) for row in rows],
        what=lambda key: f"SLO {key[0]} on {key[1]:%Y-%m-%d}",
    )
    return rows


def _slo_row(record: Record, indicators: Mapping[str, str]) -> SloRow:
    name = cell_text(record, "slo", what="the SLO's name, e.g. ranker-availability")
    if name not in indicators:
        raise record.error(
            "slo",
            f"no SLO is named {name!r}{suggestion(name, indicators)}; use the name of an SLO "
            "defined in Capgov, or import its definition first.",
        )
    availability = indicators[name] == AVAILABILITY
    what = "the day's availability in percent" if availability else "the day's p95 latency in ms"
    day = cell_day(record)
    value = cell_decimal(record, "value", what=what, places=VALUE_PLACES, limit=VALUE_LIMIT)
    if availability and value > 100:
        raise record.error(
            "value",
            f"{_shown(record.cells['value'])} is outside 0-100; an availability is a percentage, "
            "e.g. 99.95.",
        )
    good, total = cell_count(record, "good"), cell_count(record, "total")
    if (good is None) != (total is None):
        missing = "total" if total is None else "good"
        raise record.error(missing, "empty; give both good and total, or neither.")
    if good is not None and total is not None and good > total:
        raise record.error(
            "good",
            f"{good} is more than total {total}; good counts the successful requests "
            "among the total.",
        )
    return SloRow(slo=name, day=day, value=value, good=good, total=total)


def slo_csv_read(data: str | bytes, *, indicators: Mapping[str, str]) -> list[SloRow]:
    """A CSV file ``slo,day,value[,good,total]``, checked; raises :class:`UsageFileError`."""
    records = csv_records(data, columns=SLO_COLUMNS, optional=SLO_OPTIONAL)
    return slo_rows_check(records, indicators=indicators)


def slo_json_read(items: object, *, indicators: Mapping[str, str]) -> list[SloRow]:
    """A JSON list of ``{"slo", "day", "value"[, "good", "total"]}`` objects, checked."""
    records = json_records(items, columns=SLO_COLUMNS, optional=SLO_OPTIONAL)
    return slo_rows_check(records, indicators=indicators)
