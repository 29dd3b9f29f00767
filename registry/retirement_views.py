"""Retirement pages: the cases, one case with its evidence and history, the endpoints' last
verdicts, and the e-mailed keep / retire links.

Reads go through ``registry.retirement_services.cases_visible`` (a case of a unit the person
does not see is a 404); each POST calls one service and redirects; a refused write re-renders
the case with the service's message and its status (400, 403 or 409). The e-mailed links
follow the approval links: a GET only shows what the link would do (mail scanners fetch
links), a POST with the CSRF token acts, as the person the link was sent to, signed in or not.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import plotly.graph_objects as go
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from governance.choices import Role
from governance.exceptions import DomainError
from governance.links import LinkTamperedError
from governance.models import User
from governance.selectors import visible_unit_ids
from governance.throttle import link_throttle
from registry import retirement_services as services
from registry.filters import EndpointFilterSet, RetirementCaseFilterSet
from registry.models import (
    CaseKind,
    CaseStatus,
    Endpoint,
    RetirementCase,
    RetirementLink,
)
from registry.models.retirement import ACTIVE_STATUSES

PAGE_SIZE = 25
KEEP_DAYS_DEFAULT = 90
REASON_MAX = 2000


# --- Filters and forms ------------------------------------------------------------------------


def _keep_until_default() -> dt.date:
    return timezone.now().date() + dt.timedelta(days=KEEP_DAYS_DEFAULT)


class KeepForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX,
        label="Why keep it?",
        help_text="e.g. Needed for the quarterly re-training in December.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    until = forms.DateField(
        label="Keep it until",
        help_text=f"No case opens for it until then; at most {services.MAX_KEEP_DAYS} days.",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["until"].initial = _keep_until_default


class CloseForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX,
        label="Why close it?",
        widget=forms.Textarea(attrs={"rows": 2}),
    )


def _filtered(filterset) -> QuerySet:
    if filterset.is_bound and not filterset.is_valid():
        return filterset.queryset.none()  # a filter that cannot be applied must not show all
    return filterset.qs


def _is_filtered(request: HttpRequest, filterset) -> bool:
    return any(request.GET.get(name) for name in filterset.filters)


# --- Cases ------------------------------------------------------------------------------------


def _cases(user: User) -> QuerySet[RetirementCase]:
    return services.cases_visible(user).select_related(
        "decided_by", "endpoint__model_version__model"
    )


def case_list(request: HttpRequest) -> HttpResponse:
    filterset = RetirementCaseFilterSet(
        request.GET or None, queryset=_cases(request.user), request=request
    )
    page = Paginator(_filtered(filterset), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "registry/retirement/case_list.html",
        {"filter": filterset, "page": page, "filtered": _is_filtered(request, filterset)},
    )


def _case_get(request: HttpRequest, pk: int) -> RetirementCase:
    return get_object_or_404(_cases(request.user), pk=pk)


def _window(evidence: dict) -> list[dict[str, Any]]:
    rows = evidence.get("window") or []
    return [row for row in rows if isinstance(row, dict) and "day" in row]


def _window_chart(case: RetirementCase, window: list[dict[str, Any]]) -> dict | None:
    """Invocations per day as bars; a day without data gets no bar (unknown, not zero)."""
    if not window:
        return None
    fig = go.Figure()
    fig.add_bar(
        x=[row["day"] for row in window],
        y=[row.get("invocations") for row in window],
        hovertemplate="%{y:,} requests<extra>%{x}</extra>",
        marker_color="#2856c7",
        showlegend=False,
    )
    fig.update_layout(
        xaxis_title="Usage day (UTC)",
        xaxis_type="date",
        xaxis_tickformat="%d %b",
        yaxis_title="Invocations per day",
        yaxis_tickformat=",d",
        yaxis_rangemode="tozero",
        # A quiet window would otherwise get a -1..1 axis with repeated 0 / 1 ticks.
        yaxis_range=None if any(row.get("invocations") for row in window) else [0, 10],
        margin={"l": 70, "r": 20, "t": 20, "b": 50},
        height=280,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return {
        "id": f"case-{case.pk}-invocations",
        "currency": "requests",
        "figure": json.loads(fig.to_json()),
    }


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str) if value else ""


def _verdict(raw: dict | None) -> dict | None:
    """An endpoint's last verdict, with its evaluation time as a datetime for the page."""
    if not raw:
        return None
    return {**raw, "evaluated_at": parse_datetime(raw.get("evaluated_at") or "")}


