"""TCO scenarios: who sees and edits them, computing and saving one, attaching it to
capacity assessments and decisions, and the panels that show them on those pages.

The arithmetic is :mod:`costs.tco` (pure). Finance, platform admins and review-board members
see every scenario; anyone else sees, files and edits only their own units' scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from costs import tco
from costs.models import TcoScenario
from governance.exceptions import DomainError, PermissionDeniedError
from governance.extensions import RelatedItem
from governance.models import BusinessUnit, Decision, User
from governance.money import money_format
from governance.policy import CURRENCY_HELP, currency_code_parse
from governance.selectors import decision_list, manages_costs, visible_unit_ids
from registry import selectors as registry_selectors
from registry.choices import AssessmentStatus
from registry.models import CapacityAssessment, EfficiencyBenchmark

INPUT_FIELDS = (
    "capex",
    "depreciation_years",
    "power_kw",
    "pue",
    "price_per_kwh",
    "operations_per_year",
    "utilisation_percent",
    "hours_per_year",
    "cloud_on_demand_hourly",
    "cloud_committed_hourly",
    "requests_per_second",
)


class TcoInputError(DomainError):
    """Inputs that cannot be costed; ``errors`` names each input and what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(" ".join(errors.values()))

    def payload(self) -> dict:
        return {"detail": self.message, "errors": self.errors}


# --- Who sees what -----------------------------------------------------------------------------


def tco_sees_all(user: User | AnonymousUser | None) -> bool:
    """Finance, platform admins and the review board read every scenario (``None``: the system)."""
    if user is None:
        return True
    return bool(user.is_authenticated and (manages_costs(user) or user.is_board_member))


def tco_unit_ids(user: User | AnonymousUser | None) -> frozenset[int] | None:
    """The units whose scenarios ``user`` reads and files; None means every unit."""
    if tco_sees_all(user):
        return None
    return visible_unit_ids(user) or frozenset()


def tco_scenario_list(*, user: User | AnonymousUser | None) -> QuerySet[TcoScenario]:
    """Scenarios ``user`` may read, newest first, with their unit, benchmark and attachments."""
    scenarios = (
        TcoScenario.objects.select_related(
            "business_unit",
            "created_by",
            "benchmark__version__model",
            "benchmark__hardware_profile",
        )
        .annotate(
            assessment_count=Count("assessments", distinct=True),
            decision_count=Count("decisions", distinct=True),
        )
        .order_by("-updated_at", "-pk")
    )
    ids = tco_unit_ids(user)
    return scenarios if ids is None else scenarios.filter(business_unit_id__in=ids)


def tco_unit_choices(*, user: User | AnonymousUser | None) -> QuerySet[BusinessUnit]:
    """The units ``user`` may file a scenario for."""
    units = BusinessUnit.objects.order_by("code")
    ids = tco_unit_ids(user)
    return units if ids is None else units.filter(pk__in=ids)


def tco_may_create(*, user: User | AnonymousUser | None) -> bool:
    ids = tco_unit_ids(user)
    return ids is None or bool(ids)


def tco_may_edit(*, user: User | AnonymousUser | None, scenario: TcoScenario) -> bool:
    """Wide roles edit every scenario; a unit's people edit their own units' scenarios."""
    ids = tco_unit_ids(user)
    return ids is None or scenario.business_unit_id in ids


def tco_benchmark_choices(*, user: User | AnonymousUser | None) -> QuerySet[EfficiencyBenchmark]:
    """Benchmarks whose throughput ``user`` may use (those the registry shows them)."""
    return (
        registry_selectors.benchmark_list(user=user)
        .prefetch_related(None)
        .order_by("-measured_at", "-pk")
    )


# --- Throughput -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    requests_per_second: Decimal | None
    source: str


def benchmark_throughput(*, benchmark: EfficiencyBenchmark) -> Throughput:
    """Requests per second of one replica at the benchmark's operating point.

    The point a capacity assessment of the benchmark chose (the highest throughput within its
    latency SLO), the newest such assessment first; without one, the highest throughput the
    benchmark measured.
    """
    assessment = (
        CapacityAssessment.objects.filter(benchmark=benchmark)
        .exclude(status=AssessmentStatus.SUPERSEDED)
        .select_related("point")
        .order_by("-submitted_at", "-pk")
        .first()
    )
    if assessment is not None:
        return Throughput(
            assessment.point_throughput_rps,
            f"benchmark #{benchmark.pk} at {assessment.point.label}: the point assessment "
            f"#{assessment.pk} found within its {assessment.slo_metric} SLO",
        )
    best = registry_selectors.best_point(list(benchmark.points.all()))
    if best is None or not best.requests_per_s:
        return Throughput(None, f"benchmark #{benchmark.pk} reports no request throughput")
    return Throughput(
        best.requests_per_s,
        f"benchmark #{benchmark.pk} at {best.label}: its highest measured throughput",
    )


# --- Computing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TcoCalculation:
    inputs: tco.TcoInputs
    result: tco.TcoResult
    throughput_source: str

    def as_dict(self) -> dict:
        return {**self.result.as_dict(), "throughput_source": self.throughput_source}


