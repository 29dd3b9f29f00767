"""Cost pages: imports, chargeback, cost explorer, Unallocated, allocation rules, budgets."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from costs import budgets, charts, inference, selectors, services, sync
from costs.exports import CONTENT_TYPES, EXPORTERS
from costs.filters import BASIS_CHOICES, GROUP_CHOICES, BudgetFilterSet, CostRowFilterSet
from costs.forms import (
    AllocationRuleForm,
    BillingUploadForm,
    BudgetForm,
    FreezeLiftForm,
    SyncRunForm,
)
from costs.models import AllocationRule, Budget, CloudAccount, SyncKind, SyncRun, SyncStatus
from governance.choices import Role
from governance.exceptions import DomainError, PermissionDeniedError
from governance.permissions import cost_manager_required
from governance.selectors import business_unit_list, freezes_in_force
from governance.services import freeze_lift
from registry.selectors import model_list as registry_model_list

RESOURCE_LIMIT = 200


def _month_and_basis(
    request: HttpRequest, *, picker: bool = True
) -> tuple[dt.date | None, str, list[dt.date]]:
    """The month and basis asked for, defaulting to the latest month with costs.

    The list of months (a DISTINCT over the cost rows) is read only for pages that show a
    month picker, or when no month was given.
    """
    basis = request.GET.get("basis", "billed")
    if basis not in selectors.BASES:
        basis = "billed"
    raw = request.GET.get("month")
    months = selectors.chargeback_months(user=request.user) if picker or not raw else []
    if raw:
        try:
            return selectors.month_parse(raw), basis, months
        except ValueError as exc:
            raise Http404(str(exc)) from exc
    return (months[0] if months else None), basis, months


# --- Dashboard ---------------------------------------------------------------------------------


def dashboard(request: HttpRequest) -> HttpResponse:
    """Spend by business unit for the latest month, the trend, Unallocated, last imports."""
    user = request.user
    months = selectors.chargeback_months(user=user)
    context: dict = {"months": months, "alert_percent": settings.CAPGOV_UNALLOCATED_ALERT_PERCENT}
    if months:
        latest = months[0]
        context["month"] = latest
        context["chargeback"] = selectors.chargeback_get(user=user, month=latest)
        trend = selectors.monthly_by_unit(user=user, months=months[:12])
        context["charts"] = [
            {
                "id": f"trend-{currency}",
                "currency": currency,
                "figure": selectors.cost_series_cached(
                    "trend-figure",
                    series,
                    partial(charts.monthly_trend, series, currency=currency),
                    currency,
                ),
            }
            for currency, series in trend.items()
        ]
        context["alert_threshold"] = Decimal(settings.CAPGOV_UNALLOCATED_ALERT_PERCENT)
        context.update(_dashboard_budgets(request, latest))
    context["imports"] = selectors.billing_import_list(user=user)[:5]
    return render(request, "costs/dashboard.html", context)


_STATUS_ORDER = {"frozen": 0, "alert": 1, "ok": 2, "inactive": 3}
DASHBOARD_BUDGETS = 6


def _dashboard_budgets(request: HttpRequest, month: dt.date) -> dict:
    """The budgets nearest their limit in the dashboard's month, frozen and alerting first."""
    statuses = [
        s
        for s in selectors.budget_statuses(
            budgets=selectors.budget_list(user=request.user), month=month
        )
        if s.active
    ]
    statuses.sort(key=lambda s: (_STATUS_ORDER[s.status], -s.standing.percent))
    return {
        "budget_month": month,
        "budget_statuses": statuses[:DASHBOARD_BUDGETS],
        "budget_count": len(statuses),
    }


# --- Imports ----------------------------------------------------------------------------------


@cost_manager_required
@require_http_methods(["GET", "POST"])
def import_list(request: HttpRequest) -> HttpResponse:
    form = BillingUploadForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                billing_import = services.billing_import_create(
                    uploaded_file=form.cleaned_data["file"],
                    fmt=form.cleaned_data["format"],
                    by=request.user,
                )
            except DomainError as exc:
                form.add_error("file", exc.message)
                status = exc.http_status
            else:
                return redirect(billing_import)
    page = Paginator(selectors.billing_import_list(user=request.user), 25).get_page(
        request.GET.get("page")
    )
    return render(request, "costs/import_list.html", {"form": form, "page": page}, status=status)


