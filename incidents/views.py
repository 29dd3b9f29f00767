"""Incident and post-mortem pages: the list, an incident with its timeline and evidence, the
post-mortem with its sign-off, the Markdown export, runbooks and the learning metrics.

Reads go through ``incidents.services`` selectors (everyone signed in reads incidents);
writes call one service each and redirect; a refused write re-renders its page with the
service's message and the matching status (400, 403 or 409).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST

from governance.exceptions import DomainError
from governance.selectors import manages_costs
from incidents import actions, charts, services, suggestions
from incidents.forms import (
    EvidenceForm,
    IncidentEditForm,
    IncidentFilterForm,
    IncidentForm,
    MetricsForm,
    PostMortemForm,
    RoleForm,
    SignOffForm,
    TimelineForm,
)
from incidents.models import (
    CapacityEvidence,
    Incident,
    IncidentStatus,
    PostMortem,
    PostMortemStatus,
    Runbook,
)

PAGE_SIZE = 25


def _incident(request: HttpRequest, pk: int) -> Incident:
    try:
        return services.incident_get(user=request.user, pk=pk)
    except Incident.DoesNotExist as exc:
        raise Http404("No such incident.") from exc


def redirect_back(request: HttpRequest, fallback: str) -> HttpResponse:
    """To the form's ``next`` when it is a page of this site, else to ``fallback``."""
    wanted = request.POST.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(wanted)
    return redirect(fallback)


def _subject_row(affected) -> dict[str, Any]:
    subject = affected.subject
    url = getattr(subject, "get_absolute_url", None)
    return {
        "kind": affected.subject_type.name,
        "label": str(subject) if subject is not None else "(deleted record)",
        "url": url() if callable(url) else "",
    }


# --- the list -----------------------------------------------------------------------------


def incident_list(request: HttpRequest) -> HttpResponse:
    form = IncidentFilterForm(request.GET or None)
    if not form.is_bound:
        incidents = services.incident_list(user=request.user)
    elif form.is_valid():
        incidents = services.incident_list(
            user=request.user, **{k: v for k, v in form.cleaned_data.items() if v}
        )
    else:
        # A filter that cannot be applied must not show everything.
        incidents = Incident.objects.none()
    page = Paginator(incidents, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        {"incident": incident, "affected": [_subject_row(a) for a in incident.affected.all()]}
        for incident in page.object_list
    ]
    return render(
        request,
        "incidents/incident_list.html",
        {
            "form": form,
            "page": page,
            "rows": rows,
            "filtered": form.is_bound and any(form.data.get(f) for f in form.fields),
        },
    )


# --- open and edit ------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def incident_create(request: HttpRequest) -> HttpResponse:
    form = IncidentForm(request.POST or None, initial={"commander": request.user.pk})
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            incident = services.incident_create(by=request.user, **form.incident_fields())
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            messages.success(
                request, f"Incident opened. Add to its timeline as things happen, {request.user}."
            )
            return redirect(incident)
    elif request.method == "POST":
        status = 400
    return render(
        request, "incidents/incident_form.html", {"form": form, "incident": None}, status=status
    )