def tco_calculate(
    *,
    currency: str,
    capex: Decimal,
    depreciation_years: int,
    power_kw: Decimal,
    pue: Decimal,
    price_per_kwh: Decimal,
    operations_per_year: Decimal,
    cloud_on_demand_hourly: Decimal,
    cloud_committed_hourly: Decimal | None = None,
    utilisation_percent: Decimal = tco.HUNDRED,
    hours_per_year: int = tco.HOURS_PER_YEAR,
    requests_per_second: Decimal | None = None,
    benchmark: EfficiencyBenchmark | None = None,
) -> TcoCalculation:
    """Cost the inputs (nothing is saved). A throughput given wins over the benchmark's.

    Raises :class:`TcoInputError` naming each input that cannot be costed.
    """
    code = currency_code_parse(currency)
    if code is None:
        raise TcoInputError({"currency": CURRENCY_HELP})
    source = "none given: no cost per 1M requests"
    if requests_per_second is not None:
        source = "given"
    elif benchmark is not None:
        found = benchmark_throughput(benchmark=benchmark)
        requests_per_second, source = found.requests_per_second, found.source
    inputs = tco.TcoInputs(
        capex=capex,
        depreciation_years=depreciation_years,
        power_kw=power_kw,
        pue=pue,
        price_per_kwh=price_per_kwh,
        operations_per_year=operations_per_year,
        cloud_on_demand_hourly=cloud_on_demand_hourly,
        cloud_committed_hourly=cloud_committed_hourly,
        utilisation_percent=utilisation_percent,
        hours_per_year=hours_per_year,
        requests_per_second=requests_per_second,
        currency=code,
    )
    try:
        result = tco.tco_compute(inputs)
    except tco.TcoError as exc:
        raise TcoInputError(exc.errors) from exc
    return TcoCalculation(inputs=inputs, result=result, throughput_source=source)


def tco_scenario_inputs(scenario: TcoScenario) -> tco.TcoInputs:
    """The saved scenario's inputs, with the throughput it was costed at."""
    saved = scenario.results.get("requests_per_second") if scenario.results else None
    rps = scenario.requests_per_second
    if rps is None and saved is not None:
        rps = Decimal(saved)
    return tco.TcoInputs(
        capex=scenario.capex,
        depreciation_years=scenario.depreciation_years,
        power_kw=scenario.power_kw,
        pue=scenario.pue,
        price_per_kwh=scenario.price_per_kwh,
        operations_per_year=scenario.operations_per_year,
        cloud_on_demand_hourly=scenario.cloud_on_demand_hourly,
        cloud_committed_hourly=scenario.cloud_committed_hourly,
        utilisation_percent=scenario.utilisation_percent,
        hours_per_year=scenario.hours_per_year,
        requests_per_second=rps,
        currency=scenario.currency,
    )


# --- Saving -----------------------------------------------------------------------------------


def _require_unit(by: User | None, business_unit: BusinessUnit | None) -> None:
    ids = tco_unit_ids(by)
    if ids is None:
        return
    if business_unit is None or business_unit.pk not in ids:
        raise PermissionDeniedError(
            "Choose one of your own business units: finance, platform admins and the review "
            "board file scenarios for any unit."
        )


def _require_benchmark_visible(by: User | None, benchmark: EfficiencyBenchmark | None) -> None:
    if benchmark is None or by is None:
        return
    if not registry_selectors.benchmark_list(user=by).filter(pk=benchmark.pk).exists():
        raise PermissionDeniedError(f"Benchmark #{benchmark.pk} is not one you can read.")


@transaction.atomic
def tco_scenario_save(
    *,
    scenario: TcoScenario | None,
    by: User | None,
    name: str,
    description: str = "",
    business_unit: BusinessUnit | None = None,
    benchmark: EfficiencyBenchmark | None = None,
    currency: str = "USD",
    **inputs: Any,
) -> TcoScenario:
    """Create (``scenario=None``) or change a scenario, computing its results now.

    The results are kept as computed, so a reviewer reads the figures the author saw even if
    the benchmark is later re-run.
    """
    if scenario is not None and not tco_may_edit(user=by, scenario=scenario):
        raise PermissionDeniedError(
            "Only finance, platform admins, the review board and the "
            "scenario's own unit may change it."
        )
    _require_unit(by, business_unit)
    _require_benchmark_visible(by, benchmark)
    name = (name or "").strip()
    if not name:
        raise TcoInputError({"name": "Give the scenario a name, e.g. “H100 node vs p5 on-demand”."})
    calculation = tco_calculate(currency=currency, benchmark=benchmark, **inputs)
    target = scenario or TcoScenario(created_by=by)
    target.name = name[:200]
    target.description = description or ""
    target.business_unit = business_unit
    target.benchmark = benchmark
    target.currency = calculation.inputs.currency
    for key in INPUT_FIELDS:
        setattr(target, key, getattr(calculation.inputs, key))
    # The throughput kept is the one given; a benchmark's is read again on every save.
    target.requests_per_second = inputs.get("requests_per_second")
    target.results = {**calculation.as_dict(), "computed_at": timezone.now().isoformat()}
    try:
        target.full_clean(exclude=["assessments", "decisions", "created_by"])
    except ValidationError as exc:
        raise TcoInputError(
            {key: " ".join(messages) for key, messages in exc.message_dict.items()}
        ) from exc
    target.save()
    return target


