"""NVIDIA Triton perf_analyzer / perf_client CSV (`-f file.csv`), including Model Analyzer's copy.

Every header generation starts with the load column (Concurrency, or Request Rate in
--request-rate-range mode) and has Inferences/Second; the rest varies (Avg latency and
request/response arrived later, Model Analyzer adds GPU columns). Times are microseconds.
"""

from __future__ import annotations

from decimal import Decimal

from .common import (
    CsvTable,
    MetricCollector,
    cell_where,
    format_decimal,
    number,
    whole_number,
)
from .labels import Defaults, normalise, read_label
from .result import BenchmarkFileError, ParsedBenchmark, ParsedPoint

TOOL_LABEL = "Triton perf_analyzer / perf_client CSV"
_LOAD_COLUMNS = {"concurrency", "request rate"}
_THROUGHPUT_COLUMNS = {"inference per second", "inference per sec", "inference per s"}
_BATCH_WARNING = (
    "Triton reports inferences/s; with batch size > 1 requests/s is lower "
    "(the CSV does not record the batch size, so check the perf_analyzer -b option)"
)


def looks_like_triton(tables: list[CsvTable]) -> bool:
    """The first table has a load column and the Inferences/Second column."""
    if not tables:
        return False
    names = {normalise(cell) for cell in tables[0].header}
    return bool(names & _THROUGHPUT_COLUMNS) and bool(names & _LOAD_COLUMNS)


def _gpu_values(cell: str) -> list[str]:
    # Model Analyzer writes "GPU-<uuid>:<value>;" per GPU; plain numbers are one value.
    if ":" not in cell:
        return [cell]
    return [part.rpartition(":")[2] for part in cell.split(";") if part.strip()]


def parse_triton(tables: list[CsvTable]) -> ParsedBenchmark:
    """One point per row, sorted by concurrency (perf_analyzer sorts rows by throughput)."""
    table = tables[0]
    header = table.header
    names = [normalise(cell) for cell in header]
    readings = [read_label(cell) for cell in header]
    utilisation_columns = [
        i for i, reading in enumerate(readings) if reading and reading.quantity == "utilisation"
    ]
    utilisation = _utilisation_unit(table, utilisation_columns)
    defaults = Defaults(time="us", memory="bytes", utilisation=utilisation)
    warnings = [_BATCH_WARNING]
    if utilisation == "percent":
        warnings.append("GPU utilisation values above 1 were read as percentages, not as fractions")

    points: list[ParsedPoint] = []
    for line, cells in table.rows:
        extra = cells[len(header) :]
        # Model Analyzer ends each data row with a comma: one empty field more than the header.
        if any(extra):
            raise BenchmarkFileError(
                f"line {line}: {len(cells)} fields but the header (line {table.header_line}) "
                f"has {len(header)}; the row does not line up with the columns"
            )
        concurrency: int | None = None
        rate: Decimal | None = None
        collector = MetricCollector(defaults)
        for i, cell in enumerate(cells[: len(header)]):
            where = cell_where(line, header[i])
            if names[i] == "concurrency":
                concurrency = whole_number(cell, where)
            elif names[i] == "request rate":
                rate = number(cell, where)
            else:
                collector.add_many(readings[i], _gpu_values(cell), where)
        metrics = collector.metrics()
        if not metrics:
            warnings.append(f"line {line} has no value in a recognised column and was skipped")
            continue
        if concurrency is not None:
            label = f"concurrency {concurrency}"
        elif rate is not None:
            label = f"qps {format_decimal(rate)}"
        else:
            label = f"line {line}"
        points.append(ParsedPoint(label, concurrency, rate, None, None, metrics))
    if not points:
        raise BenchmarkFileError(
            "no usable point: the CSV has a header but no data row with values; "
            "run perf_analyzer again with -f <file>.csv"
        )
    points.sort(
        key=lambda p: (
            p.concurrency if p.concurrency is not None else -1,
            p.request_rate if p.request_rate is not None else Decimal(-1),
        )
    )
    return ParsedBenchmark(
        tool="triton-perf-analyzer",
        tool_label=TOOL_LABEL,
        model_name="",
        hardware="",
        measured_at=None,
        points=tuple(points),
        settings={},
        warnings=tuple(warnings),
    )


def _utilisation_unit(table: CsvTable, columns: list[int]) -> str:
    # Triton's nv_gpu_utilization is a fraction in [0, 1]; a value above 1 can only be a
    # percentage, so one such value switches the whole file to percent.
    for _line, cells in table.rows:
        for i in columns:
            if i >= len(cells):
                continue
            for raw in _gpu_values(cells[i]):
                try:
                    if Decimal(raw.strip() or "0") > 1:
                        return "percent"
                except ArithmeticError:
                    continue  # reported with its line and column when the row is read
    return "fraction"