@cost_manager_required
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    billing_import = get_object_or_404(selectors.billing_import_list(user=request.user), pk=pk)
    return render(request, "costs/import_detail.html", {"import": billing_import})


@cost_manager_required
def import_status(request: HttpRequest, pk: int) -> JsonResponse:
    billing_import = get_object_or_404(selectors.billing_import_list(user=request.user), pk=pk)
    return JsonResponse(
        {
            "status": billing_import.status,
            "stage": billing_import.stage,
            "progress": billing_import.progress,
            "finished": billing_import.is_finished,
        }
    )


# --- Chargeback -------------------------------------------------------------------------------


def chargeback(request: HttpRequest) -> HttpResponse:
    month, basis, months = _month_and_basis(request)
    context = {"month": month, "basis": basis, "months": months, "bases": BASIS_CHOICES}
    if month:
        result = selectors.chargeback_get(user=request.user, month=month, basis=basis)
        daily = selectors.chargeback_daily(user=request.user, month=month, basis=basis)
        context["chargeback"] = result
        context["charts"] = [
            {
                "id": f"daily-{currency}",
                "currency": currency,
                "figure": selectors.cost_series_cached(
                    "daily-figure",
                    series,
                    partial(charts.daily_by_unit, series, currency=currency),
                    currency,
                ),
            }
            for currency, series in daily.items()
        ]
    return render(request, "costs/chargeback.html", context)


def chargeback_export(request: HttpRequest) -> HttpResponse:
    month, basis, _ = _month_and_basis(request, picker=False)
    fmt = request.GET.get("format", "csv")
    if fmt not in EXPORTERS or month is None:
        raise Http404("Choose a month with costs and a format: csv, xlsx or json.")
    result = selectors.chargeback_get(user=request.user, month=month, basis=basis)
    response = HttpResponse(EXPORTERS[fmt](result), content_type=CONTENT_TYPES[fmt])
    name = f"chargeback-{month:%Y-%m}-{basis}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def chargeback_resources(request: HttpRequest) -> HttpResponse:
    month, basis, _ = _month_and_basis(request, picker=False)
    if month is None:
        raise Http404("No costs yet.")
    code = request.GET.get("bu", selectors.UNALLOCATED).upper()
    unit = None
    if code != selectors.UNALLOCATED:
        unit = get_object_or_404(business_unit_list(user=request.user), code=code)
    elif not selectors.sees_unallocated(request.user):
        raise Http404("Unallocated costs are visible to finance and platform admins.")
    service = request.GET.get("service", "")
    rows = selectors.chargeback_resources(
        user=request.user,
        month=month,
        basis=basis,
        business_unit=unit,
        service=service,
        limit=RESOURCE_LIMIT,
    )
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row["currency"]] = totals.get(row["currency"], Decimal(0)) + row["amount"]
    return render(
        request,
        "costs/chargeback_resources.html",
        {
            "month": month,
            "basis": basis,
            "code": code,
            "unit": unit,
            "service": service,
            "rows": rows,
            "limit": RESOURCE_LIMIT,
            "totals": [{"currency": c, "amount": a} for c, a in sorted(totals.items())],
        },
    )


# --- Cost explorer ----------------------------------------------------------------------------


def explorer(request: HttpRequest) -> HttpResponse:
    base = selectors.cost_row_list(user=request.user)
    filterset = CostRowFilterSet(request.GET or None, queryset=base)
    if filterset.is_bound and not filterset.is_valid():
        rows = base.none()  # a filter that cannot be applied must not show everything
    else:
        rows = filterset.qs if filterset.is_bound else base
    group_by = request.GET.get("group_by", "service")
    if group_by not in selectors.GROUPINGS:
        group_by = "service"
    basis = request.GET.get("basis", "billed")
    if basis not in selectors.BASES:
        basis = "billed"
    groups = selectors.cost_summary(rows=rows, group_by=group_by, basis=basis)
    page = Paginator(groups, 50).get_page(request.GET.get("page"))
    by_currency: dict[str, tuple[list[str], list[Decimal]]] = {}
    for group in page.object_list:
        labels, amounts = by_currency.setdefault(group["currency"], ([], []))
        labels.append(str(group["key"] or "—"))
        amounts.append(group["amount"])
    figures = [
        {
            "id": f"explore-{currency}",
            "currency": currency,
            "figure": charts.grouped_bars(labels, amounts, currency=currency, dimension=group_by),
        }
        for currency, (labels, amounts) in by_currency.items()
    ]
    return render(
        request,
        "costs/explorer.html",
        {
            "filter": filterset if filterset.is_bound else CostRowFilterSet(queryset=base),
            "page": page,
            "group_by": group_by,
            "groupings": GROUP_CHOICES,
            "basis": basis,
            "bases": BASIS_CHOICES,
            "charts": figures,
            "totals": selectors.cost_totals(rows=rows, basis=basis),
            "group_label": dict(GROUP_CHOICES)[group_by],
        },
    )