@require_http_methods(["GET", "POST"])
def incident_edit(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(request, pk)
    if not services.may_edit_incident(request.user, incident):
        raise PermissionDenied(services.INCIDENT_EDITORS_ONLY.format(doing="change it"))
    form = IncidentEditForm(
        request.POST or None, initial=IncidentEditForm.initial_for(incident), incident=incident
    )
    status = 200
    if request.method == "POST" and form.is_valid():
        fields = form.incident_fields()
        if incident.status == IncidentStatus.POSTMORTEM_DONE:
            fields.pop("status")
        # A blank later time means "not changed" (or "now" when the status reaches it).
        for name in ("mitigated_at", "resolved_at"):
            if fields.get(name) is None:
                fields.pop(name, None)
        try:
            services.incident_update(incident=incident, by=request.user, **fields)
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = exc.http_status
        else:
            messages.success(request, "Incident updated.")
            return redirect(incident)
    elif request.method == "POST":
        status = 400
    return render(
        request,
        "incidents/incident_form.html",
        {"form": form, "incident": incident},
        status=status,
    )


# --- one incident -------------------------------------------------------------------------


def _evidence_charts(incident: Incident, evidence: list[CapacityEvidence]) -> list[dict]:
    """One small line chart per metric, with the incident's key moments as vertical lines."""
    by_metric: dict[str, list[CapacityEvidence]] = defaultdict(list)
    for figure in evidence:
        by_metric[figure.metric].append(figure)
    moments = {label: getattr(incident, f"{label}_at") for label in charts.MOMENT_COLOURS}
    found = []
    for metric, points in sorted(by_metric.items()):
        points.sort(key=lambda p: p.at)
        unit = next((p.unit for p in points if p.unit), "")
        found.append(
            {
                "id": f"evidence-{slugify(metric) or 'metric'}-{len(found)}",
                "currency": unit or metric,
                "metric": metric,
                "figure": charts.evidence_line(
                    [(p.at, p.value) for p in points], metric=metric, unit=unit, moments=moments
                ),
            }
        )
    return found


def _incident_page(
    request: HttpRequest, incident: Incident, *, status: int = 200, **forms: Any
) -> HttpResponse:
    may_edit = services.may_edit_incident(request.user, incident)
    evidence = list(incident.evidence.all())
    took = services.durations(incident)
    postmortem = getattr(incident, "postmortem", None)
    context = {
        "incident": incident,
        "may_edit": may_edit,
        "affected": [_subject_row(a) for a in incident.affected.all()],
        "durations": [
            ("Time to detect", services.duration_text(took["detect"])),
            ("Time to mitigate", services.duration_text(took["mitigate"])),
            ("Time to resolve", services.duration_text(took["resolve"])),
        ],
        "evidence": evidence,
        "charts": _evidence_charts(incident, evidence),
        "runbooks": services.runbook_for(incident),
        "postmortem": postmortem,
        "timeline_form": forms.get("timeline_form") or TimelineForm(),
        "evidence_form": forms.get("evidence_form") or EvidenceForm(),
        "role_form": forms.get("role_form") or RoleForm(),
        "forecast_exclusions": suggestions.incident_forecast_exclusions(incident=incident),
        "impact_days": suggestions.incident_impact_days(incident),
        "perms_manage_costs": manages_costs(request.user),
    }
    return render(request, "incidents/incident_detail.html", context, status=status)


def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _incident_page(request, _incident(request, pk))


def _incident_subform(request: HttpRequest, pk: int, form_class, name: str, call) -> HttpResponse:
    """Handle one of the small forms of the incident page (timeline, evidence, role)."""
    incident = _incident(request, pk)
    if not services.may_edit_incident(request.user, incident):
        raise PermissionDenied(services.INCIDENT_EDITORS_ONLY.format(doing="add to it"))
    form = form_class(request.POST)
    if not form.is_valid():
        return _incident_page(request, incident, status=400, **{name: form})
    try:
        call(incident, form.cleaned_data)
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _incident_page(request, incident, status=exc.http_status, **{name: form})
    return redirect(incident)


@require_POST
def timeline_add(request: HttpRequest, pk: int) -> HttpResponse:
    def call(incident: Incident, data: dict) -> None:
        services.timeline_add(incident=incident, by=request.user, **data)
        messages.success(request, "Added to the timeline.")

    return _incident_subform(request, pk, TimelineForm, "timeline_form", call)


@require_POST
def evidence_add(request: HttpRequest, pk: int) -> HttpResponse:
    def call(incident: Incident, data: dict) -> None:
        data = {**data, "source": data.get("source") or "manual"}
        figure = services.evidence_add(incident=incident, by=request.user, **data)
        messages.success(request, f"Recorded {figure.metric} at {figure.at:%H:%M} UTC.")

    return _incident_subform(request, pk, EvidenceForm, "evidence_form", call)


@require_POST
def forecast_exclude(request: HttpRequest, pk: int) -> HttpResponse:
    """Leave the incident's impact days out of the forecasts of what it affected."""
    incident = _incident(request, pk)
    try:
        made = suggestions.incident_forecast_exclude(incident=incident, by=request.user)
    except DomainError as exc:
        if exc.http_status == 403:
            raise PermissionDenied(exc.message) from exc
        messages.error(request, exc.message)
    else:
        first, last = made[0].starts_on, made[0].ends_on
        messages.success(
            request,
            f"{first:%d %b} to {last:%d %b %Y} will be left out of the forecasts of "
            f"{len(made)} subject{'s' if len(made) != 1 else ''} from their next refresh.",
        )
    return redirect(f"{incident.get_absolute_url()}#forecasts")


@require_POST
def role_add(request: HttpRequest, pk: int) -> HttpResponse:
    def call(incident: Incident, data: dict) -> None:
        held = services.role_add(incident=incident, by=request.user, **data)
        messages.success(request, f"{held.person} is now {held.role}.")

    return _incident_subform(request, pk, RoleForm, "role_form", call)


# --- the post-mortem ----------------------------------------------------------------------


def _postmortem_page(
    request: HttpRequest,
    incident: Incident,
    pm: PostMortem | None,
    *,
    status: int = 200,
    form: PostMortemForm | None = None,
    sign_form: SignOffForm | None = None,
    error: str = "",
) -> HttpResponse:
    user = request.user
    context: dict[str, Any] = {
        "incident": incident,
        "postmortem": pm,
        "may_open": pm is None and services.may_edit_incident(user, incident),
        "error": error,
    }
    if pm is not None:
        may_edit = services.may_edit_postmortem(user, pm)
        authors = list(pm.authors.all())
        approvers = list(pm.approvers.all())
        current = services.postmortem_current_signoffs(pm)
        context.update(
            {
                "may_edit": may_edit,
                "form": form
                or (PostMortemForm(initial=PostMortemForm.initial_for(pm)) if may_edit else None),
                "sign_form": sign_form or SignOffForm(),
                "authors": authors,
                "approvers": [
                    {"person": person, "signoff": current.get(person.pk)} for person in approvers
                ],
                "is_author": any(p.pk == user.pk for p in authors),
                "is_approver": any(p.pk == user.pk for p in approvers),
                "signoffs": list(pm.signoffs.select_related("approver").order_by("-at", "-pk")),
                "factors": suggestions.factor_list(pm, user=user),
                "factors_readonly": not may_edit,
                "actions": actions.action_list(pm, user=user),
                "sections": [
                    ("Summary", pm.summary),
                    ("Impact", pm.impact),
                    ("Trigger", pm.trigger),
                    ("Root causes", pm.root_causes),
                    ("Contributing factors", pm.contributing_factors),
                    ("Detection", pm.detection),
                    ("What went well", pm.went_well),
                    ("Where we got lucky", pm.got_lucky),
                    ("Lessons", pm.lessons),
                ],
                "took_text": {
                    key: services.duration_text(value)
                    for key, value in services.durations(incident).items()
                },
            }
        )
    return render(request, "incidents/postmortem_detail.html", context, status=status)


@require_http_methods(["GET", "POST"])
def postmortem_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The post-mortem; a POST saves the record (authors and approvers only)."""
    incident = _incident(request, pk)
    pm = services.postmortem_get(incident)
    if request.method == "GET":
        return _postmortem_page(request, incident, pm)
    if pm is None:
        raise Http404("This incident has no post-mortem yet.")
    form = PostMortemForm(request.POST)
    if not form.is_valid():
        return _postmortem_page(request, incident, pm, status=400, form=form)
    was_in_review = pm.status == PostMortemStatus.IN_REVIEW
    try:
        pm = services.postmortem_update(postmortem=pm, by=request.user, **form.postmortem_fields())
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _postmortem_page(request, incident, pm, status=exc.http_status, form=form)
    if was_in_review and pm.status == PostMortemStatus.DRAFT:
        messages.warning(
            request, "Saved. The text changed, so it is a draft again: submit it for review anew."
        )
    else:
        messages.success(request, "Post-mortem saved.")
    return redirect(pm)


@require_POST
def postmortem_open(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(request, pk)
    try:
        pm = services.postmortem_open(incident=incident, by=request.user)
    except DomainError as exc:
        return _postmortem_page(
            request,
            incident,
            services.postmortem_get(incident),
            status=exc.http_status,
            error=exc.message,
        )
    messages.success(
        request, "Post-mortem opened. Review the suggested records from before the incident."
    )
    return redirect(pm)


@require_POST
def postmortem_submit(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(request, pk)
    pm = services.postmortem_get(incident)
    if pm is None:
        raise Http404("This incident has no post-mortem yet.")
    try:
        services.postmortem_submit(postmortem=pm, by=request.user)
    except DomainError as exc:
        return _postmortem_page(request, incident, pm, status=exc.http_status, error=exc.message)
    messages.success(request, "Submitted for review; the named approvers can sign it off now.")
    return redirect(pm)


@require_POST
def postmortem_sign(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(request, pk)
    pm = services.postmortem_get(incident)
    if pm is None:
        raise Http404("This incident has no post-mortem yet.")
    form = SignOffForm(request.POST)
    if not form.is_valid():
        return _postmortem_page(request, incident, pm, status=400, sign_form=form)
    approved = form.cleaned_data["decision"] == "approve"
    try:
        services.postmortem_sign(
            postmortem=pm, by=request.user, approved=approved, comment=form.cleaned_data["comment"]
        )
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _postmortem_page(request, incident, pm, status=exc.http_status, sign_form=form)
    pm.refresh_from_db()
    if pm.status == PostMortemStatus.PUBLISHED:
        messages.success(request, "Every approver signed it off: the post-mortem is published.")
    elif approved:
        messages.success(request, "Your approval is recorded.")
    else:
        messages.success(request, "Sent back to the authors as a draft, with your comment.")
    return redirect(pm)


def postmortem_markdown(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(request, pk)
    pm = services.postmortem_get(incident)
    if pm is None:
        raise Http404("This incident has no post-mortem yet.")
    response = HttpResponse(
        services.postmortem_markdown(pm, user=request.user),
        content_type="text/markdown; charset=utf-8",
    )
    name = f"postmortem-{incident.pk}-{slugify(incident.title)[:60] or 'incident'}.md"
    response["Content-Disposition"] = f'inline; filename="{name}"'
    return response


# --- runbooks -----------------------------------------------------------------------------


def runbook_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(Runbook.objects.order_by("incident_type", "title"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "incidents/runbook_list.html", {"page": page})


def runbook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    runbook = get_object_or_404(Runbook, pk=pk)
    steps = [
        step if isinstance(step, dict) else {"text": str(step)} for step in runbook.steps or ()
    ]
    recent = services.incident_list(user=request.user, incident_type=runbook.incident_type)[:10]
    return render(
        request,
        "incidents/runbook_detail.html",
        {"runbook": runbook, "steps": steps, "recent": recent},
    )


# --- learning -----------------------------------------------------------------------------


def _month_chart(per_month) -> dict | None:
    if not per_month:
        return None
    return {
        "id": "incidents-per-month",
        "currency": "incidents",
        "figure": charts.incidents_per_month(per_month),
    }


def metrics(request: HttpRequest) -> HttpResponse:
    form = MetricsForm(request.GET or None)
    since = form.cleaned_data["since"] if form.is_bound and form.is_valid() else None
    result = services.incident_metrics(user=request.user, since=since)
    list_url = reverse("incidents:incident-list")
    return render(
        request,
        "incidents/metrics.html",
        {
            "form": form,
            "m": result,
            "chart": _month_chart(result.per_month),
            "times": [
                (
                    "Time to mitigate",
                    result.mitigated_count,
                    services.duration_text(result.mitigate_mean),
                    services.duration_text(result.mitigate_median),
                ),
                (
                    "Time to resolve",
                    result.resolved_count,
                    services.duration_text(result.resolve_mean),
                    services.duration_text(result.resolve_median),
                ),
            ],
            "list_url": list_url,
        },
    )
