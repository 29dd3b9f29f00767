"""What an importer returns: the parsed benchmark, its points, and the error it raises."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


class BenchmarkFileError(ValueError):
    """Raised with a message saying what is wrong, where (file / line / key) and how to fix it."""


@dataclass(frozen=True)
class ParsedPoint:
    """One measured operating point (a concurrency level / request rate / config)."""

    label: str
    concurrency: int | None
    request_rate: Decimal | None
    completed: int | None
    failed: int | None
    metrics: dict[str, Decimal]


@dataclass(frozen=True)
class ParsedBenchmark:
    """A whole result file: the tool that wrote it, what ran where, and its measured points."""

    tool: str
    tool_label: str
    model_name: str
    hardware: str
    measured_at: datetime | None
    points: tuple[ParsedPoint, ...]
    settings: dict[str, str]
    warnings: tuple[str, ...]


def missing_metrics(parsed: ParsedBenchmark, required: Iterable[str]) -> list[str]:
    """Return the required metric codes that not every point reports, in the order given.

    A code is missing if any point lacks it, because a capacity check needs the value at
    every operating point it compares. Unknown codes count as missing (no point can report
    them); duplicates are listed once.
    """
    missing: list[str] = []
    for code in required:
        if code in missing:
            continue
        if not parsed.points or any(code not in point.metrics for point in parsed.points):
            missing.append(code)
    return missing