# --- Unallocated and rules --------------------------------------------------------------------


@cost_manager_required
def unallocated(request: HttpRequest) -> HttpResponse:
    month, basis, months = _month_and_basis(request)
    groups = selectors.unallocated_by_key(month=month, basis=basis) if month else []
    page = Paginator(groups, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "costs/unallocated.html",
        {"month": month, "basis": basis, "months": months, "bases": BASIS_CHOICES, "page": page},
    )


@cost_manager_required
def rule_list(request: HttpRequest) -> HttpResponse:
    rules = AllocationRule.objects.select_related("business_unit").order_by("priority", "pk")
    page = Paginator(rules, 50).get_page(request.GET.get("page"))
    return render(request, "costs/rule_list.html", {"page": page})


def _rule_save(request: HttpRequest, form: AllocationRuleForm, rule: AllocationRule | None):
    data = form.cleaned_data
    try:
        return services.allocation_rule_save(
            rule=rule,
            business_unit=data["business_unit"],
            tag_key=data["tag_key"],
            tag_values=data["tag_values"],
            priority=data["priority"],
            is_active=data["is_active"],
            description=data["description"],
            by=request.user,
        )
    except DomainError as exc:
        form.add_error(None, exc.message)
        return None


@cost_manager_required
@require_http_methods(["GET", "POST"])
def rule_create(request: HttpRequest) -> HttpResponse:
    initial = {
        "tag_key": request.GET.get("tag", ""),
        "tag_values": request.GET.get("value", ""),
        "priority": 100,
        "is_active": True,
    }
    form = AllocationRuleForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        rule = _rule_save(request, form, None)
        if rule:
            messages.success(
                request,
                f"Rule saved: tag {rule.tag_key} = {', '.join(rule.tag_values) or 'any value'}"
                f" → {rule.business_unit.code} "
                f"(priority {rule.priority}). Costs were re-attributed.",
            )
            target = request.POST.get("next", "")
            if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
                target = reverse("costs:rule-list")
            return redirect(target)
    return render(
        request,
        "costs/rule_form.html",
        {"form": form, "next": request.POST.get("next", request.GET.get("next", ""))},
    )


@cost_manager_required
@require_http_methods(["GET", "POST"])
def rule_update(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AllocationRule, pk=pk)
    form = AllocationRuleForm.for_rule(rule, data=request.POST or None)
    if request.method == "POST" and form.is_valid() and _rule_save(request, form, rule):
        messages.success(request, "Rule updated. Costs were re-attributed.")
        return redirect("costs:rule-list")
    return render(request, "costs/rule_form.html", {"form": form, "rule": rule})


@cost_manager_required
@require_POST
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AllocationRule, pk=pk)
    services.allocation_rule_delete(rule=rule, by=request.user)
    messages.success(request, "Rule deleted. Costs were re-attributed.")
    return redirect("costs:rule-list")


# --- Budgets ----------------------------------------------------------------------------------


def _current_month() -> dt.date:
    return timezone.now().date().replace(day=1)


def _budget_month(request: HttpRequest) -> dt.date:
    raw = request.GET.get("month")
    if not raw:
        # This month once it has costs; until its bill arrives, the latest month that does.
        current = _current_month()
        months = selectors.chargeback_months(user=request.user)
        return current if current in months or not months else max(months)
    try:
        return selectors.month_parse(raw)
    except ValueError as exc:
        raise Http404(str(exc)) from exc


def _budget_months(request: HttpRequest, month: dt.date) -> list[dt.date]:
    """Months to pick from: those with costs, this month, and the one shown."""
    months = set(selectors.chargeback_months(user=request.user))
    return sorted(months | {_current_month(), month}, reverse=True)


