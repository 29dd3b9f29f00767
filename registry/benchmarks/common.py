"""Helpers every importer shares: exact numbers, CSV tables, and collecting a point's metrics."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation

from .labels import INPUT_RATE, Defaults, Reading, convert, metric_code
from .metrics import METRICS
from .result import BenchmarkFileError

# No benchmark value comes near this; larger ones are typos or overflowed counters.
_LARGEST_EXPONENT = 24


def too_large(value: Decimal) -> bool:
    """Beyond any real measurement; also what keeps ``plain`` from expanding 1E+999999."""
    return value.is_finite() and bool(value) and value.adjusted() > _LARGEST_EXPONENT


def plain(value: Decimal) -> Decimal:
    """Drop a positive exponent ("1E+3" -> "1000") so values never display in E notation.

    A value too large to be a measurement is left as it is: expanding ``1E+999999`` would
    write a million digits.
    """
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0 and not too_large(value):
        digits = len(value.as_tuple().digits) + exponent
        return value.quantize(Decimal(1), context=Context(prec=max(digits, 28)))
    return value


def number(raw: object, where: str) -> Decimal | None:
    """Read a numeric value exactly; None when it is absent (null, empty cell or NaN).

    Raises BenchmarkFileError naming `where` for anything that is not a number, because a
    silently skipped value would make a metric look unreported rather than broken.
    """
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise BenchmarkFileError(f"{where}: expected a number, found {str(raw).lower()}")
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, float):
        value = Decimal(repr(raw))
    elif isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise BenchmarkFileError(
                f'{where}: "{_clip(text)}" is not a number; correct the value or remove it'
            ) from None
    else:
        raise BenchmarkFileError(f"{where}: expected a number, found a {type(raw).__name__}")
    # Tools write NaN for a statistic over zero samples; that means "not measured".
    if value.is_nan():
        return None
    if value.is_infinite():
        raise BenchmarkFileError(f"{where}: {raw} is not a finite number")
    if value and value.adjusted() > _LARGEST_EXPONENT:
        raise BenchmarkFileError(f"{where}: {raw} is too large to be a measurement")
    return plain(value)


def whole_number(raw: object, where: str) -> int | None:
    """Read a count (requests, concurrency): a number with no fractional part, or None."""
    value = number(raw, where)
    if value is None:
        return None
    if value != value.to_integral_value():
        raise BenchmarkFileError(f"{where}: expected a whole number, found {raw}")
    if value < 0:
        raise BenchmarkFileError(f"{where}: must not be negative (found {raw})")
    return int(value)


def format_decimal(value: Decimal) -> str:
    """Show a Decimal without exponent and without trailing zeros ("4.0" -> "4")."""
    return f"{value.normalize():f}"


def setting_text(value: object) -> str | None:
    """Turn a scalar setting into the string shown to users; None for null or nested values."""
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(value) if too_large(value) or not value.is_finite() else f"{plain(value):f}"
    if isinstance(value, list):
        parts = [setting_text(item) for item in value]
        return ", ".join(part for part in parts if part is not None) or None
    return str(value)


def natural_key(text: str) -> tuple[object, ...]:
    """Sort key that orders "config_2" before "config_10"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def no_request_completed(failed: int | None, where: str = "") -> BenchmarkFileError:
    """The error for a run in which nothing succeeded, so there is nothing to measure."""
    prefix = f"{where}: " if where else ""
    detail = f" ({failed} failed)" if failed else ""
    return BenchmarkFileError(
        f"{prefix}no request completed{detail}; the run measured nothing. "
        "Check that the server was reachable and serving the model, then run the benchmark again."
    )


@dataclass
class CsvTable:
    """One table of a CSV file (tools put several in one file, separated by blank lines)."""

    header: list[str]
    header_line: int
    rows: list[tuple[int, list[str]]] = field(default_factory=list)


def csv_tables(text: str) -> list[CsvTable]:
    """Split CSV text into tables at blank lines, keeping each row's line number for messages."""
    tables: list[CsvTable] = []
    current: CsvTable | None = None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                current = None
                continue
            cells = [cell.strip() for cell in row]
            if current is None:
                current = CsvTable(header=cells, header_line=reader.line_num)
                tables.append(current)
            else:
                current.rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise BenchmarkFileError(f"line {reader.line_num}: not readable as CSV ({exc})") from None
    return tables


def cell_where(line: int, column: str) -> str:
    """Describe a CSV cell's position for an error message."""
    return f'line {line}, column "{column}"'


class MetricCollector:
    """Gathers one point's metrics from many labelled values.

    Several labels can give the same metric (vLLM's old "p99_latency_ms" and new
    "p99_e2el_ms"; a "Max" and a "p99" GPU memory column); the best-ranked statistic wins.
    Several values for one label (one per GPU) are combined: the maximum for peak memory,
    the mean for utilisation.
    """

    def __init__(self, defaults: Defaults | None = None) -> None:
        self._defaults = defaults or Defaults()
        self._candidates: dict[str, dict[int, list[Decimal]]] = {}

    def add(self, reading: Reading | None, raw: object, where: str) -> bool:
        """Offer one raw value for a label's reading; return whether it was used."""
        return self.add_many(reading, [raw], where)

    def add_many(self, reading: Reading | None, raws: Sequence[object], where: str) -> bool:
        """Offer several values of one label (e.g. one per GPU) for a label's reading."""
        if reading is None:
            return False
        target = metric_code(reading)
        if target is None:
            return False
        code, rank = target
        used = False
        for raw in raws:
            value = number(raw, where)
            if value is None:
                continue
            if value < 0:
                raise BenchmarkFileError(f"{where}: must not be negative (found {raw})")
            converted = convert(reading, value, self._defaults)
            if converted is None:
                continue
            self._candidates.setdefault(code, {}).setdefault(rank, []).append(plain(converted))
            used = True
        return used

    def has(self, code: str) -> bool:
        """Whether any value was collected for a metric code."""
        return code in self._candidates

    def metrics(self) -> dict[str, Decimal]:
        """The collected metrics, in canonical units and in METRICS order."""
        chosen: dict[str, Decimal] = {}
        for code, by_rank in self._candidates.items():
            values = by_rank[min(by_rank)]
            chosen[code] = _combine(code, values)
        if "total_tokens_per_s" not in chosen and {INPUT_RATE, "output_tokens_per_s"} <= set(
            chosen
        ):
            # Older vLLM wrote input and output throughput but no total.
            chosen["total_tokens_per_s"] = chosen[INPUT_RATE] + chosen["output_tokens_per_s"]
        return {code: chosen[code] for code in METRICS if code in chosen}


def _combine(code: str, values: list[Decimal]) -> Decimal:
    if len(values) == 1:
        return values[0]
    if code == "peak_memory_gb":
        return max(values)
    if code == "utilisation_pct":
        return plain(sum(values, Decimal(0)) / len(values))
    return values[0]


def count_gpus(names: Iterable[str]) -> str:
    """Describe GPUs by model and count: "8 <U+00D7> NVIDIA A100-SXM4-80GB"."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    times = "\N{MULTIPLICATION SIGN}"  # the sign people write in "8 x A100"
    return ", ".join(f"{count} {times} {name}" for name, count in counts.items())
