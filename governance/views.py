"""Pages of governance: the health check, approval requests and their e-mailed links,
decisions and deployment freezes.

Reads go through ``governance.selectors`` (a request outside the person's scope is a 404);
writes call one service each and redirect; a refused write re-renders its page with the
service's message and the matching status (400, 403 or 409).
"""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from governance import observability, selectors, services
from governance.choices import RequestStatus, Role
from governance.exceptions import DomainError
from governance.extensions import decision_related, request_notes
from governance.filters import (
    ApprovalRequestFilterSet,
    DecisionFilterSet,
    DeploymentFreezeFilterSet,
)
from governance.forms import (
    ApprovalRequestForm,
    LinkConfirmForm,
    OptionalReasonForm,
    ReasonForm,
    VoteForm,
)
from governance.models import ApprovalRequest, BoardVote, BusinessUnit
from governance.money import money_format
from governance.services import approvals as approval_services
from governance.services.approvals import SignInRequiredError
from governance.throttle import link_throttle

PAGE_SIZE = 25
# The status an e-mailed link's page answers with, by what is wrong with the link.
LINK_STATUS = {
    "valid": 200,
    "tampered": 400,
    "unknown": 404,
    "used": 409,
    "superseded": 409,
    "closed": 409,
    "decided": 409,
    "expired": 410,
    "revoked": 403,
}