def budget_list(request: HttpRequest) -> HttpResponse:
    month = _budget_month(request)
    base = selectors.budget_list(user=request.user)
    filterset = BudgetFilterSet(request.GET or None, queryset=base)
    if filterset.is_bound and not filterset.is_valid():
        rows = base.none()
    else:
        rows = filterset.qs if filterset.is_bound else base
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "costs/budget_list.html",
        {
            "month": month,
            "months": _budget_months(request, month),
            "filter": filterset if filterset.is_bound else BudgetFilterSet(queryset=base),
            "page": page,
            "statuses": selectors.budget_statuses(budgets=page.object_list, month=month),
            "may_create": selectors.budget_manageable_units(user=request.user).exists(),
            "filtered": any(request.GET.get(name) for name in BudgetFilterSet.base_filters),
        },
    )


def budget_detail(request: HttpRequest, pk: int) -> HttpResponse:
    budget = get_object_or_404(selectors.budget_list(user=request.user), pk=pk)
    month = _budget_month(request)
    status = selectors.budget_statuses(budgets=[budget], month=month)[0]
    chart = None
    if status.standing is not None:
        points = budgets.cumulative(
            selectors.budget_daily(budget=budget, month=month),
            month=month,
            data_until=status.standing.data_until,
        )
        chart = {
            "id": "budget-burn",
            "currency": budget.currency,
            "figure": budgets.burn_chart(
                points,
                month=month,
                amount=budget.amount,
                currency=budget.currency,
                trend=status.standing.projection,
                freeze_at=budget.freeze_at_percent,
            ),
        }
    alerts = Paginator(selectors.budget_alert_list(budget=budget), 50).get_page(
        request.GET.get("page")
    )
    may_lift = status.freeze is not None and request.user.has_role(Role.PLATFORM_ADMIN)
    return render(
        request,
        "costs/budget_detail.html",
        {
            "budget": budget,
            "month": month,
            "months": _budget_months(request, month),
            "previous_month": budgets.previous_month(month),
            "next_month": budgets.next_month(month),
            "status": status,
            "standing": status.standing,
            "chart": chart,
            "alerts": alerts,
            "may_edit": selectors.budget_may_edit(user=request.user),
            "lift_form": FreezeLiftForm() if may_lift else None,
        },
    )


def _budget_save(request: HttpRequest, form: BudgetForm, budget: Budget | None) -> Budget | None:
    data = form.cleaned_data
    try:
        return services.budget_save(
            budget=budget,
            name=data["name"],
            business_unit=data["business_unit"],
            amount=data["amount"],
            currency=data["currency"],
            basis=data["basis"],
            tag_key=data["tag_key"],
            tag_value=data["tag_value"],
            thresholds=data["thresholds"],
            forecast_thresholds=data["forecast_thresholds"],
            freeze_at_percent=data["freeze_at_percent"],
            first_month=data["first_month"],
            last_month=data["last_month"],
            notify=data["notify"],
            by=request.user,
        )
    except DomainError as exc:
        form.add_error(None, exc.message)
        return None


@require_http_methods(["GET", "POST"])
def budget_create(request: HttpRequest) -> HttpResponse:
    units = selectors.budget_manageable_units(user=request.user)
    if not units.exists():
        raise PermissionDenied(
            "Budgets are set by finance and platform admins; a unit's owner reads its budget."
        )
    initial = {"business_unit": units.filter(code__iexact=request.GET.get("bu", "")).first()}
    form = BudgetForm(request.POST or None, units=units, initial=initial)
    if request.method == "POST" and form.is_valid():
        budget = _budget_save(request, form, None)
        if budget:
            messages.success(request, f"Budget {budget.name} saved.")
            return redirect(budget)
    return render(request, "costs/budget_form.html", {"form": form})


def _budget_editable(request: HttpRequest, pk: int) -> Budget:
    budget = get_object_or_404(selectors.budget_list(user=request.user), pk=pk)
    if not selectors.budget_may_edit(user=request.user):
        raise PermissionDenied("Budgets are changed by finance and platform admins.")
    return budget


@require_http_methods(["GET", "POST"])
def budget_update(request: HttpRequest, pk: int) -> HttpResponse:
    budget = _budget_editable(request, pk)
    units = selectors.budget_manageable_units(user=request.user)
    form = BudgetForm.for_budget(budget, units=units, data=request.POST or None)
    if request.method == "POST" and form.is_valid() and _budget_save(request, form, budget):
        messages.success(request, f"Budget {budget.name} updated.")
        return redirect(budget)
    return render(request, "costs/budget_form.html", {"form": form, "budget": budget})


