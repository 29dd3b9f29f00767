"""TCO pages: the calculator and saved scenarios, one scenario with its chart, attaching it to
assessments and decisions."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from costs import charts, tco, tco_services
from costs.models import TcoScenario
from costs.tco_forms import TcoAttachForm, TcoForm
from governance.exceptions import DomainError, PermissionDeniedError
from governance.selectors import decision_list
from registry import selectors as registry_selectors

PAGE_SIZE = 25
ATTACH_CHOICES = 100


def _require_access(request: HttpRequest) -> None:
    if not tco_services.tco_may_create(user=request.user):
        raise PermissionDenied(
            "TCO scenarios are for finance, platform admins, the review board and the people "
            "of a business unit."
        )


def _form(request: HttpRequest, scenario: TcoScenario | None = None) -> TcoForm:
    units = tco_services.tco_unit_choices(user=request.user)
    benchmarks = tco_services.tco_benchmark_choices(user=request.user)
    data = request.POST if request.method == "POST" else None
    if scenario is not None:
        return TcoForm.for_scenario(scenario, units=units, benchmarks=benchmarks, data=data)
    return TcoForm(data=data, units=units, benchmarks=benchmarks)


def _chart(inputs: tco.TcoInputs, result: tco.TcoResult, chart_id: str) -> dict:
    return {
        "id": chart_id,
        "currency": result.currency,
        "figure": charts.tco_by_utilisation(
            tco.tco_curve(inputs),
            currency=result.currency,
            break_even_percent=result.break_even_percent,
            utilisation_percent=result.utilisation_percent,
        ),
    }


def _field_errors(form: TcoForm, exc: DomainError) -> None:
    errors = getattr(exc, "errors", None)
    if not errors:
        form.add_error(None, exc.message)
        return
    for key, text in errors.items():
        form.add_error(key if key in form.fields else None, text)


def _save(request: HttpRequest, form: TcoForm, scenario: TcoScenario | None) -> TcoScenario | None:
    """Save the valid form as a new or changed scenario; None, the form carrying what is wrong,
    when the inputs cannot be costed."""
    data = form.cleaned_data
    try:
        return tco_services.tco_scenario_save(
            scenario=scenario,
            by=request.user,
            name=data["name"],
            description=data["description"],
            business_unit=data["business_unit"],
            **form.inputs(),
        )
    except PermissionDeniedError as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        _field_errors(form, exc)
        return None


@require_http_methods(["GET", "POST"])
def tco_index(request: HttpRequest) -> HttpResponse:
    """Saved scenarios and the calculator: *Calculate* shows the result, *Save* keeps it."""
    _require_access(request)
    form = _form(request)
    calculation = chart = None
    if request.method == "POST" and form.is_valid():
        if request.POST.get("action") == "save":
            scenario = _save(request, form, None)
            if scenario is not None:
                messages.success(request, f"Scenario {scenario.name} saved.")
                return redirect(scenario)
        else:
            try:
                calculation = tco_services.tco_calculate(**form.inputs())
            except DomainError as exc:
                _field_errors(form, exc)
            else:
                chart = _chart(calculation.inputs, calculation.result, "tco-calculated")
    scenarios = Paginator(tco_services.tco_scenario_list(user=request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "costs/tco_list.html",
        {
            "form": form,
            "results": calculation.as_dict() if calculation else None,
            "chart": chart,
            "page": scenarios,
            "labels": tco.OPTION_LABELS,
        },
        status=400 if form.is_bound and not form.is_valid() else 200,
    )


def _scenario_get(request: HttpRequest, pk: int) -> TcoScenario:
    return get_object_or_404(tco_services.tco_scenario_list(user=request.user), pk=pk)


def _scenario_editable(request: HttpRequest, pk: int) -> TcoScenario:
    scenario = _scenario_get(request, pk)
    if not tco_services.tco_may_edit(user=request.user, scenario=scenario):
        raise PermissionDenied("Only the scenario's unit, finance, platform admins and the board.")
    return scenario


def tco_detail(request: HttpRequest, pk: int) -> HttpResponse:
    scenario = _scenario_get(request, pk)
    user = request.user
    inputs = tco_services.tco_scenario_inputs(scenario)
    chart = None
    try:
        result = tco.tco_compute(inputs)
    except tco.TcoError:
        pass  # a scenario saved under other rules: its stored figures still show, unplotted
    else:
        chart = _chart(inputs, result, "tco-curve")
    may_edit = tco_services.tco_may_edit(user=user, scenario=scenario)
    assessments = list(registry_selectors.assessment_list(user=user).filter(tco_scenarios=scenario))
    decisions = list(decision_list(user=user).filter(tco_scenarios=scenario))
    return render(
        request,
        "costs/tco_detail.html",
        {
            "scenario": scenario,
            "plain": _plain(scenario),
            "results": scenario.results,
            "chart": chart,
            "may_edit": may_edit,
            "assessments": assessments,
            "decisions": decisions,
            "attach_form": _attach_form(request) if may_edit else None,
            "labels": tco.OPTION_LABELS,
        },
    )


def _plain(scenario: TcoScenario) -> dict[str, str]:
    """The scenario's decimal inputs as typed: no padding zeros, never in exponent form."""
    return {
        key: f"{value.normalize():f}"
        for key in (
            "power_kw",
            "pue",
            "price_per_kwh",
            "utilisation_percent",
            "requests_per_second",
        )
        if (value := getattr(scenario, key)) is not None
    }