@login_not_required
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Alive: the process answers requests (a liveness probe). It asks nothing of the database
    or the broker, so an outage of theirs never gets healthy processes restarted; ``readyz``
    says whether they answer."""
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready for traffic: the database answers, the broker answers (or tasks run eagerly) and
    every migration is applied. 200 with each check's result, 503 when any failed."""
    checks = {
        "database": observability.check_database(),
        "broker": observability.check_broker(),
        "migrations": observability.check_migrations(),
    }
    healthy = observability.checks_passed(checks)
    return JsonResponse(
        {"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503
    )


def _filtered(filterset) -> QuerySet:
    if filterset.is_bound and not filterset.is_valid():
        return filterset.queryset.none()  # a filter that cannot be applied must not show all
    return filterset.qs


def _is_filtered(request: HttpRequest, filterset) -> bool:
    return any(request.GET.get(name) for name in filterset.filters)


# --- approval requests --------------------------------------------------------------------


def request_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    base = selectors.approval_request_list(user=user)
    filterset = ApprovalRequestFilterSet(request.GET or None, queryset=base, request=request)
    page = Paginator(_filtered(filterset), PAGE_SIZE).get_page(request.GET.get("page"))
    waiting = (
        selectors.approval_steps_waiting_for(user=user).values("request_id").distinct().count()
    )
    return render(
        request,
        "governance/request_list.html",
        {
            "filter": filterset,
            "page": page,
            "waiting": waiting,
            "filtered": _is_filtered(request, filterset),
            "can_file": selectors.approval_filing_unit_list(user=user).exists(),
        },
    )


def _request_fields(data: dict) -> dict:
    return {
        "kind": data["kind"],
        "title": data["title"],
        "description": data["description"],
        "business_unit": data["business_unit"],
        "estimated_cost": data["estimated_cost"],
        "currency": data["currency"],
        "accelerator": data["accelerator"],
        "accelerator_count": data["accelerator_count"],
        "duration_hours": data["duration_hours"],
        "needed_by": data["needed_by"],
    }


@require_http_methods(["GET", "POST"])
def request_create(request: HttpRequest) -> HttpResponse:
    user = request.user
    units = selectors.approval_filing_unit_list(user=user)
    if not units.exists():
        raise PermissionDenied(
            "You belong to no business unit, so there is nothing to file a request for; ask a "
            "platform admin to add you to one."
        )
    initial = {"business_unit": units.first().pk} if units.count() == 1 else {}
    form = ApprovalRequestForm(request.POST or None, units=units, initial=initial)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            approval = services.approval_request_create(
                by=user, **_request_fields(form.cleaned_data)
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            if request.POST.get("action") != "submit":
                messages.success(request, "Saved as a draft. Submit it when it is ready.")
                return redirect(approval)
            return _submit(request, approval)
    return render(
        request,
        "governance/request_form.html",
        {"form": form, "approval": None},
        status=status,
    )


def _submit(request: HttpRequest, approval: ApprovalRequest) -> HttpResponse:
    try:
        approval = services.approval_request_submit(request=approval, by=request.user)
    except DomainError as exc:
        messages.error(request, f"Not submitted: {exc.message}")
        return redirect(approval)
    if approval.status == RequestStatus.APPROVED:
        messages.success(request, "No approval policy requires approval for this: approved.")
    else:
        messages.success(request, "Submitted. The approvers of the first step have been e-mailed.")
    return redirect(approval)


def _request_get(request: HttpRequest, pk: int, *, detail: bool = False) -> ApprovalRequest:
    qs = (
        selectors.approval_request_detail(user=request.user)
        if detail
        else selectors.approval_request_list(user=request.user)
    )
    return get_object_or_404(qs, pk=pk)


def _request_page(
    request: HttpRequest,
    approval: ApprovalRequest,
    *,
    vote_form: VoteForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    user = request.user
    votable = selectors.approval_steps_votable(request=approval, user=user)
    is_requester = approval.requested_by_id == user.pk
    open_ = approval.status in (RequestStatus.DRAFT, RequestStatus.PENDING)
    return render(
        request,
        "governance/request_detail.html",
        {
            "approval": approval,
            "summary": selectors.approval_request_summary(request=approval),
            "notes": request_notes(approval),
            "votable": votable,
            "vote_form": vote_form or VoteForm(),
            "can_edit": is_requester and open_,
            "can_submit": is_requester and approval.status == RequestStatus.DRAFT,
            "can_withdraw": is_requester and open_,
            "withdraw_form": OptionalReasonForm(),
            "error": error,
            "is_requester": is_requester,
        },
        status=status,
    )


def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _request_page(request, _request_get(request, pk, detail=True))


@require_http_methods(["GET", "POST"])
def request_update(request: HttpRequest, pk: int) -> HttpResponse:
    approval = _request_get(request, pk)
    if approval.requested_by_id != request.user.pk:
        raise PermissionDenied(f"Only {approval.requested_by}, who filed it, can edit it.")
    if approval.status not in (RequestStatus.DRAFT, RequestStatus.PENDING):
        messages.error(request, "Only drafts and pending requests can be edited.")
        return redirect(approval)
    units = selectors.approval_filing_unit_list(user=request.user) | BusinessUnit.objects.filter(
        pk=approval.business_unit_id
    )
    form = ApprovalRequestForm.for_request(
        approval, units=units.distinct(), data=request.POST or None
    )
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            approval = services.approval_request_update(
                request=approval, by=request.user, **_request_fields(form.cleaned_data)
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            note = (
                " Links sent before no longer work; the approvers still asked get new ones."
                if approval.status == RequestStatus.PENDING
                else ""
            )
            if approval.events.filter(
                kind="votes_reset", data__revision=approval.revision
            ).exists():
                note = (
                    " The estimate changed, so the votes cast so far no longer count: approval "
                    "starts again from the first step, with new links."
                )
            messages.success(request, f"Saved as revision {approval.revision}.{note}")
            return redirect(approval)
    return render(
        request,
        "governance/request_form.html",
        {"form": form, "approval": approval},
        status=status,
    )


@require_POST
def request_submit(request: HttpRequest, pk: int) -> HttpResponse:
    return _submit(request, _request_get(request, pk))


@require_POST
def request_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    approval = _request_get(request, pk)
    form = OptionalReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        services.approval_request_withdraw(request=approval, by=request.user, reason=reason)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Withdrawn. The links sent to approvers no longer work.")
    return redirect(approval)


@require_POST
def request_vote(request: HttpRequest, pk: int) -> HttpResponse:
    approval = _request_get(request, pk, detail=True)
    form = VoteForm(request.POST)
    if not form.is_valid():
        return _request_page(request, approval, vote_form=form, status=400)
    step = approval.steps.filter(pk=form.cleaned_data["step"]).first()
    if step is None:
        return _request_page(
            request,
            approval,
            vote_form=form,
            error="That step is not part of this request.",
            status=400,
        )
    approve = form.cleaned_data["decision"] == "approve"
    try:
        services.approval_vote_cast(
            step=step,
            by=request.user,
            approve=approve,
            comment=form.cleaned_data["comment"],
            via="page",
        )
    except DomainError as exc:
        approval = _request_get(request, pk, detail=True)
        return _request_page(
            request, approval, vote_form=form, error=exc.message, status=exc.http_status
        )
    messages.success(request, f"You {'approved' if approve else 'rejected'} step {step.order}.")
    return redirect(approval)


# --- e-mailed links -----------------------------------------------------------------------


@login_not_required
@never_cache
@link_throttle
@require_http_methods(["GET", "HEAD", "POST"])
def approval_link(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what the link would do and changes nothing (mail scanners fetch links);
    only a POST with the CSRF token confirms, as the person the link was sent to."""
    check = services.approval_link_check(token=token)
    if not check.valid:
        return render(
            request,
            "governance/approval_link_invalid.html",
            {"check": check, "approval": check.link.step.request if check.link else None},
            status=LINK_STATUS[check.state],
        )
    link = check.link
    approval = link.step.request
    user = request.user
    signed_in_as_other = user.is_authenticated and user.pk != link.approver_id
    signed_in_as_approver = user.is_authenticated and user.pk == link.approver_id
    signed_in_at = (
        approval_services.session_signed_in_at(request.session) if signed_in_as_approver else None
    )
    # Above the threshold (or in another currency than it) a link confirms only with a
    # fresh sign-in as its approver.
    signin_reason = approval_services.approval_signin_reason(request=approval)
    needs_signin = bool(signin_reason) and not (
        signed_in_as_approver and approval_services.approval_signin_fresh(signed_in_at=signed_in_at)
    )
    form = LinkConfirmForm(
        request.POST if request.method == "POST" else None, reject=not check.approve
    )
    error, status = "", 200
    if request.method == "POST":
        if needs_signin and not signed_in_as_other:
            return redirect_to_login(request.get_full_path())
        if form.is_valid():
            try:
                vote = services.approval_link_confirm(
                    token=token,
                    comment=form.cleaned_data["comment"],
                    signed_in=user if user.is_authenticated else None,
                    signed_in_at=signed_in_at,
                )
            except SignInRequiredError:
                return redirect_to_login(request.get_full_path())
            except DomainError as exc:
                error, status = exc.message, exc.http_status
            else:
                approval.refresh_from_db()
                return render(
                    request,
                    "governance/approval_link_done.html",
                    {
                        "vote": vote,
                        "approval": approval,
                        "summary": selectors.approval_request_summary(request=approval),
                    },
                )
        else:
            status = 400
    return render(
        request,
        "governance/approval_link.html",
        {
            "check": check,
            "link": link,
            "approval": approval,
            "step": link.step,
            "summary": selectors.approval_request_summary(request=approval),
            "notes": request_notes(approval),
            "form": form,
            "error": error,
            "needs_signin": needs_signin,
            "signin_reason": signin_reason,
            "signin_stale": needs_signin and signed_in_as_approver,
            "signin_max_age": approval_services.approval_signin_max_age_minutes(),
            "signed_in_as_other": signed_in_as_other,
            "login_url": f"{reverse('login')}?{urlencode({'next': request.path})}",
        },
        status=status,
    )


# --- decisions and freezes ----------------------------------------------------------------


def _subject_url(decision) -> str:
    subject = decision.subject
    if subject is None or not hasattr(subject, "get_absolute_url"):
        return ""
    try:
        return subject.get_absolute_url()
    except NoReverseMatch:
        return ""


def decision_list(request: HttpRequest) -> HttpResponse:
    base = selectors.decision_list(user=request.user)
    filterset = DecisionFilterSet(request.GET or None, queryset=base, request=request)
    page = Paginator(_filtered(filterset), PAGE_SIZE).get_page(request.GET.get("page"))
    for decision in page.object_list:
        decision.subject_url = _subject_url(decision)
    return render(
        request,
        "governance/decision_list.html",
        {"filter": filterset, "page": page, "filtered": _is_filtered(request, filterset)},
    )


# Evidence keys shown as money, in the evidence's own currency, and labels that are not just
# the key written out.
MONEY_EVIDENCE = frozenset({"estimated_cost", "monthly_cost", "min_monthly_cost", "amount"})
EVIDENCE_LABELS = {
    "gpu_hours": "GPU-hours",
    "duration_hours": "Duration (hours)",
    "peak_rps": "Peak requests/s",
    "throughput_rps": "Throughput per replica (requests/s)",
    "headroom_pct": "Headroom (%)",
    "pool_share_pct": "Share of the pool (%)",
    "slo": "SLO",
    "request_id": "Request #",
}


def _evidence_rows(evidence: dict) -> tuple[list[tuple[str, str]], str]:
    """The numbers a decider saw: simple values as (label, text) rows, the nested rest (steps,
    votes, gate verdicts) as indented JSON."""
    if not isinstance(evidence, dict):
        return [], json.dumps(evidence, indent=2, default=str) if evidence else ""
    currency = str(evidence.get("currency") or "")
    rows: list[tuple[str, str]] = []
    nested: dict = {}
    for key, value in evidence.items():
        if isinstance(value, dict | list):
            if value:
                nested[key] = value
            continue
        if value is None or value == "" or key == "currency":
            continue
        text = str(value)
        if key in MONEY_EVIDENCE and currency:
            with contextlib.suppress(ArithmeticError):
                text = money_format(Decimal(text), currency)
        rows.append((EVIDENCE_LABELS.get(key, key.replace("_", " ").capitalize()), text))
    return rows, json.dumps(nested, indent=2, default=str) if nested else ""


def decision_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One decision: what, the outcome, who in which role, why, the alternatives, the numbers
    seen, its subject, and what other apps link to it (the incidents it contributed to)."""
    decision = get_object_or_404(
        selectors.decision_list(user=request.user).prefetch_related(
            Prefetch("votes", queryset=BoardVote.objects.select_related("member"))
        ),
        pk=pk,
    )
    evidence_rows, evidence_more = _evidence_rows(decision.evidence)
    related = decision_related(decision, user=request.user)
    return render(
        request,
        "governance/decision_detail.html",
        {
            "decision": decision,
            "subject_url": _subject_url(decision),
            "evidence_rows": evidence_rows,
            "evidence_more": evidence_more,
            "related": related,
        },
    )


def freeze_list(request: HttpRequest) -> HttpResponse:
    base = selectors.freeze_list(user=request.user)
    filterset = DeploymentFreezeFilterSet(request.GET or None, queryset=base, request=request)
    page = Paginator(_filtered(filterset), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "governance/freeze_list.html",
        {
            "filter": filterset,
            "page": page,
            "filtered": _is_filtered(request, filterset),
            "can_lift": request.user.has_role(Role.PLATFORM_ADMIN),
            "lift_form": ReasonForm(),
        },
    )


@require_POST
def freeze_lift(request: HttpRequest, pk: int) -> HttpResponse:
    freeze = get_object_or_404(selectors.freeze_list(user=request.user), pk=pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the freeze is lifted.")
        return redirect("governance:freeze-list")
    try:
        services.freeze_lift(freeze=freeze, by=request.user, reason=form.cleaned_data["reason"])
    except DomainError as exc:
        if exc.http_status == 403:
            raise PermissionDenied(exc.message) from exc
        messages.error(request, exc.message)
    else:
        messages.success(request, f"The freeze on {freeze.business_unit.name} is lifted.")
    return redirect("governance:freeze-list")


@login_not_required
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page says: send them to the real icon."""
    from django.http import HttpResponsePermanentRedirect
    from django.templatetags.static import static

    return HttpResponsePermanentRedirect(static("favicon.svg"))
