"""The TCO calculator: the issue's worked example, per 1M requests, validation, throughput."""

from decimal import Decimal as D

import pytest

from costs import tco
from costs.tco_services import TcoInputError, benchmark_throughput, tco_calculate
from tests.registry.conftest import assess, registry, upload  # noqa: F401

WORKED = {
    "capex": D("300000"),
    "depreciation_years": 4,
    "power_kw": D("10.2"),
    "pue": D("1.4"),
    "price_per_kwh": D("0.12"),
    "operations_per_year": D("20000"),
    "cloud_on_demand_hourly": D("98.32"),
}


@pytest.fixture
def benchmark(registry):  # noqa: F811
    return upload(registry)


@pytest.fixture
def assessment(registry, benchmark):  # noqa: F811
    return assess(registry, benchmark)


def test_tco_worked_example_from_the_issue():
    result = tco.tco_compute(tco.TcoInputs(**WORKED))
    assert result.on_prem == D("110011.14")
    assert result.cloud_on_demand_full == D("861283.20")
    assert result.hours_per_year == 8760
    assert result.break_even_percent == D("12.77")
    # The parts: 75,000.00 depreciation + 15,011.14 energy (125,092.80 kWh) + 20,000.00 ops.
    assert (result.depreciation, result.energy, result.operations) == (
        D("75000.00"),
        D("15011.14"),
        D("20000.00"),
    )
    assert result.energy_kwh == D("125092.80")
    assert result.depreciation + result.energy + result.operations == result.on_prem
    assert result.cheapest == "on_prem"
    assert result.per_million is None


def test_tco_on_demand_pays_only_the_hours_used_and_committed_pays_all():
    result = tco.tco_compute(
        tco.TcoInputs(**WORKED, utilisation_percent=D("10"), cloud_committed_hourly=D("60"))
    )
    assert result.cloud_on_demand == D("86128.32")  # 98.32 x 8,760 x 10 %
    assert result.cloud_committed == D("525600.00")  # 60 x 8,760, used or not
    assert result.cheapest == "cloud_on_demand"  # 10 % is below the 12.77 % break-even
    assert result.committed_break_even_percent == D("61.03")  # 525,600 / 861,283.20


def test_tco_per_million_requests_from_the_throughput():
    result = tco.tco_compute(
        tco.TcoInputs(
            **WORKED,
            utilisation_percent=D("50"),
            cloud_committed_hourly=D("60"),
            requests_per_second=D("40"),
        )
    )
    # 40 req/s x 3,600 x 8,760 h x 50 % = 630,720,000 requests a year.
    assert result.requests_per_year == D("630720000")
    assert result.per_million.on_prem == D("174.42")  # 110,011.136 / 630.72
    assert result.per_million.cloud_on_demand == D("682.78")  # 98.32 / (40 x 3,600) x 1M
    assert result.per_million.cloud_committed == D("833.33")  # 525,600 / 630.72
    assert result.as_dict()["per_million_requests"]["on_prem"] == "174.42"


def test_tco_break_even_above_100_says_the_cloud_always_wins():
    result = tco.tco_compute(tco.TcoInputs(**{**WORKED, "cloud_on_demand_hourly": D("5")}))
    assert result.break_even_percent == D("251.17")
    assert result.cheapest == "cloud_on_demand"
    assert "cheaper at any utilisation" in result.notes[0]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"pue": D("0.9")}, "pue", "1 or more"),
        ({"utilisation_percent": D("0")}, "utilisation_percent", "above 0 and at most 100"),
        ({"utilisation_percent": D("100.5")}, "utilisation_percent", "at most 100"),
        ({"capex": D("0")}, "capex", "above 0"),
        ({"power_kw": D("-1")}, "power_kw", "above 0"),
        ({"depreciation_years": 0}, "depreciation_years", "at least 1 year"),
        ({"operations_per_year": D("-5")}, "operations_per_year", "cannot be negative"),
        ({"cloud_on_demand_hourly": D("0")}, "cloud_on_demand_hourly", "above 0"),
        ({"hours_per_year": 9000}, "hours_per_year", "8,784"),
        ({"requests_per_second": D("0")}, "requests_per_second", "above 0"),
    ],
)
def test_tco_refuses_inputs_it_cannot_cost(change, field, words):
    with pytest.raises(tco.TcoError) as caught:
        tco.tco_compute(tco.TcoInputs(**{**WORKED, **change}))
    assert set(caught.value.errors) == {field}
    assert words in caught.value.errors[field]


def test_tco_extremes_round_instead_of_failing():
    result = tco.tco_compute(
        tco.TcoInputs(
            capex=D("99999999999999"),
            depreciation_years=1,
            power_kw=D("9999999.999"),
            pue=D("99.999"),
            price_per_kwh=D("99999.99999"),
            operations_per_year=D("0"),
            cloud_on_demand_hourly=D("0.000001"),
            utilisation_percent=D("0.01"),
            hours_per_year=1,
            requests_per_second=D("0.0001"),
        )
    )
    assert result.per_million.on_prem > D("1e24")


def test_tco_curve_marks_the_flat_and_the_growing_costs():
    curve = tco.tco_curve(tco.TcoInputs(**WORKED, cloud_committed_hourly=D("60")), steps=4)
    assert curve["utilisation"] == [D("0.00"), D("25.00"), D("50.00"), D("75.00"), D("100.00")]
    assert set(curve["on_prem"]) == {D("110011.14")}
    assert curve["cloud_on_demand"][-1] == D("861283.20")
    assert curve["cloud_on_demand"][2] == D("430641.60")
    assert set(curve["cloud_committed"]) == {D("525600.00")}


def test_tco_calculate_names_the_bad_currency():
    with pytest.raises(TcoInputError) as caught:
        tco_calculate(currency="dollars", **WORKED)
    assert "currency" in caught.value.errors


def test_tco_calculate_reads_the_benchmark_throughput(db, benchmark):
    found = benchmark_throughput(benchmark=benchmark)
    assert found.requests_per_second == D("15.2")
    assert "highest measured throughput" in found.source
    calculation = tco_calculate(currency="USD", benchmark=benchmark, **WORKED)
    assert calculation.result.requests_per_second == D("15.2")
    given = tco_calculate(
        currency="USD", benchmark=benchmark, requests_per_second=D("10"), **WORKED
    )
    assert given.result.requests_per_second == D("10")
    assert given.throughput_source == "given"


def test_tco_throughput_prefers_the_assessments_operating_point(db, benchmark, assessment):
    found = benchmark_throughput(benchmark=benchmark)
    # The assessment's point: the highest throughput within p95 <= 500 ms is concurrency 8.
    assert found.requests_per_second == D("12")
    assert f"assessment #{assessment.pk}" in found.source
