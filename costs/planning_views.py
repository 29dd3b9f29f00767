"""Capacity planning and commitment pages.

Reads go through :mod:`costs.planning` / :mod:`costs.commitment_services` (a plan of a unit
the person does not see is a 404); each POST calls one service. A refused write re-renders
the page with the service's message, what was typed, and the status (400, 409); a missing
role is a 403.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from costs import commitment_services, planning
from costs.models import (
    CapacityPlan,
    CommitmentRecommendation,
    CycleStatus,
    LineStatus,
    PlanLine,
    PlanningCycle,
    RecommendationStatus,
)
from governance.exceptions import DomainError, PermissionDeniedError
from governance.models import ReviewBoard
from registry.models import CapacityPool

PAGE_SIZE = 25


# --- Forms ------------------------------------------------------------------------------------


class CycleOpenForm(forms.Form):
    fiscal_year = forms.IntegerField(min_value=1901, max_value=9998, label="Fiscal year")
    quarter = forms.TypedChoiceField(
        choices=[(q, f"Q{q}") for q in range(1, 5)], coerce=int, label="Quarter"
    )
    plans_due = forms.DateField(
        required=False,
        label="Plans due",
        help_text="Units file their plans by this day (optional).",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    board = forms.ModelChoiceField(
        queryset=ReviewBoard.objects.none(),
        required=False,
        label="Review board",
        help_text="Its members decide the lines; none: any board member does.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["board"].queryset = ReviewBoard.objects.filter(is_active=True).order_by("name")


def _month_choices(cycle: PlanningCycle) -> list[tuple[str, str]]:
    return [(f"{m:%Y-%m}", f"{m:%B %Y}") for m in planning.cycle_months(cycle)]


HOURS_FIELD = {
    "max_digits": 14,
    "decimal_places": 2,
    "min_value": Decimal(0),
    "label": "GPU-hours",
}


class CycleCancelForm(forms.Form):
    reason = forms.CharField(
        label="Why cancel it",
        max_length=planning.RATIONALE_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept on the cycle's Decision, e.g. “Opened for the wrong quarter”.",
    )


class PlanLineForm(forms.Form):
    pool = forms.ModelChoiceField(queryset=CapacityPool.objects.none(), label="Pool")
    month = forms.ChoiceField(label="Month")
    gpu_hours = forms.DecimalField(**HOURS_FIELD)
    justification = forms.CharField(
        max_length=planning.JUSTIFICATION_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What the hours are for, e.g. the spring re-training of ranker-7b.",
    )

    def __init__(self, *args, cycle: PlanningCycle, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pool"].queryset = CapacityPool.objects.order_by("name")
        self.fields["month"].choices = _month_choices(cycle)

    def clean_month(self) -> dt.date:
        return dt.datetime.strptime(self.cleaned_data["month"], "%Y-%m").date()  # noqa: DTZ007 - a month, not a time


class PlanLineEditForm(forms.Form):
    gpu_hours = forms.DecimalField(**HOURS_FIELD)
    justification = forms.CharField(
        max_length=planning.JUSTIFICATION_MAX,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class PlanJustificationForm(forms.Form):
    justification = forms.CharField(
        max_length=planning.JUSTIFICATION_MAX,
        required=False,
        label="The plan in a few sentences",
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class LineDecideForm(forms.Form):
    decision = forms.ChoiceField(choices=planning.LineDecision.CHOICES, widget=forms.RadioSelect)
    approved_gpu_hours = forms.DecimalField(
        **{**HOURS_FIELD, "label": "Grant (GPU-hours, when trimming)"}, required=False
    )
    rationale = forms.CharField(
        max_length=planning.RATIONALE_MAX, widget=forms.Textarea(attrs={"rows": 2})
    )


def _refused(exc: DomainError) -> None:
    if isinstance(exc, PermissionDeniedError):
        raise PermissionDenied(exc.message) from exc


def _plan_allowed(
    check: Callable[[Any, CapacityPlan], None], request: HttpRequest, plan: CapacityPlan
) -> None:
    """Run a plan's permission check before the form is read: a refusal is a 403."""
    try:
        check(request.user, plan)
    except PermissionDeniedError as exc:
        raise PermissionDenied(exc.message) from exc


# --- Cycles ----------------------------------------------------------------------------------


