"""Our own benchmark JSON (docs/benchmark-format.md): the way in for any other tool.

Unlike the tool formats, which are read leniently by meaning, this one is validated strictly:
whoever writes it chose the codes and units on purpose, so a typo must fail loudly instead of
quietly dropping a metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .common import no_request_completed, plain, setting_text, too_large
from .metrics import METRICS
from .result import BenchmarkFileError, ParsedBenchmark, ParsedPoint

TOOL_LABEL = "CapGov benchmark JSON"
VERSION_KEY = "capgov_benchmark"
SUPPORTED_VERSION = 1
_TOP_KEYS = {VERSION_KEY, "tool", "model", "hardware", "measured_at", "settings", "points"}
_POINT_KEYS = {"label", "concurrency", "request_rate", "completed", "failed", "metrics"}
_DOC = "see docs/benchmark-format.md"


def looks_like_capgov(data: object) -> bool:
    """Our files say so in their first key."""
    return isinstance(data, dict) and VERSION_KEY in data


class _Problems:
    """Collects every validation problem so the user can fix them all in one pass."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            shown = self.items[:10]
            more = len(self.items) - len(shown)
            suffix = f"; and {more} more" if more else ""
            raise BenchmarkFileError("; ".join(shown) + suffix + f" ({_DOC})")


def _is_number(value: object) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def _whole(value: object, where: str, problems: _Problems, minimum: int) -> int | None:
    if value is None:
        return None
    if _is_number(value) and (not Decimal(value).is_finite() or too_large(Decimal(value))):
        problems.add(where, f"is not a count a benchmark can have (found {_show(value)})")
        return None
    if not _is_number(value) or Decimal(value) != Decimal(value).to_integral_value():
        problems.add(where, f"must be a whole number or null (found {_show(value)})")
        return None
    if value < minimum:
        problems.add(where, f"must be at least {minimum} (found {value})")
        return None
    return int(value)


def _show(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    return str(value)


def _text(data: Mapping[str, Any], key: str, problems: _Problems) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.add(key, f"must be a string (found {_show(value)})")
        return ""
    return value.strip()


def _measured_at(raw: object, problems: _Problems) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        problems.add("measured_at", f"must be an ISO 8601 string (found {_show(raw)})")
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        problems.add(
            "measured_at", f'"{raw}" is not ISO 8601; write e.g. "2025-03-01T14:30:00+00:00"'
        )
        return None
    if moment.tzinfo is None:
        problems.add(
            "measured_at",
            f'"{raw}" has no UTC offset; add one, e.g. "{raw}+00:00" or "{raw}Z"',
        )
        return None
    return moment.astimezone(UTC)


def _settings(raw: object, problems: _Problems) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add("settings", f"must be an object of names to values (found {_show(raw)})")
        return {}
    settings: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, dict | list):
            problems.add(f"settings.{key}", "must be a string, number or boolean, not nested")
            continue
        text = setting_text(value)
        if text is not None:
            settings[str(key)] = text
    return settings


def _metrics(raw: object, where: str, problems: _Problems) -> dict[str, Decimal]:
    if not isinstance(raw, dict) or not raw:
        problems.add(where, "must be an object with at least one metric code")
        return {}
    metrics: dict[str, Decimal] = {}
    for code, value in raw.items():
        at = f"{where}.{code}"
        if code not in METRICS:
            problems.add(at, f'unknown metric code "{code}"; known codes: {", ".join(METRICS)}')
            continue
        if not _is_number(value):
            problems.add(at, f"must be a number (found {_show(value)})")
            continue
        number = Decimal(value)
        if not number.is_finite():
            problems.add(at, f"must be a finite number (found {value})")
        elif too_large(number):
            problems.add(at, f"is too large to be a measurement (found {value})")
        elif number < 0:
            problems.add(at, f"must not be negative (found {value})")
        elif code == "utilisation_pct" and number > 100:
            problems.add(at, f"is a percentage from 0 to 100 (found {value})")
        else:
            metrics[code] = plain(number)
    return {code: metrics[code] for code in METRICS if code in metrics}


def _point(raw: object, where: str, problems: _Problems) -> ParsedPoint | None:
    if not isinstance(raw, dict):
        problems.add(where, f"must be an object (found {_show(raw)})")
        return None
    for key in raw:
        if key not in _POINT_KEYS:
            problems.add(
                f"{where}.{key}", f"unknown key; a point has {', '.join(sorted(_POINT_KEYS))}"
            )
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip():
        problems.add(f"{where}.label", 'is required: a short name such as "concurrency 8"')
        label = ""
    concurrency = _whole(raw.get("concurrency"), f"{where}.concurrency", problems, 1)
    completed = _whole(raw.get("completed"), f"{where}.completed", problems, 0)
    failed = _whole(raw.get("failed"), f"{where}.failed", problems, 0)
    rate_raw = raw.get("request_rate")
    rate: Decimal | None = None
    if rate_raw is not None:
        if (
            not _is_number(rate_raw)
            or not Decimal(rate_raw).is_finite()
            or too_large(Decimal(rate_raw))
        ):
            problems.add(
                f"{where}.request_rate", f"must be a number or null (found {_show(rate_raw)})"
            )
        elif rate_raw <= 0:
            problems.add(f"{where}.request_rate", f"must be positive (found {rate_raw})")
        else:
            rate = plain(Decimal(rate_raw))
    metrics = _metrics(raw.get("metrics"), f"{where}.metrics", problems)
    if completed == 0:
        raise no_request_completed(failed, where)
    return ParsedPoint(label.strip(), concurrency, rate, completed, failed, metrics)


def parse_capgov(data: Mapping[str, Any]) -> ParsedBenchmark:
    """Validate and read a capgov benchmark file; every problem is reported at once."""
    version = data.get(VERSION_KEY)
    if version != SUPPORTED_VERSION or isinstance(version, bool):
        raise BenchmarkFileError(
            f"{VERSION_KEY}: version {_show(version)} is not supported; this importer reads "
            f"version {SUPPORTED_VERSION} ({_DOC})"
        )
    problems = _Problems()
    for key in data:
        if key not in _TOP_KEYS:
            problems.add(key, f"unknown key; the top level has {', '.join(sorted(_TOP_KEYS))}")
    tool = _text(data, "tool", problems)
    model = _text(data, "model", problems)
    hardware = _text(data, "hardware", problems)
    measured_at = _measured_at(data.get("measured_at"), problems)
    settings = _settings(data.get("settings"), problems)
    raw_points = data.get("points")
    points: list[ParsedPoint] = []
    if not isinstance(raw_points, list) or not raw_points:
        problems.add("points", "must be a list with at least one point")
    else:
        for index, raw in enumerate(raw_points):
            point = _point(raw, f"points[{index}]", problems)
            if point is not None:
                points.append(point)
        labels = [point.label for point in points if point.label]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            problems.add("points", f"labels must be unique; repeated: {', '.join(duplicates)}")
    problems.raise_if_any()
    return ParsedBenchmark(
        tool="capgov",
        tool_label=f"{TOOL_LABEL} ({tool})" if tool else TOOL_LABEL,
        model_name=model,
        hardware=hardware,
        measured_at=measured_at,
        points=tuple(points),
        settings=settings,
        warnings=(),
    )