def _case_page(
    request: HttpRequest,
    case: RetirementCase,
    *,
    status: int = 200,
    error: str = "",
    keep_form: KeepForm | None = None,
    close_form: CloseForm | None = None,
) -> HttpResponse:
    user = request.user
    decides = services.may_decide(user, case)
    is_admin = user.has_role(Role.PLATFORM_ADMIN)
    idle = case.kind == CaseKind.IDLE and case.endpoint_id is not None
    window = _window(case.evidence or {})
    steps = list(case.steps.select_related("by", "policy"))
    for step in steps:
        step.request_json = _pretty(step.request)
        step.response_json = _pretty(step.response)
    return render(
        request,
        "registry/retirement/case_detail.html",
        {
            "case": case,
            "endpoint": case.endpoint,
            "policy": case.policy,
            "evidence": case.evidence or {},
            "evidence_json": _pretty(case.evidence),
            "window": window,
            "chart": _window_chart(case, window),
            "verdict": _verdict(case.endpoint.retirement_verdict if case.endpoint else None),
            "steps": steps,
            "can_keep": decides and idle and case.is_active,
            "can_decide": decides and idle and case.is_open,
            "can_act": is_admin and idle and case.is_active,
            "can_restore": is_admin and idle and case.status == CaseStatus.RETIRED,
            "can_close": decides and case.is_active,
            "keep_form": keep_form or KeepForm(),
            "close_form": close_form or CloseForm(),
            "error": error,
        },
        status=status,
    )


def case_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _case_page(request, _case_get(request, pk))


def _refused(
    request: HttpRequest, case: RetirementCase, exc: DomainError, **forms_
) -> HttpResponse:
    return _case_page(
        request, _case_get(request, case.pk), status=exc.http_status, error=exc.message, **forms_
    )


def _acted_message(request: HttpRequest, case: RetirementCase) -> None:
    """Say what the policy's action did: a dry run, a retirement, a failure, or nothing."""
    if case.status == CaseStatus.DRY_RUN:
        messages.success(
            request,
            "Dry run recorded: nothing was changed in the cloud. The history says what would "
            "have been done.",
        )
    elif case.status == CaseStatus.RETIRED:
        saving = (
            f"; it saves {case.monthly_saving:,.2f} {case.currency} a month"
            if case.monthly_saving is not None
            else ""
        )
        messages.success(request, f"Retired{saving}.")
    elif case.status == CaseStatus.CLOSED:
        messages.success(request, "The policy only notifies: the case is closed, nothing changed.")
    elif case.last_error:
        messages.error(request, f"The action failed; the case stays open: {case.last_error}")


@require_POST
def case_keep(request: HttpRequest, pk: int) -> HttpResponse:
    case = _case_get(request, pk)
    form = KeepForm(request.POST)
    if not form.is_valid():
        return _case_page(request, case, status=400, keep_form=form)
    data = form.cleaned_data
    try:
        exemption = services.case_keep(
            case=case, by=request.user, until=data["until"], reason=data["reason"]
        )
    except DomainError as exc:
        return _refused(request, case, exc, keep_form=form)
    messages.success(
        request,
        f"Kept until {exemption.until:%d %b %Y}: no case opens for {case.endpoint} until then.",
    )
    return redirect(case)


def _acted(request: HttpRequest, pk: int, action) -> HttpResponse:
    """Run an action on the case (retire now, run the policy's action) and say what happened."""
    case = _case_get(request, pk)
    try:
        case = action(case=case, by=request.user)
    except DomainError as exc:
        return _refused(request, case, exc)
    _acted_message(request, case)
    return redirect(case)


@require_POST
def case_retire(request: HttpRequest, pk: int) -> HttpResponse:
    return _acted(request, pk, services.case_retire_now)


@require_POST
def case_wait(request: HttpRequest, pk: int) -> HttpResponse:
    case = _case_get(request, pk)
    try:
        services.case_wait(case=case, by=request.user)
    except DomainError as exc:
        return _refused(request, case, exc)
    when = f" on {case.grace_ends_at:%d %b %Y}" if case.grace_ends_at else ""
    messages.success(request, f"Noted: the policy's action runs when the grace period ends{when}.")
    return redirect(case)


@require_POST
def case_act(request: HttpRequest, pk: int) -> HttpResponse:
    return _acted(request, pk, services.case_act)


@require_POST
def case_restore(request: HttpRequest, pk: int) -> HttpResponse:
    case = _case_get(request, pk)
    try:
        case = services.case_restore(case=case, by=request.user)
    except DomainError as exc:
        return _refused(request, case, exc)
    if case.status == CaseStatus.RESTORED:
        messages.success(
            request, f"{case.endpoint} is being recreated from its kept configuration."
        )
    else:
        messages.error(request, f"Restoring {case.endpoint} failed: {case.last_error}")
    return redirect(case)