def tco_scenario_delete(*, scenario: TcoScenario, by: User | None) -> None:
    if not tco_may_edit(user=by, scenario=scenario):
        raise PermissionDeniedError(
            "Only finance, platform admins, the review board and the "
            "scenario's own unit may delete it."
        )
    scenario.delete()


def tco_scenario_attach(
    *,
    scenario: TcoScenario,
    by: User | None,
    assessment: CapacityAssessment | None = None,
    decision: Decision | None = None,
) -> None:
    """Attach the scenario to a capacity assessment and/or a decision ``by`` can read.

    Attaching twice changes nothing.
    """
    if not tco_may_edit(user=by, scenario=scenario):
        raise PermissionDeniedError("Only people who may edit the scenario attach it.")
    if assessment is None and decision is None:
        raise DomainError("Choose an assessment or a decision to attach the scenario to.")
    if assessment is not None:
        if not registry_selectors.assessment_list(user=by).filter(pk=assessment.pk).exists():
            raise PermissionDeniedError(f"Assessment #{assessment.pk} is not one you can read.")
        scenario.assessments.add(assessment)
    if decision is not None:
        if not decision_list(user=by).filter(pk=decision.pk).exists():
            raise PermissionDeniedError(f"Decision #{decision.pk} is not one you can read.")
        scenario.decisions.add(decision)
    TcoScenario.objects.filter(pk=scenario.pk).update(updated_at=timezone.now())


@transaction.atomic
def tco_scenario_attachments_set(
    *,
    scenario: TcoScenario,
    by: User | None,
    assessments: list[CapacityAssessment] | None = None,
    decisions: list[Decision] | None = None,
) -> None:
    """Make the scenario's attachments that ``by`` can read exactly these (None: unchanged).

    Attachments ``by`` cannot read (another unit's decision, say) are kept as they are.
    """
    if not tco_may_edit(user=by, scenario=scenario):
        raise PermissionDeniedError("Only people who may edit the scenario attach it.")
    if assessments is not None:
        readable = set(
            registry_selectors.assessment_list(user=by)
            .filter(tco_scenarios=scenario)
            .values_list("pk", flat=True)
        )
        wanted = {a.pk for a in assessments}
        unreadable = set(scenario.assessments.values_list("pk", flat=True)) - readable
        scenario.assessments.set(wanted | unreadable)
    if decisions is not None:
        readable = set(
            decision_list(user=by).filter(tco_scenarios=scenario).values_list("pk", flat=True)
        )
        wanted = {d.pk for d in decisions}
        unreadable = set(scenario.decisions.values_list("pk", flat=True)) - readable
        scenario.decisions.set(wanted | unreadable)


def tco_scenario_detach(
    *,
    scenario: TcoScenario,
    by: User | None,
    assessment: CapacityAssessment | None = None,
    decision: Decision | None = None,
) -> None:
    if not tco_may_edit(user=by, scenario=scenario):
        raise PermissionDeniedError("Only people who may edit the scenario detach it.")
    if assessment is not None:
        scenario.assessments.remove(assessment)
    if decision is not None:
        scenario.decisions.remove(decision)


# --- Panels on other apps' pages ----------------------------------------------------------------


def tco_summary(scenario: TcoScenario) -> str:
    """One sentence: on-prem against the cloud a year, and where they break even."""
    results = scenario.results or {}
    currency = results.get("currency", scenario.currency)
    on_prem = (results.get("on_prem") or {}).get("total")
    cloud = results.get("cloud_on_demand")
    break_even = results.get("break_even_percent")
    if on_prem is None or cloud is None:
        return "Not computed yet."
    return (
        f"On-prem {money_format(Decimal(on_prem), currency)} a year against cloud on-demand "
        f"{money_format(Decimal(cloud), currency)} at {scenario.utilisation_percent:g} % "
        f"utilisation; break-even at {break_even} %."
    )


def _items(scenarios: QuerySet[TcoScenario]) -> list[RelatedItem]:
    return [
        RelatedItem(
            title=scenario.name,
            url=scenario.get_absolute_url(),
            text=tco_summary(scenario),
            section="TCO scenarios",
        )
        for scenario in scenarios
    ]


def tco_decision_panel(decision: Decision, user: User | None = None) -> list[RelatedItem]:
    """For a decision's page: the TCO scenarios attached to it that the reader may see."""
    return _items(tco_scenario_list(user=user).filter(decisions=decision))


def tco_assessment_panel(
    assessment: CapacityAssessment, user: User | None = None
) -> list[RelatedItem]:
    """For an assessment's page: the TCO scenarios attached to it that the reader may see."""
    return _items(tco_scenario_list(user=user).filter(assessments=assessment))
