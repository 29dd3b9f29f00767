"""Capacity arithmetic: replicas, accelerators, monthly cost and pool share. Pure, no ORM.

The rule: take the highest benchmarked throughput that still meets the latency SLO at the
measured concurrency; replicas = peak x (1 + headroom) ÷ that throughput, rounded up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

HOURS_PER_MONTH = Decimal(730)
CENT = Decimal("0.01")


class CapacityError(ValueError):
    """The benchmark cannot support the requested SLO; the message says why."""


@dataclass(frozen=True)
class OperatingPoint:
    """A benchmark point as the calculation needs it."""

    key: int
    label: str
    concurrency: int | None
    requests_per_s: Decimal | None
    latencies_ms: dict[str, Decimal]


@dataclass(frozen=True)
class CapacityPlan:
    point_key: int
    point_label: str
    throughput_rps: Decimal
    replicas: int
    accelerators: int
    monthly_cost: Decimal
    pool_share_pct: Decimal | None
    cost_per_1k_requests: Decimal | None


def point_meeting_slo(
    points: Sequence[OperatingPoint], *, slo_metric: str, slo_threshold_ms: Decimal
) -> OperatingPoint:
    """The point with the highest throughput whose ``slo_metric`` is within the threshold."""
    measured = [p for p in points if p.requests_per_s and slo_metric in p.latencies_ms]
    if not measured:
        raise CapacityError(
            f"The benchmark reports no point with both throughput and {slo_metric}; "
            f"upload a result that measures {slo_metric} or choose another SLO metric."
        )
    meeting = [p for p in measured if p.latencies_ms[slo_metric] <= slo_threshold_ms]
    if not meeting:
        best = min(measured, key=lambda p: p.latencies_ms[slo_metric])
        raise CapacityError(
            f"No benchmarked point meets {slo_metric} ≤ {slo_threshold_ms} ms: the best is "
            f"{best.latencies_ms[slo_metric]} ms at {best.label}. Benchmark a lower "
            "concurrency, or revisit the SLO."
        )
    return max(meeting, key=lambda p: (p.requests_per_s, -(p.concurrency or 0)))


def replicas_needed(*, peak_rps: Decimal, headroom_pct: Decimal, throughput_rps: Decimal) -> int:
    if throughput_rps <= 0:
        raise CapacityError("The chosen point has no throughput.")
    needed = peak_rps * (1 + headroom_pct / 100) / throughput_rps
    return max(1, int(needed.to_integral_value(rounding=ROUND_CEILING)))


def capacity_plan(
    points: Sequence[OperatingPoint],
    *,
    slo_metric: str,
    slo_threshold_ms: Decimal,
    peak_rps: Decimal,
    headroom_pct: Decimal,
    daily_requests: int,
    accelerators_per_replica: int,
    hourly_price: Decimal,
    pool_accelerators: int | None,
) -> CapacityPlan:
    """Everything the board needs from one benchmark and the owner's expectations.

    ``hourly_price`` is per replica; the month has 730 hours. Cost per 1k requests is at the
    expected daily traffic over a 30-day month (blank when no traffic is expected).
    """
    if peak_rps <= 0:
        raise CapacityError("Peak traffic must be above zero requests per second.")
    if headroom_pct < 0:
        raise CapacityError("Headroom cannot be negative.")
    point = point_meeting_slo(points, slo_metric=slo_metric, slo_threshold_ms=slo_threshold_ms)
    assert point.requests_per_s is not None  # noqa: S101 - point_meeting_slo guarantees it
    replicas = replicas_needed(
        peak_rps=peak_rps, headroom_pct=headroom_pct, throughput_rps=point.requests_per_s
    )
    accelerators = replicas * accelerators_per_replica
    monthly = (hourly_price * replicas * HOURS_PER_MONTH).quantize(CENT, ROUND_HALF_UP)
    share = None
    if pool_accelerators:
        share = (Decimal(accelerators) * 100 / pool_accelerators).quantize(CENT, ROUND_HALF_UP)
    per_1k = None
    if daily_requests > 0:
        monthly_requests = Decimal(daily_requests) * 30
        per_1k = (hourly_price * replicas * HOURS_PER_MONTH * 1000 / monthly_requests).quantize(
            Decimal("0.000001"), ROUND_HALF_UP
        )
    return CapacityPlan(
        point_key=point.key,
        point_label=point.label,
        throughput_rps=point.requests_per_s,
        replicas=replicas,
        accelerators=accelerators,
        monthly_cost=monthly,
        pool_share_pct=share,
        cost_per_1k_requests=per_1k,
    )


def unit_costs(
    *, hourly_price: Decimal, requests_per_s: Decimal | None, tokens_per_s: Decimal | None
) -> tuple[Decimal | None, Decimal | None]:
    """Cost per 1k requests and per 1M tokens of one replica running flat out."""
    per_1k = per_1m = None
    if requests_per_s:
        per_1k = (hourly_price * 1000 / (requests_per_s * 3600)).quantize(Decimal("0.000001"))
    if tokens_per_s:
        per_1m = (hourly_price * 1_000_000 / (tokens_per_s * 3600)).quantize(Decimal("0.000001"))
    return per_1k, per_1m
