"""Registry pages: models, versions and their gate, benchmarks, assessments, the board's queue.

Reads go through ``registry.selectors`` (a row of a unit the user may not read is a 404);
writes call one service each and redirect; a refused write re-renders its page with the
service's message and the matching status (400, 403 or 409).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from governance.choices import DecisionKind, RequestStatus, Role
from governance.exceptions import DomainError
from governance.models import BusinessUnit, User
from governance.selectors import (
    approval_request_list,
    approval_request_summary,
    decision_list_for,
)
from governance.services import board_standing, board_voter
from governance.services.conflicts import conflict_raise, conflict_resolve, conflict_vote
from governance.uploads import UploadRejectedError, upload_check
from registry import charts, extensions, gate, selectors, services
from registry.benchmarks.metrics import METRICS
from registry.choices import (
    SLO_METRICS,
    AssessmentStatus,
    LifecycleState,
    ProtocolStatus,
    RequirementCode,
    WaiverStatus,
)
from registry.forms import (
    BENCHMARK_RESULT,
    AssessmentDecideForm,
    AssessmentForm,
    BenchmarkUploadForm,
    BoardVoteForm,
    CompareForm,
    ConflictForm,
    ConflictResolveForm,
    DeploymentApprovalForm,
    ModelFilterForm,
    ProtocolForm,
    RationaleForm,
    RegisteredModelForm,
    TransitionForm,
    VersionForm,
    WaiverForm,
)
from registry.lifecycle import MOVES, Actor, moves_from
from registry.models import (
    BenchmarkProtocol,
    CapacityAssessment,
    CapacityPool,
    EfficiencyBenchmark,
    ModelVersion,
)

PAGE_SIZE = 25
GONE_OUT_STATES = (LifecycleState.DEPLOYED, LifecycleState.DEPRECATED, LifecycleState.RETIRED)
STATE_LABELS = dict(LifecycleState.choices)


def _vote_message(request: HttpRequest, vote, decided: str) -> None:
    """Say where a board vote left things; ``decided`` may name the ``{outcome}``."""
    if vote.decision is None:
        messages.success(
            request,
            f"Your vote is recorded ({vote.quorum.summary()}); the board decides once it has "
            f"{vote.quorum.waiting_for}.",
        )
    else:
        outcome = vote.decision.get_outcome_display().lower()
        messages.success(request, decided.replace("{outcome}", outcome))


def _readable_units(user: User) -> QuerySet[BusinessUnit]:
    units = selectors.registry_unit_ids(user)
    qs = BusinessUnit.objects.order_by("code")
    return qs if units is None else qs.filter(pk__in=units)


def _can_register(user: User) -> bool:
    return user.has_role(Role.ML_ENGINEER, Role.PLATFORM_ADMIN)


def _can_write_protocols(user: User) -> bool:
    return user.has_role(Role.PLATFORM_ADMIN) or bool(services.board_role(user))


# --- models -----------------------------------------------------------------------------------


def model_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = ModelFilterForm(request.GET or None, units=_readable_units(user))
    models = selectors.model_list(user=user)
    if form.is_bound and not form.is_valid():
        models = models.none()  # a filter that cannot be applied must not show everything
    elif form.is_bound:
        data = form.cleaned_data
        if data["q"]:
            models = models.filter(name__icontains=data["q"].strip())
        if data["business_unit"]:
            models = models.filter(business_unit=data["business_unit"])
        for field in ("task", "source", "risk_tier"):
            if data[field]:
                models = models.filter(**{field: data[field]})
    newest = ModelVersion.objects.filter(model=OuterRef("pk")).order_by("-created_at", "-pk")
    models = models.annotate(
        newest_pk=Subquery(newest.values("pk")[:1]),
        newest_version=Subquery(newest.values("version")[:1]),
        newest_state=Subquery(newest.values("state")[:1]),
    ).order_by("name")
    page = Paginator(models, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "registry/model_list.html",
        {
            "form": form,
            "page": page,
            "can_register": _can_register(user),
            "filtered": form.is_bound and any(form.data.get(f) for f in form.fields),
            "state_labels": STATE_LABELS,
        },
    )


@require_http_methods(["GET", "POST"])
def model_create(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not _can_register(user):
        raise PermissionDenied("Only ML engineers and platform admins register models.")
    units = BusinessUnit.objects.order_by("code")
    if not user.has_role(Role.PLATFORM_ADMIN):
        units = units.filter(pk__in=user.scoped_business_unit_ids)
    form = RegisteredModelForm(request.POST or None, units=units)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            model = services.model_register(by=user, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            messages.success(request, f"{model.name} is registered. Add its first version.")
            return redirect(model)
    return render(request, "registry/model_form.html", {"form": form}, status=status)


def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    model = get_object_or_404(selectors.model_list(user=request.user), pk=pk)
    rows = selectors.model_comparison(model=model)
    return render(
        request,
        "registry/model_detail.html",
        {
            "model": model,
            "rows": list(reversed(rows)),  # newest first
            "is_owner": services.is_owner(request.user, model),
        },
    )


@require_http_methods(["GET", "POST"])
def version_create(request: HttpRequest, pk: int) -> HttpResponse:
    model = get_object_or_404(selectors.model_list(user=request.user), pk=pk)
    if not services.is_owner(request.user, model):
        raise PermissionDenied(
            f"Only ML engineers of {model.business_unit.name} (or a platform admin) can add "
            f"versions to {model.name}."
        )
    latest = model.versions.order_by("-created_at", "-pk").first()
    initial = {}
    if latest is not None:
        initial = {
            "framework": latest.framework,
            "serving_runtime": latest.serving_runtime,
            "hardware_profile": latest.hardware_profile_id,
            "parameter_count": latest.parameter_count,
        }
    form = VersionForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            version = services.version_create(by=request.user, model=model, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            messages.success(
                request,
                f"{version} is registered as a draft. Upload a benchmark, then submit it.",
            )
            return redirect(version)
    return render(
        request, "registry/version_form.html", {"form": form, "model": model}, status=status
    )


def model_compare(request: HttpRequest, pk: int) -> HttpResponse:
    model = get_object_or_404(selectors.model_list(user=request.user), pk=pk)
    versions = list(model.versions.select_related("hardware_profile").order_by("created_at", "pk"))
    form = CompareForm(request.GET or None, versions=versions)
    wanted: list[int] | None = None
    if form.is_bound and form.is_valid() and form.cleaned_data["versions"]:
        wanted = [int(v) for v in form.cleaned_data["versions"]]
    rows = selectors.model_comparison(model=model, version_ids=wanted)
    if not form.is_bound or not form.is_valid():
        form = CompareForm(
            initial={"versions": [str(r.version.pk) for r in rows]}, versions=versions
        )
    measured = [r for r in rows if r.best is not None]
    labels = [r.version.version for r in measured]
    figures = []
    if measured:
        figures.append(
            {
                "id": "compare-throughput",
                "title": "Request throughput at the best point",
                "figure": charts.version_bars(
                    labels,
                    [r.best.point.requests_per_s for r in measured],
                    axis="Throughput (req/s)",
                    hover="%{y:,.2f} req/s",
                ),
            }
        )
        figures.append(
            {
                "id": "compare-latency",
                "title": "Latency at the best point",
                "figure": charts.latency_bars(
                    labels,
                    {
                        "p50": [r.best.point.latency_p50_ms for r in measured],
                        "p95": [r.best.point.latency_p95_ms for r in measured],
                        "p99": [r.best.point.latency_p99_ms for r in measured],
                    },
                ),
            }
        )
        for currency in sorted({r.best.currency for r in measured if r.best.currency}):
            costed = [r for r in measured if r.best.currency == currency]
            figures.append(
                {
                    "id": f"compare-cost-{currency}",
                    "title": f"Cost per 1k requests · {currency}",
                    "figure": charts.version_bars(
                        [r.version.version for r in costed],
                        [r.best.cost_per_1k_requests for r in costed],
                        axis=f"Cost per 1k requests ({currency})",
                        hover=f"%{{y:,.4f}} {currency}",
                    ),
                }
            )
    return render(
        request,
        "registry/model_compare.html",
        {
            "model": model,
            "rows": rows,
            "form": form,
            "charts": figures,
            # What the versions' endpoints actually cost per 1k invocations, from the app that
            # knows the bill; the costs page shows the month in full.
            "actual": extensions.actual_costs([r.version.pk for r in rows]),
            "actual_url": reverse("costs:cost-per-inference"),
        },
    )


# --- versions ---------------------------------------------------------------------------------


def _version_get(request: HttpRequest, pk: int) -> ModelVersion:
    return get_object_or_404(selectors.version_list(user=request.user), pk=pk)


def _approval_roles(user: User, version: ModelVersion, verdict: gate.GateVerdict) -> list[str]:
    """The cost-tier roles the user holds and may still approve this version as."""
    if version.state not in services.APPROVABLE_STATES or user.pk == version.created_by_id:
        return []
    return sorted(set(verdict.roles_missing) & user.role_set)


def _version_page(
    request: HttpRequest, version: ModelVersion, *, status: int = 200, **overrides: Any
) -> HttpResponse:
    """The version page; ``overrides`` put a bound form (with its errors) in place."""
    user = request.user
    owner = services.is_owner(user, version.model)
    role = services.board_role(user)
    submitter = services.version_submitter(version)
    reviewer = services.may_review(user, version, submitted_by=submitter)
    moves = [
        m for m in moves_from(version.state) if (owner if m.actor is Actor.OWNER else reviewer)
    ]
    verdict = overrides.pop("verdict", None) or services.deployment_gate(version)
    may_vote_waivers = services.may_vote_waivers(user, version, submitted_by=submitter)

    benchmarks = list(
        selectors.benchmark_list(user=user).filter(version=version).order_by("-measured_at", "-pk")
    )
    prices = selectors.current_prices({b.hardware_profile_id for b in benchmarks})
    benchmark_rows = [
        {
            "benchmark": b,
            "points": selectors.point_costs(
                list(b.points.all()), prices.get(b.hardware_profile_id)
            ),
            "price": prices.get(b.hardware_profile_id),
        }
        for b in benchmarks
    ]
    assessments = list(
        selectors.assessment_list(user=user)
        .filter(version=version)
        .order_by("-submitted_at", "-pk")
    )
    pending = next((a for a in assessments if a.status == AssessmentStatus.SUBMITTED), None)
    can_decide = (
        pending is not None
        and bool(role)
        and user.pk not in (pending.submitted_by_id, version.created_by_id)
    )
    version_type = ContentType.objects.get_for_model(ModelVersion)
    approvals = list(
        decision_list_for(subject_type_id=version_type.pk, subject_ids=[version.pk]).filter(
            kind=DecisionKind.DEPLOYMENT_APPROVAL
        )
    )
    approval_roles = _approval_roles(user, version, verdict)
    live = version.state not in (LifecycleState.RETIRED, LifecycleState.DEPRECATED)

    context: dict[str, Any] = {
        "version": version,
        "model": version.model,
        "is_owner": owner,
        "board_role": Role(role).label if role else "",
        "owner_moves": [m for m in moves if m.actor is Actor.OWNER],
        "board_moves": [m for m in moves if m.actor is Actor.BOARD],
        "board_needs_comment": any(m.needs_comment for m in moves if m.actor is Actor.BOARD),
        "verdict": verdict,
        # Past the gate already: what it would still ask for, leaving out the state itself.
        "gone_out": version.state in GONE_OUT_STATES,
        "gate_today": [u for u in verdict.unmet if u.code != "state"],
        "benchmarks": benchmark_rows,
        "assessments": assessments,
        "pending": pending,
        "waivers": list(
            selectors.waiver_list(user=user).filter(version=version).order_by("-granted_at")
        ),
        "approvals": approvals,
        "can_vote_waivers": may_vote_waivers,
        "history": list(selectors.version_history(version=version)),
        "gate_api": f"/api/v1/model-versions/{version.pk}/gate/",
        "slo_labels": SLO_METRICS,
        "requirement_labels": dict(RequirementCode.choices),
    }
    if version.state in (LifecycleState.SUBMITTED, LifecycleState.UNDER_REVIEW):
        context["quorum"], context["board_votes"] = board_standing(subject=version)
        if any(v.member_id == user.pk for v in context["board_votes"]):
            # One vote each: the member has given theirs.
            context["board_moves"] = [
                m for m in context["board_moves"] if m.action not in ("approve", "reject")
            ]
    if owner and version.state != LifecycleState.RETIRED:
        context["upload_form"] = BenchmarkUploadForm(
            version=version, protocols=selectors.protocols_approved()
        )
    if owner and live and benchmarks:
        context["assessment_form"] = AssessmentForm(
            initial={"benchmark": benchmarks[0].pk, "pool": _default_pool(version)},
            benchmarks=selectors.benchmark_list(user=user).filter(version=version),
            pools=selectors.pool_list(),
        )
    if can_decide:
        context["decide_form"] = AssessmentDecideForm()
    if may_vote_waivers:
        context["waiver_form"] = WaiverForm()
    if approval_roles:
        context["approval_form"] = DeploymentApprovalForm(roles=approval_roles)
    context["can_ask_approvers"] = owner and any(u.code == gate.APPROVALS for u in verdict.unmet)
    context.update(overrides)
    return render(request, "registry/version_detail.html", context, status=status)


def _default_pool(version: ModelVersion) -> int | None:
    return (
        selectors.pool_list()
        .filter(hardware_profile_id=version.hardware_profile_id)
        .values_list("pk", flat=True)
        .first()
    )


def version_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _version_page(request, _version_get(request, pk))


@require_POST
def version_transition(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version_get(request, pk)
    form = TransitionForm(request.POST)
    if not form.is_valid():
        return _version_page(
            request,
            version,
            status=400,
            transition_error="Choose one of the actions on this page.",
        )
    move = MOVES[form.cleaned_data["action"]]
    try:
        moved = services.version_transition(
            version=version,
            action=move.action,
            by=request.user,
            comment=form.cleaned_data["comment"],
            alternatives=form.cleaned_data["alternatives"],
        )
    except services.GateClosedError as exc:
        return _version_page(
            request,
            version,
            status=exc.http_status,
            transition_error="This version cannot deploy yet. The gate lists what is missing:",
            transition_unmet=exc.verdict.unmet,
            verdict=exc.verdict,
        )
    except DomainError as exc:
        return _version_page(request, version, status=exc.http_status, transition_error=exc.message)
    if (
        move.actor is Actor.BOARD
        and moved.state == LifecycleState.UNDER_REVIEW
        and (move.action != "start_review")
    ):
        quorum, _ = board_standing(subject=moved)
        waiting = f" ({quorum.summary()})" if quorum else ""
        messages.success(
            request, f"Your vote is recorded{waiting}; the board decides once it has quorum."
        )
    else:
        messages.success(
            request, f"{move.label} — done. {moved} is now {moved.get_state_display()}."
        )
    return redirect(moved)


# --- benchmarks -------------------------------------------------------------------------------


@require_POST
def benchmark_upload(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version_get(request, pk)
    form = BenchmarkUploadForm(
        request.POST, request.FILES, version=version, protocols=selectors.protocols_approved()
    )
    status = 400
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            upload_check(
                upload=upload, kind=BENCHMARK_RESULT, max_bytes=services.MAX_BENCHMARK_BYTES
            )
        except UploadRejectedError as exc:
            form.add_error("file", exc.message)
            status = exc.http_status
        else:
            try:
                benchmark = services.benchmark_upload(
                    version=version,
                    protocol=form.cleaned_data["protocol"],
                    hardware_profile=form.cleaned_data["hardware_profile"],
                    data=upload.read(),
                    file_name=upload.name,
                    by=request.user,
                    measured_at=form.cleaned_data["measured_at"],
                    cold_start_s=form.cleaned_data["cold_start_s"],
                    peak_memory_gb=form.cleaned_data["peak_memory_gb"],
                )
            except services.BenchmarkRejectedError as exc:
                form.add_error("file", exc.message)
                form.missing = exc.missing
                status = exc.http_status
            except DomainError as exc:
                form.add_error(None, exc.message)
                status = exc.http_status
            else:
                count = benchmark.points.count()
                messages.success(
                    request,
                    f"{benchmark.file_name} imported ({benchmark.tool_label}, "
                    f"{count} point{'s' if count != 1 else ''}).",
                )
                return redirect(
                    reverse("registry:version-detail", args=[version.pk]) + "#benchmarks"
                )
    return _version_page(request, version, status=status, upload_form=form)


def _benchmark_get(request: HttpRequest, pk: int) -> EfficiencyBenchmark:
    return get_object_or_404(selectors.benchmark_list(user=request.user), pk=pk)


def benchmark_detail(request: HttpRequest, pk: int) -> HttpResponse:
    benchmark = _benchmark_get(request, pk)
    points = list(benchmark.points.all())
    price = selectors.current_prices([benchmark.hardware_profile_id]).get(
        benchmark.hardware_profile_id
    )
    reported = {code for p in points for code in p.metrics}
    codes = [c for c in METRICS if c in reported] + sorted(reported - set(METRICS))
    columns = [
        {
            "code": c,
            "label": METRICS[c].label if c in METRICS else c,
            "unit": METRICS[c].unit if c in METRICS else "",
        }
        for c in codes
    ]
    rows = [{"point": p, "values": [_decimal(p.metrics.get(c)) for c in codes]} for p in points]
    return render(
        request,
        "registry/benchmark_detail.html",
        {
            "benchmark": benchmark,
            "version": benchmark.version,
            "costs": selectors.point_costs(points, price),
            "price": price,
            "columns": columns,
            "rows": rows,
        },
    )


def _decimal(value: str | None) -> Decimal | None:
    return None if value in (None, "") else Decimal(value)


def benchmark_raw(request: HttpRequest, pk: int) -> FileResponse:
    benchmark = _benchmark_get(request, pk)
    try:
        raw = benchmark.raw_file.open("rb")
    except FileNotFoundError as exc:
        raise Http404(
            f"The raw file {benchmark.file_name} is no longer in storage; its parsed points are."
        ) from exc
    response = FileResponse(
        raw,
        as_attachment=True,
        filename=benchmark.file_name,
        content_type="application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- assessments, waivers, deployment approvals ----------------------------------------------


@require_POST
def assessment_create(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version_get(request, pk)
    form = AssessmentForm(
        request.POST,
        benchmarks=selectors.benchmark_list(user=request.user).filter(version=version),
        pools=selectors.pool_list(),
    )
    status = 400
    if form.is_valid():
        try:
            assessment = services.assessment_file(
                version=version, by=request.user, **form.cleaned_data
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            messages.success(
                request,
                f"Assessment filed: {assessment.replicas} replicas, {assessment.accelerators} "
                "accelerators. It waits for the review board.",
            )
            return redirect(reverse("registry:version-detail", args=[version.pk]) + "#assessments")
    return _version_page(request, version, status=status, assessment_form=form)


def _assessment_page(
    request: HttpRequest, assessment: CapacityAssessment, *, status: int = 200, **overrides: Any
) -> HttpResponse:
    user = request.user
    role = services.board_role(user)
    context: dict[str, Any] = {
        "assessment": assessment,
        "version": assessment.version,
        "model": assessment.version.model,
        "slo_label": SLO_METRICS.get(assessment.slo_metric, assessment.slo_metric),
        # What apps above the registry attach to it (costs: TCO scenarios).
        "related": extensions.assessment_related(assessment, user=user),
    }
    if (
        assessment.status == AssessmentStatus.SUBMITTED
        and role
        and user.pk not in (assessment.submitted_by_id, assessment.version.created_by_id)
    ):
        context["decide_form"] = AssessmentDecideForm()
    if assessment.status == AssessmentStatus.SUBMITTED:
        context["quorum"], context["board_votes"] = board_standing(subject=assessment)
        if any(v.member_id == user.pk for v in context["board_votes"]):
            context.pop("decide_form", None)
    context.update(overrides)
    return render(request, "registry/assessment_detail.html", context, status=status)


def _assessment_get(request: HttpRequest, pk: int) -> CapacityAssessment:
    return get_object_or_404(selectors.assessment_list(user=request.user), pk=pk)


def assessment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _assessment_page(request, _assessment_get(request, pk))


@require_POST
def assessment_decide(request: HttpRequest, pk: int) -> HttpResponse:
    assessment = _assessment_get(request, pk)
    form = AssessmentDecideForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            vote = services.assessment_decide(
                assessment=assessment,
                by=request.user,
                approve=form.cleaned_data["decision"] == "approve",
                rationale=form.cleaned_data["rationale"],
                alternatives=form.cleaned_data["alternatives"],
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            _vote_message(
                request,
                vote,
                f"The board {{outcome}} the capacity assessment of {assessment.version}.",
            )
            return redirect(
                reverse("registry:version-detail", args=[assessment.version_id]) + "#assessments"
            )
    return _assessment_page(request, assessment, status=status, decide_form=form)


@require_POST
def waiver_create(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version_get(request, pk)
    form = WaiverForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            waiver = services.waiver_grant(version=version, by=request.user, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            if waiver.status == WaiverStatus.GRANTED:
                text = (
                    f"Waiver granted: “{waiver.get_requirement_display()}” until "
                    f"{waiver.expires_at:%Y-%m-%d %H:%M} UTC."
                )
            else:
                text = "Waiver proposed with your vote; it counts once the board's votes grant it."
            messages.success(request, text)
            return redirect(reverse("registry:version-detail", args=[version.pk]) + "#waivers")
    return _version_page(request, version, status=status, waiver_form=form)


@require_POST
def waiver_vote(request: HttpRequest, pk: int) -> HttpResponse:
    waiver = get_object_or_404(selectors.waiver_list(user=request.user), pk=pk)
    form = BoardVoteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give your rationale and choose for or against.")
    else:
        try:
            waiver = services.waiver_vote(
                waiver=waiver,
                by=request.user,
                approve=form.cleaned_data["decision"] == "approve",
                rationale=form.cleaned_data["rationale"],
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request, f"Vote recorded; the waiver is {waiver.get_status_display().lower()}."
            )
    return redirect(reverse("registry:version-detail", args=[waiver.version_id]) + "#waivers")


@require_POST
def deployment_approvers_ask(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version_get(request, pk)
    try:
        roles = services.deployment_approvers_ask(version=version, by=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        labels = ", ".join(Role(r).label for r in roles)
        messages.success(request, f"Asked by e-mail: everyone holding {labels}.")
    return redirect(reverse("registry:version-detail", args=[version.pk]) + "#gate")


@require_POST
def deployment_approve(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version_get(request, pk)
    roles = sorted({r for r in request.user.role_set if r in Role.values} or {Role.APPROVER.value})
    form = DeploymentApprovalForm(request.POST, roles=roles)
    status = 400
    if form.is_valid():
        try:
            services.deployment_approve(version=version, by=request.user, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            messages.success(
                request,
                f"You approved deploying {version} as {Role(form.cleaned_data['role']).label}.",
            )
            return redirect(reverse("registry:version-detail", args=[version.pk]) + "#gate")
    return _version_page(request, version, status=status, approval_form=form)


# --- review queue -----------------------------------------------------------------------------


def review_queue(request: HttpRequest) -> HttpResponse:
    if not services.board_role(request.user):
        raise PermissionDenied("The review queue is for members of the capacity review board.")
    items = selectors.review_queue(user=request.user)
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    conflicts = selectors.open_conflicts_with_demand(user=request.user)
    # Costly operations and budget exceptions waiting for approvers, oldest first.
    requests = list(
        approval_request_list(user=request.user)
        .filter(status=RequestStatus.PENDING)
        .order_by("submitted_at", "pk")[:PAGE_SIZE]
    )
    return render(
        request,
        "registry/review_queue.html",
        {
            "page": page,
            "count": len(items),
            "conflicts": conflicts,
            "requests": [(r, approval_request_summary(request=r)) for r in requests],
        },
    )


# --- protocols --------------------------------------------------------------------------------


def protocol_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.protocol_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "registry/protocol_list.html",
        {
            "page": page,
            "can_write": _can_write_protocols(request.user),
            "metrics": {code: m.label for code, m in METRICS.items()},
        },
    )


def _protocol_page(
    request: HttpRequest, protocol: BenchmarkProtocol, *, status: int = 200, **overrides: Any
) -> HttpResponse:
    context: dict[str, Any] = {
        "protocol": protocol,
        "required": [
            METRICS.get(code) or {"code": code, "label": code, "unit": ""}
            for code in protocol.required_metrics
        ],
        "benchmark_count": protocol.benchmarks.count(),
        "workload": json.dumps(protocol.workload, indent=2),
    }
    if protocol.status == ProtocolStatus.DRAFT and services.board_role(request.user):
        context["approve_form"] = RationaleForm()
    context.update(overrides)
    return render(request, "registry/protocol_detail.html", context, status=status)


def protocol_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _protocol_page(request, get_object_or_404(selectors.protocol_list(), pk=pk))


@require_http_methods(["GET", "POST"])
def protocol_create(request: HttpRequest) -> HttpResponse:
    if not _can_write_protocols(request.user):
        raise PermissionDenied("Benchmark protocols are written by the review board or admins.")
    form = ProtocolForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            protocol = services.protocol_create(by=request.user, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            messages.success(
                request, f"{protocol} saved as a draft. A board member approves it before use."
            )
            return redirect(protocol)
    elif request.method == "POST":
        status = 400
    return render(request, "registry/protocol_form.html", {"form": form}, status=status)


@require_POST
def protocol_approve(request: HttpRequest, pk: int) -> HttpResponse:
    protocol = get_object_or_404(selectors.protocol_list(), pk=pk)
    form = RationaleForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            services.protocol_approve(
                protocol=protocol, by=request.user, rationale=form.cleaned_data["rationale"]
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            messages.success(request, f"{protocol} is approved; results under it now count.")
            return redirect(protocol)
    return _protocol_page(request, protocol, status=status, approve_form=form)


# --- capacity conflicts -------------------------------------------------------------------


def _conflict_get(request: HttpRequest, pk: int):
    return get_object_or_404(selectors.conflict_list(user=request.user), pk=pk)


def _conflict_page(request: HttpRequest, conflict, *, status: int = 200, **overrides: Any):
    user = request.user
    pool = conflict.subject if isinstance(conflict.subject, CapacityPool) else None
    at_level = conflict.escalation_path[conflict.escalation_level]
    context: dict[str, Any] = {
        "conflict": conflict,
        "pool": pool,
        "demand": selectors.pool_demand([pool]).get(pool.pk) if pool else None,
        "units": list(conflict.business_units.all()),
        "level_label": CONFLICT_LEVELS.get(at_level, at_level),
        "path": [CONFLICT_LEVELS.get(t, t) for t in conflict.escalation_path],
    }
    involved = bool({u.pk for u in conflict.business_units.all()} & user.scoped_business_unit_ids)
    seat = board_voter(user)
    # Alone, a party would decide its own case; on a sitting board quorum and majority do.
    may_vote = seat if seat is not None else (user.is_board_member and not involved)
    context["involved"] = involved and not may_vote and user.is_board_member
    if conflict.status != "resolved":
        context["quorum"], context["board_votes"] = board_standing(subject=conflict)
        admin_decides = (
            at_level == f"role:{Role.PLATFORM_ADMIN}"
            and user.has_role(Role.PLATFORM_ADMIN)
            and not involved
        )
        if admin_decides or (may_vote and not conflict.proposal):
            context["resolve_form"] = ConflictResolveForm()
        elif may_vote and conflict.proposal:
            voted = any(v.member_id == user.pk for v in context["board_votes"])
            context["vote_form"] = None if voted else BoardVoteForm()
    context.update(overrides)
    return render(request, "registry/conflict_detail.html", context, status=status)


CONFLICT_LEVELS = {
    "board": "the review board",
    "bu_owners": "the business units' owners",
    f"role:{Role.PLATFORM_ADMIN}": "the platform admins",
}


@require_http_methods(["GET", "POST"])
def conflict_create(request: HttpRequest) -> HttpResponse:
    form = ConflictForm(request.POST or None, initial={"pool": request.GET.get("pool")})
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                conflict = conflict_raise(
                    title=data["title"],
                    description=data["description"],
                    business_units=data["business_units"],
                    subject=data["pool"],
                    by=request.user,
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
                status = exc.http_status
            else:
                messages.success(request, "The conflict is raised; the review board is told.")
                return redirect(conflict)
    return render(request, "registry/conflict_form.html", {"form": form}, status=status)


def conflict_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _conflict_page(request, _conflict_get(request, pk))


@require_POST
def conflict_vote_view(request: HttpRequest, pk: int) -> HttpResponse:
    conflict = _conflict_get(request, pk)
    form = BoardVoteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give your rationale and choose for or against.")
        return redirect(conflict)
    try:
        vote = conflict_vote(
            conflict=conflict,
            by=request.user,
            approve=form.cleaned_data["decision"] == "approve",
            rationale=form.cleaned_data["rationale"],
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        _vote_message(request, vote, "The board {outcome} the proposal.")
    return redirect(conflict)


@require_POST
def conflict_resolve_view(request: HttpRequest, pk: int) -> HttpResponse:
    conflict = _conflict_get(request, pk)
    form = ConflictResolveForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            vote = conflict_resolve(
                conflict=conflict,
                by=request.user,
                resolution=form.cleaned_data["resolution"],
                alternatives=form.cleaned_data["alternatives"],
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            _vote_message(request, vote, "The conflict is resolved; the decision is recorded.")
            return redirect(conflict)
    return _conflict_page(request, conflict, status=status, resolve_form=form)