@require_POST
def budget_delete(request: HttpRequest, pk: int) -> HttpResponse:
    budget = _budget_editable(request, pk)
    name = budget.name
    services.budget_delete(budget=budget, by=request.user)
    messages.success(request, f"Budget {name} deleted.")
    return redirect("costs:budget-list")


@require_POST
def budget_freeze_lift(request: HttpRequest, pk: int) -> HttpResponse:
    """A platform admin lifts the freeze on the budget's unit, saying why."""
    budget = get_object_or_404(selectors.budget_list(user=request.user), pk=pk)
    freeze = freezes_in_force(business_unit_ids=[budget.business_unit_id]).get(
        budget.business_unit_id
    )
    form = FreezeLiftForm(request.POST)
    if freeze is None:
        messages.error(request, f"{budget.business_unit.name} is not under a deployment freeze.")
    elif not form.is_valid():
        messages.error(request, "Say why the freeze is lifted.")
    else:
        try:
            # The service says who may lift a freeze (a platform admin).
            freeze_lift(freeze=freeze, by=request.user, reason=form.cleaned_data["reason"])
        except PermissionDeniedError as exc:
            raise PermissionDenied(exc.message) from exc
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                f"The freeze on {budget.business_unit.name} is lifted; deployments may go ahead. "
                "A budget threshold already reached this month will not freeze it again.",
            )
    return redirect(budget)


# --- Cloud syncs -----------------------------------------------------------------------------


def _platform_admin_required(request: HttpRequest) -> None:
    if not request.user.has_role(Role.PLATFORM_ADMIN):
        raise PermissionDenied("Cloud accounts and syncs are for platform admins.")


@require_http_methods(["GET", "POST"])
def sync_run_list(request: HttpRequest) -> HttpResponse:
    """Every sync run, newest first, and a form to start one now."""
    _platform_admin_required(request)
    accounts = CloudAccount.objects.filter(is_active=True).order_by("name")
    form = SyncRunForm(request.POST or None, accounts=accounts, kinds=SyncKind.choices)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                run = sync.sync_run_create(
                    account=data["account"],
                    kind=data["kind"],
                    by=request.user,
                    start=data["start"],
                    end=data["end"],
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
                status = exc.http_status
            else:
                run.refresh_from_db()
                messages.success(request, f"Sync #{run.pk}: {run.get_status_display().lower()}.")
                return redirect(run)
    runs = SyncRun.objects.select_related("account", "requested_by")
    if request.GET.get("status") in SyncStatus.values:
        runs = runs.filter(status=request.GET["status"])
    page = Paginator(runs, 25).get_page(request.GET.get("page"))
    return render(
        request,
        "costs/sync_run_list.html",
        {
            "form": form,
            "page": page,
            "accounts": CloudAccount.objects.order_by("provider", "name"),
            "statuses": SyncStatus.choices,
        },
        status=status,
    )


def sync_run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _platform_admin_required(request)
    run = get_object_or_404(SyncRun.objects.select_related("account", "requested_by"), pk=pk)
    return render(request, "costs/sync_run_detail.html", {"run": run})


# --- Cost per inference ----------------------------------------------------------------------


def cost_per_inference(request: HttpRequest) -> HttpResponse:
    """Per model version and endpoint, the month's actual cost per 1k invocations beside the
    benchmark's predicted cost per 1k requests; ``?model=`` and ``?business_unit=`` narrow it."""
    month, basis, months = _month_and_basis(request)
    models = registry_model_list(user=request.user)
    units = business_unit_list(user=request.user).order_by("code")
    model = unit = None
    if raw := request.GET.get("model"):
        if not raw.isdigit():
            raise Http404(f"model {raw!r} is not a registered model's id")
        model = get_object_or_404(models, pk=int(raw))
    if code := request.GET.get("business_unit"):
        unit = get_object_or_404(units, code__iexact=code)
    endpoints = (
        inference.endpoint_inference_list(
            user=request.user,
            month=month,
            basis=basis,
            model_id=model.pk if model else None,
            business_unit_id=unit.pk if unit else None,
        )
        if month
        else []
    )
    return render(
        request,
        "costs/cost_per_inference.html",
        {
            "month": month,
            "basis": basis,
            "months": months,
            "bases": BASIS_CHOICES,
            "models": models,
            "units": units,
            "model": model,
            "unit": unit,
            "versions": inference.version_inference_list(endpoints=endpoints),
            "unlinked": [e for e in endpoints if e.version is None],
        },
    )