@require_POST
def case_close(request: HttpRequest, pk: int) -> HttpResponse:
    case = _case_get(request, pk)
    form = CloseForm(request.POST)
    if not form.is_valid():
        return _case_page(request, case, status=400, close_form=form)
    try:
        services.case_close(case=case, by=request.user, reason=form.cleaned_data["reason"])
    except DomainError as exc:
        return _refused(request, case, exc, close_form=form)
    messages.success(request, "The case is closed.")
    return redirect(case)


# --- Endpoints --------------------------------------------------------------------------------


def endpoint_list(request: HttpRequest) -> HttpResponse:
    """The endpoints the person may see, each with why it was or was not flagged."""
    units = visible_unit_ids(request.user)
    endpoints = Endpoint.objects.select_related("business_unit", "model_version__model")
    if units is not None:
        endpoints = endpoints.filter(business_unit__in=units)
    active = RetirementCase.objects.filter(
        endpoint=OuterRef("pk"), kind=CaseKind.IDLE, status__in=ACTIVE_STATUSES
    )
    endpoints = endpoints.annotate(active_case=Subquery(active.values("pk")[:1])).order_by(
        "business_unit__code", "name", "pk"
    )
    filterset = EndpointFilterSet(request.GET or None, queryset=endpoints, request=request)
    page = Paginator(_filtered(filterset), PAGE_SIZE).get_page(request.GET.get("page"))
    for endpoint in page.object_list:
        endpoint.verdict = _verdict(endpoint.retirement_verdict)
    return render(
        request,
        "registry/retirement/endpoint_list.html",
        {"filter": filterset, "page": page, "filtered": _is_filtered(request, filterset)},
    )


# --- E-mailed links ---------------------------------------------------------------------------

# What is wrong with a link, the page's title, and the status it answers with.
LINK_PROBLEMS = {
    "tampered": ("This link is not genuine", 400),
    "unknown": ("This link no longer exists", 404),
    "used": ("This link was already used", 409),
    "expired": ("This link has expired", 410),
    "closed": ("There is nothing left to decide", 409),
    "revoked": ("This link no longer works", 403),
}


def _link_state(link: RetirementLink) -> str:
    """Which problem ``link_check`` found, in its own order."""
    if link.used_at:
        return "used"
    if link.expires_at <= timezone.now():
        return "expired"
    if not link.case.is_open:
        return "closed"
    return "revoked"


def _link_invalid(
    request: HttpRequest, state: str, message: str, link: RetirementLink | None = None
) -> HttpResponse:
    title, status = LINK_PROBLEMS[state]
    return render(
        request,
        "registry/retirement/link_invalid.html",
        {"state": state, "title": title, "message": message, "link": link},
        status=status,
    )


class RetireConfirmForm(forms.Form):
    """Nothing to fill in: the POST itself, with its CSRF token, is the confirmation."""


@login_not_required
@never_cache
@link_throttle
@require_http_methods(["GET", "HEAD", "POST"])
def link(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what the link would do and changes nothing; a POST with the CSRF token
    keeps or retires, as the person the link was sent to."""
    try:
        found = services.link_read(token)
    except LinkTamperedError:
        return _link_invalid(
            request,
            "tampered",
            "The link was altered or cut short. Open the case in Capgov instead, or copy the "
            "whole link from the e-mail.",
        )
    except DomainError as exc:
        return _link_invalid(request, "unknown", exc.message)
    problem = services.link_check(found)
    if problem:
        return _link_invalid(request, _link_state(found), problem, found)
    case, keep = found.case, found.action == "keep"
    user = request.user
    signed_in_as_other = user.is_authenticated and user.pk != found.person_id
    data = request.POST if request.method == "POST" else None
    form = KeepForm(data) if keep else RetireConfirmForm(data)
    error, status = "", 200
    if request.method == "POST":
        if signed_in_as_other:
            error = (
                f"This link was sent to {found.person}, but you are signed in as {user}; "
                "nothing was changed."
            )
            status = 403
        elif form.is_valid():
            try:
                case = services.link_use(
                    link=found,
                    until=form.cleaned_data.get("until"),
                    reason=form.cleaned_data.get("reason", ""),
                )
            except DomainError as exc:
                error, status = exc.message, exc.http_status
            else:
                return render(
                    request,
                    "registry/retirement/link_done.html",
                    {
                        "case": case,
                        "link": found,
                        "keep": keep,
                        "last_step": case.steps.order_by("-at", "-pk").first(),
                    },
                )
        else:
            status = 400
    return render(
        request,
        "registry/retirement/link.html",
        {
            "link": found,
            "case": case,
            "keep": keep,
            "form": form,
            "error": error,
            "signed_in_as_other": signed_in_as_other,
        },
        status=status,
    )
