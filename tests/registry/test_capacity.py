from decimal import Decimal

import pytest

from registry.capacity import CapacityError, OperatingPoint, capacity_plan, unit_costs


def point(key, concurrency, rps, p95):
    return OperatingPoint(
        key=key,
        label=f"concurrency {concurrency}",
        concurrency=concurrency,
        requests_per_s=Decimal(rps),
        latencies_ms={"latency_p95_ms": Decimal(p95)},
    )


POINTS = [point(1, 4, "6.5", "210"), point(2, 8, "12", "480"), point(3, 16, "15.2", "950")]


def plan(**overrides):
    args = {
        "slo_metric": "latency_p95_ms",
        "slo_threshold_ms": Decimal(500),
        "peak_rps": Decimal(100),
        "headroom_pct": Decimal(30),
        "daily_requests": 0,
        "accelerators_per_replica": 1,
        "hourly_price": Decimal("4.10"),
        "pool_accelerators": 80,
        **overrides,
    }
    return capacity_plan(POINTS, **args)


def test_capacity_plan_worked_example():
    result = plan()
    assert result.point_key == 2
    assert result.throughput_rps == Decimal(12)
    assert result.replicas == 11
    assert result.accelerators == 11
    assert result.monthly_cost == Decimal("32923.00")
    assert result.pool_share_pct == Decimal("13.75")


def test_capacity_plan_counts_accelerators_per_replica():
    result = plan(accelerators_per_replica=8, hourly_price=Decimal("98.32"))
    assert (result.replicas, result.accelerators) == (11, 88)
    assert result.monthly_cost == Decimal("789509.60")
    assert result.pool_share_pct == Decimal("110.00")


def test_capacity_plan_rounds_replicas_up_even_for_a_sliver():
    assert plan(peak_rps=Decimal("92.31")).replicas == 11  # 92.31 * 1.3 / 12 = 10.0003
    assert plan(peak_rps=Decimal("92.30")).replicas == 10  # exactly 9.998...


def test_capacity_plan_refuses_when_no_point_meets_the_slo():
    with pytest.raises(CapacityError, match=r"best is 210 ms at concurrency 4"):
        plan(slo_threshold_ms=Decimal(200))


def test_capacity_plan_refuses_a_metric_the_benchmark_lacks():
    with pytest.raises(CapacityError, match="latency_p99_ms"):
        plan(slo_metric="latency_p99_ms")


def test_capacity_plan_cost_per_1k_requests_at_expected_traffic():
    result = plan(daily_requests=4_000_000)
    # 32,923.00 a month for 120M requests.
    assert result.cost_per_1k_requests == Decimal("0.274358")


def test_unit_costs_of_one_replica_at_full_load():
    per_1k, per_1m = unit_costs(
        hourly_price=Decimal("4.10"), requests_per_s=Decimal(12), tokens_per_s=Decimal(3000)
    )
    assert per_1k == Decimal("0.094907")
    assert per_1m == Decimal("0.379630")