def _attach_form(request: HttpRequest, data=None) -> TcoAttachForm:
    user = request.user
    return TcoAttachForm(
        data=data,
        assessments=registry_selectors.assessment_list(user=user).order_by("-submitted_at", "-pk")[
            :ATTACH_CHOICES
        ],
        decisions=decision_list(user=user)
        .prefetch_related(None)
        .order_by("-decided_at", "-pk")[:ATTACH_CHOICES],
    )


@require_http_methods(["GET", "POST"])
def tco_update(request: HttpRequest, pk: int) -> HttpResponse:
    scenario = _scenario_editable(request, pk)
    form = _form(request, scenario)
    if request.method == "POST" and form.is_valid() and _save(request, form, scenario):
        messages.success(request, f"Scenario {scenario.name} updated and recomputed.")
        return redirect(scenario)
    return render(
        request,
        "costs/tco_form.html",
        {"form": form, "scenario": scenario},
        status=400 if form.is_bound else 200,
    )


@require_POST
def tco_delete(request: HttpRequest, pk: int) -> HttpResponse:
    scenario = _scenario_editable(request, pk)
    name = scenario.name
    tco_services.tco_scenario_delete(scenario=scenario, by=request.user)
    messages.success(request, f"Scenario {name} deleted.")
    return redirect("costs:tco")


@require_POST
def tco_attach(request: HttpRequest, pk: int) -> HttpResponse:
    scenario = _scenario_editable(request, pk)
    form = _attach_form(request, data=request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect(scenario)
    user = request.user
    assessment = decision = None
    if form.cleaned_data.get("assessment"):
        assessment = get_object_or_404(
            registry_selectors.assessment_list(user=user), pk=form.cleaned_data["assessment"]
        )
    if form.cleaned_data.get("decision"):
        decision = get_object_or_404(decision_list(user=user), pk=form.cleaned_data["decision"])
    try:
        tco_services.tco_scenario_attach(
            scenario=scenario, by=user, assessment=assessment, decision=decision
        )
    except PermissionDeniedError as exc:
        raise PermissionDenied(exc.message) from exc
    attached = " and ".join(
        text
        for text in (
            f"assessment #{assessment.pk}" if assessment else "",
            f"decision #{decision.pk}" if decision else "",
        )
        if text
    )
    messages.success(request, f"Scenario {scenario.name} attached to {attached}.")
    return redirect(scenario)


@require_POST
def tco_detach(request: HttpRequest, pk: int) -> HttpResponse:
    scenario = _scenario_editable(request, pk)
    assessment = decision = None
    if request.POST.get("assessment", "").isdigit():
        assessment = scenario.assessments.filter(pk=int(request.POST["assessment"])).first()
    if request.POST.get("decision", "").isdigit():
        decision = scenario.decisions.filter(pk=int(request.POST["decision"])).first()
    if assessment is None and decision is None:
        messages.error(request, "That assessment or decision is not attached to this scenario.")
        return redirect(scenario)
    tco_services.tco_scenario_detach(
        scenario=scenario, by=request.user, assessment=assessment, decision=decision
    )
    messages.success(request, "Detached.")
    return redirect(scenario)
