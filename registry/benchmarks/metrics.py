"""Canonical benchmark metrics: the codes every importer maps to, with labels and units.

Values are always stored in the unit named here, whatever unit the source tool used, so two
benchmarks of the same deployment compare directly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One canonical metric: a stable code, a human label and the unit its values are in."""

    code: str
    label: str
    unit: str


def _timing(prefix: str, name: str, stats: tuple[str, ...]) -> list[Metric]:
    labels = {"mean": "mean", "p50": "median (p50)", "p90": "p90", "p95": "p95", "p99": "p99"}
    return [Metric(f"{prefix}_{stat}_ms", f"{name}, {labels[stat]}", "ms") for stat in stats]


_STATS = ("mean", "p50", "p90", "p95", "p99")

# Order matters: it is the display order, and importers return metrics in this order.
_ALL: list[Metric] = [
    Metric("requests_per_s", "Request throughput", "req/s"),
    Metric("output_tokens_per_s", "Output token throughput", "tok/s"),
    Metric("total_tokens_per_s", "Total token throughput (input + output)", "tok/s"),
    *_timing("latency", "End-to-end request latency", _STATS),
    *_timing("ttft", "Time to first token", _STATS),
    *_timing("itl", "Inter-token latency", _STATS),
    *_timing("tpot", "Time per output token", _STATS),
    Metric("peak_memory_gb", "Peak accelerator memory used", "GB"),
    Metric("cold_start_s", "Cold start time", "s"),
    Metric("utilisation_pct", "Accelerator utilisation", "%"),
]

METRICS: dict[str, Metric] = {metric.code: metric for metric in _ALL}

# Timing quantities whose codes follow "<quantity>_<stat>_ms".
TIMING_QUANTITIES = ("latency", "ttft", "itl", "tpot")
TIMING_STATS = _STATS