def _cycle_list_page(request: HttpRequest, *, form: CycleOpenForm | None = None, status=200):
    user = request.user
    page = Paginator(planning.cycle_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    sees_all = planning.plans_see_all(user)
    mine: dict[int, list[CapacityPlan]] = {}
    if not sees_all:
        for plan in planning.plan_list(user=user).filter(cycle__in=list(page.object_list)):
            mine.setdefault(plan.cycle_id, []).append(plan)
    today = timezone.now().date()
    upcoming = planning.quarter_upcoming(today)
    may_open = planning.planning_may_run(user)
    to_plan = planning.quarter_to_plan(today) if may_open else None
    if may_open and form is None:
        board = ReviewBoard.objects.filter(is_active=True).order_by("name").first()
        form = CycleOpenForm(
            initial={
                "fiscal_year": to_plan.fiscal_year,
                "quarter": to_plan.quarter,
                "board": board,
            }
        )
    return render(
        request,
        "costs/planning_cycles.html",
        {
            "page": page,
            "mine": mine,
            "sees_all": sees_all,
            "open_form": form if may_open else None,
            "next_quarter": upcoming,
            "to_plan": to_plan,
            "calendar": planning.fiscal_calendar_text(),
            "commitments": commitment_services.commitments_may_see(user),
        },
        status=status,
    )


def planning_cycle_list(request: HttpRequest) -> HttpResponse:
    return _cycle_list_page(request)


@require_POST
def planning_cycle_open(request: HttpRequest) -> HttpResponse:
    if not planning.planning_may_run(request.user):
        raise PermissionDenied("Planning cycles are opened by finance and platform admins.")
    form = CycleOpenForm(request.POST)
    if not form.is_valid():
        return _cycle_list_page(request, form=form, status=400)
    data = form.cleaned_data
    try:
        cycle = planning.cycle_open(
            fiscal_year=data["fiscal_year"],
            quarter=data["quarter"],
            plans_due=data["plans_due"],
            board=data["board"],
            by=request.user,
        )
    except DomainError as exc:
        _refused(exc)
        form.add_error(None, exc.message)
        return _cycle_list_page(request, form=form, status=exc.http_status)
    messages.success(
        request,
        f"{cycle} is open: {cycle.plans.count()} business unit(s) have a pre-filled draft plan "
        "and their owners are e-mailed a link.",
    )
    return redirect(cycle)


def _cycle_get(pk: int) -> PlanningCycle:
    return get_object_or_404(planning.cycle_list(), pk=pk)


def _cycle_page(
    request: HttpRequest,
    cycle: PlanningCycle,
    *,
    status: int = 200,
    cancel_form: CycleCancelForm | None = None,
) -> HttpResponse:
    user = request.user
    sees_all = planning.plans_see_all(user)
    plans = (
        planning.plan_list(user=user)
        .filter(cycle=cycle)
        .annotate(
            line_count=Count("lines"),
            asked=Sum("lines__gpu_hours"),
            granted=Sum("lines__approved_gpu_hours"),
        )
        .order_by("business_unit__code")
    )
    context: dict[str, Any] = {
        "cycle": cycle,
        "plans": plans,
        "sees_all": sees_all,
        "may_start_review": planning.cycle_may_start_review(user, cycle),
        "may_approve": planning.cycle_may_approve(user, cycle),
        "cancel_form": cancel_form
        or (CycleCancelForm() if planning.cycle_may_cancel(user, cycle) else None),
    }
    if cycle.status == CycleStatus.CANCELLED:
        context["cancelled"] = planning.cycle_cancel_decision(cycle)
    if sees_all:
        context["pool_months"] = planning.cycle_pool_months(cycle)
        context["conflicts"] = planning.cycle_conflict_list(cycle)
        context["pending"] = planning.plan_decisions_pending(cycle).count()
        if cycle.status == CycleStatus.APPROVED:
            context["decision"] = planning.cycle_approval_decision(cycle)
            context["quotas"] = planning.cycle_quota_list(cycle)
            context["budgets"] = planning.cycle_budget_list(cycle)
    return render(request, "costs/planning_cycle.html", context, status=status)


def planning_cycle_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _cycle_page(request, _cycle_get(pk))


def _cycle_move(
    request: HttpRequest, cycle: PlanningCycle, move: Callable[[], str]
) -> HttpResponse:
    """Run one of the cycle's moves: its message on success, the page with the refusal (and
    its status) otherwise."""
    try:
        text = move()
    except DomainError as exc:
        _refused(exc)
        messages.error(request, exc.message)
        return _cycle_page(request, _cycle_get(cycle.pk), status=exc.http_status)
    messages.success(request, text)
    return redirect(cycle)


@require_POST
def planning_cycle_start_review(request: HttpRequest, pk: int) -> HttpResponse:
    cycle = _cycle_get(pk)

    def move() -> str:
        started = planning.cycle_start_review(cycle=cycle, by=request.user)
        text = f"{cycle} is in review: the board decides each filed line."
        if started.unfiled:
            codes = ", ".join(p.business_unit.code for p in started.unfiled)
            text += (
                f" Not filed yet: {codes} (they may still file late; unfiled plans get no quotas)."
            )
        if started.conflicts:
            text += f" {len(started.conflicts)} capacity conflict(s) opened."
        return text

    return _cycle_move(request, cycle, move)


@require_POST
def planning_cycle_approve(request: HttpRequest, pk: int) -> HttpResponse:
    cycle = _cycle_get(pk)

    def move() -> str:
        result = planning.cycle_approve(cycle=cycle, by=request.user)
        return (
            f"{cycle} is approved: {len(result.quotas)} quota(s) and {len(result.budgets)} "
            "budget(s) now follow the plan."
        )

    return _cycle_move(request, cycle, move)


@require_POST
def planning_cycle_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    cycle = _cycle_get(pk)
    form = CycleCancelForm(request.POST)
    if not form.is_valid():
        if not planning.cycle_may_cancel(request.user, cycle):
            raise PermissionDenied("Planning cycles are cancelled by finance and platform admins.")
        return _cycle_page(request, cycle, status=400, cancel_form=form)

    def move() -> str:
        planning.cycle_cancel(cycle=cycle, by=request.user, reason=form.cleaned_data["reason"])
        return (
            f"{cycle} is cancelled: its plans are closed and its conflicts withdrawn. Open the "
            "quarter again from Capacity planning when it is right."
        )

    return _cycle_move(request, cycle, move)


# --- Plans -----------------------------------------------------------------------------------


def _plan_get(request: HttpRequest, pk: int) -> CapacityPlan:
    return get_object_or_404(planning.plan_with_lines(user=request.user), pk=pk)


def _plan_page(
    request: HttpRequest, plan: CapacityPlan, *, status: int = 200, **overrides: Any
) -> HttpResponse:
    user = request.user
    cycle = plan.cycle
    lines = list(plan.lines.all())
    editable = planning.plan_may_change(user, plan)
    deciding = planning.plan_lines_may_decide(user, plan)
    prices = planning.pool_gpu_hour_prices([line.pool for line in lines])
    edit_forms = overrides.pop("edit_forms", {})
    decide_forms = overrides.pop("decide_forms", {})
    rows = []
    for line in lines:
        price = prices.get(line.pool_id)
        hours = line.approved_gpu_hours if line.status != LineStatus.PENDING else line.gpu_hours
        rows.append(
            {
                "line": line,
                "capacity": planning.pool_capacity(line.pool, line.month),
                "cost": hours * price.amount if price and hours is not None else None,
                "currency": price.currency if price else "",
                "edit_form": edit_forms.get(line.pk)
                or (
                    PlanLineEditForm(
                        initial={"gpu_hours": line.gpu_hours, "justification": line.justification},
                        prefix=f"line-{line.pk}",
                    )
                    if editable
                    else None
                ),
                "decide_form": decide_forms.get(line.pk)
                or (LineDecideForm(prefix=f"decide-{line.pk}") if deciding else None),
            }
        )
    pool_months = {}
    if planning.plans_see_all(user):
        pool_months = {(e.pool.pk, e.month): e for e in planning.cycle_pool_months(cycle)}
    for row in rows:
        row["pool_month"] = pool_months.get((row["line"].pool_id, row["line"].month))
    context: dict[str, Any] = {
        "plan": plan,
        "cycle": cycle,
        "rows": rows,
        "editable": editable,
        "deciding": deciding,
        "may_file": editable,
        "may_reopen": planning.plan_may_reopen(user, plan),
        "add_form": PlanLineForm(cycle=cycle) if editable else None,
        "justification_form": PlanJustificationForm(initial={"justification": plan.justification})
        if editable
        else None,
        "own_unit": plan.business_unit_id in user.scoped_business_unit_ids,
    }
    context.update(overrides)
    return render(request, "costs/planning_plan.html", context, status=status)


def capacity_plan_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _plan_page(request, _plan_get(request, pk))


def _plan_editor(request: HttpRequest, pk: int) -> CapacityPlan:
    """The plan, for its unit's people only (others who may read it get a 403)."""
    plan = _plan_get(request, pk)
    _plan_allowed(planning.plan_edit_check, request, plan)
    return plan


def _plan_refused(request: HttpRequest, plan_pk: int, exc: DomainError, **overrides: Any):
    _refused(exc)
    messages.error(request, exc.message)
    return _plan_page(request, _plan_get(request, plan_pk), status=exc.http_status, **overrides)


@require_POST
def capacity_plan_line_add(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan_editor(request, pk)
    form = PlanLineForm(request.POST, cycle=plan.cycle)
    if not form.is_valid():
        return _plan_page(request, plan, status=400, add_form=form)
    data = form.cleaned_data
    try:
        line = planning.plan_line_add(
            plan=plan,
            by=request.user,
            pool=data["pool"],
            month=data["month"],
            gpu_hours=data["gpu_hours"],
            justification=data["justification"],
        )
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _plan_refused(request, pk, exc, add_form=form)
    messages.success(
        request, f"Added {line.gpu_hours:,} GPU-h of {line.pool} in {line.month:%Y-%m}."
    )
    return redirect(plan)


def _line_get(plan: CapacityPlan, line_pk: int) -> PlanLine:
    return get_object_or_404(PlanLine.objects.select_related("plan", "pool"), pk=line_pk, plan=plan)


@require_POST
def capacity_plan_line_update(request: HttpRequest, pk: int, line_pk: int) -> HttpResponse:
    plan = _plan_editor(request, pk)
    line = _line_get(plan, line_pk)
    form = PlanLineEditForm(request.POST, prefix=f"line-{line.pk}")
    if not form.is_valid():
        return _plan_page(request, plan, status=400, edit_forms={line.pk: form})
    try:
        planning.plan_line_update(
            line=line,
            by=request.user,
            gpu_hours=form.cleaned_data["gpu_hours"],
            justification=form.cleaned_data["justification"],
        )
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _plan_refused(request, pk, exc, edit_forms={line.pk: form})
    messages.success(request, f"{line.pool} {line.month:%Y-%m} updated.")
    return redirect(plan)


@require_POST
def capacity_plan_line_delete(request: HttpRequest, pk: int, line_pk: int) -> HttpResponse:
    plan = _plan_editor(request, pk)
    line = _line_get(plan, line_pk)
    try:
        planning.plan_line_delete(line=line, by=request.user)
    except DomainError as exc:
        return _plan_refused(request, pk, exc)
    messages.success(request, f"Removed {line.pool} {line.month:%Y-%m} from the plan.")
    return redirect(plan)


@require_POST
def capacity_plan_update(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan_editor(request, pk)
    form = PlanJustificationForm(request.POST)
    if not form.is_valid():
        return _plan_page(request, plan, status=400, justification_form=form)
    try:
        planning.plan_update(
            plan=plan, by=request.user, justification=form.cleaned_data["justification"]
        )
    except DomainError as exc:
        return _plan_refused(request, pk, exc, justification_form=form)
    messages.success(request, "The plan's justification is saved.")
    return redirect(plan)


@require_POST
def capacity_plan_file(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan_editor(request, pk)
    try:
        planning.plan_file(plan=plan, by=request.user)
    except DomainError as exc:
        return _plan_refused(request, pk, exc)
    opened = planning.cycle_conflict_list(plan.cycle).count()
    text = f"{plan.business_unit.code}'s plan is filed for the board."
    if opened:
        text += f" {opened} pool-month(s) of {plan.cycle} are over capacity: see the cycle page."
    messages.success(request, text)
    return redirect(plan)


@require_POST
def capacity_plan_reopen(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan_editor(request, pk)
    try:
        planning.plan_reopen(plan=plan, by=request.user)
    except DomainError as exc:
        return _plan_refused(request, pk, exc)
    messages.success(request, "The plan is a draft again; file it when it is ready.")
    return redirect(plan)


@require_POST
def plan_line_decide(request: HttpRequest, pk: int, line_pk: int) -> HttpResponse:
    plan = _plan_get(request, pk)
    line = _line_get(plan, line_pk)
    _plan_allowed(planning.line_decide_check, request, plan)
    form = LineDecideForm(request.POST, prefix=f"decide-{line.pk}")
    if not form.is_valid():
        return _plan_page(request, plan, status=400, decide_forms={line.pk: form})
    data = form.cleaned_data
    try:
        decided = planning.plan_line_decide(
            line=line,
            by=request.user,
            outcome=data["decision"],
            rationale=data["rationale"],
            approved_gpu_hours=data["approved_gpu_hours"],
        )
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _plan_refused(request, pk, exc, decide_forms={line.pk: form})
    messages.success(
        request,
        f"{decided.pool} {decided.month:%Y-%m}: {decided.get_status_display().lower()} "
        f"({decided.approved_gpu_hours:,} of {decided.gpu_hours:,} GPU-h granted).",
    )
    return redirect(plan)


# --- Commitments -----------------------------------------------------------------------------


def _commitments_allowed(request: HttpRequest) -> None:
    if not commitment_services.commitments_may_see(request.user):
        raise PermissionDenied("Commitments are for finance, platform admins and the review board.")


def commitment_list(request: HttpRequest) -> HttpResponse:
    _commitments_allowed(request)
    rows = list(
        commitment_services.commitment_list(user=request.user).filter(
            status__in=[RecommendationStatus.OPEN, RecommendationStatus.REQUESTED]
        )
    )
    buyable = commitment_services.commitment_request_unit_ids(request.user)
    for rec in rows:
        rec.may_request = rec.status == RecommendationStatus.OPEN and rec.pool.owner_id in buyable
    return render(
        request,
        "costs/commitment_list.html",
        {
            "recommendations": rows,
            "offers": commitment_services.offer_list(),
        },
    )


@require_POST
def commitment_recompute(request: HttpRequest) -> HttpResponse:
    _commitments_allowed(request)
    run = commitment_services.commitment_recommendations_compute(by=request.user)
    text = f"{len(run.made)} recommendation(s) computed; {run.superseded} older one(s) superseded."
    messages.success(request, text)
    for reason in run.skipped:
        messages.warning(request, reason)
    return redirect("costs:commitment-list")


def _commitment_get(request: HttpRequest, pk: int) -> CommitmentRecommendation:
    _commitments_allowed(request)
    return get_object_or_404(commitment_services.commitment_list(user=request.user), pk=pk)


def _commitment_page(
    request: HttpRequest, rec: CommitmentRecommendation, *, status: int = 200
) -> HttpResponse:
    user = request.user
    return render(
        request,
        "costs/commitment_detail.html",
        {
            "rec": rec,
            "may_request": rec.status == RecommendationStatus.OPEN
            and commitment_services.commitment_may_request(user, rec),
            "may_dismiss": rec.status == RecommendationStatus.OPEN,
            "history": commitment_services.commitment_list(user=user)
            .filter(pool=rec.pool, offer=rec.offer)
            .exclude(pk=rec.pk)[:10],
        },
        status=status,
    )


def commitment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _commitment_page(request, _commitment_get(request, pk))


@require_POST
def commitment_request_view(request: HttpRequest, pk: int) -> HttpResponse:
    rec = _commitment_get(request, pk)
    try:
        approval = commitment_services.commitment_request(recommendation=rec, by=request.user)
    except DomainError as exc:
        _refused(exc)
        messages.error(request, exc.message)
        return _commitment_page(request, _commitment_get(request, pk), status=exc.http_status)
    messages.success(
        request,
        f"Purchase requested: {approval.title} ({approval.get_status_display().lower()}); the "
        "approvers its policy names are e-mailed their links.",
    )
    return redirect(approval)


@require_POST
def commitment_dismiss_view(request: HttpRequest, pk: int) -> HttpResponse:
    rec = _commitment_get(request, pk)
    try:
        commitment_services.commitment_dismiss(recommendation=rec, by=request.user)
    except DomainError as exc:
        _refused(exc)
        messages.error(request, exc.message)
        return _commitment_page(request, _commitment_get(request, pk), status=exc.http_status)
    messages.success(request, "Recommendation dismissed; the next computation makes a fresh one.")
    return redirect("costs:commitment-list")
