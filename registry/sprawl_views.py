"""The savings page, the version-sprawl report and its "open a consolidation case" button.

Reads go through ``registry.sprawl``; the button posts the finding's kind, model and version,
and the view recomputes the finding (the numbers a case keeps are never taken from the form)
before calling ``consolidation_open``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from governance.exceptions import DomainError, PermissionDeniedError
from registry import retirement_services
from registry import sprawl as reports

PAGE_SIZE = 50


class SprawlFilterForm(forms.Form):
    k = forms.IntegerField(
        label="Flag models with more than K versions deployed",
        min_value=reports.MIN_K,
        max_value=reports.MAX_K,
        required=False,
    )


class ConsolidateForm(forms.Form):
    kind = forms.ChoiceField(choices=reports.SprawlKind.choices)
    model = forms.IntegerField(min_value=1)
    version = forms.IntegerField(min_value=1, required=False)
    k = forms.IntegerField(min_value=reports.MIN_K, max_value=reports.MAX_K, required=False)


def _sprawl_url(k: int) -> str:
    url = reverse("registry:retirement-sprawl")
    return url if k == reports.DEFAULT_K else f"{url}?{urlencode({'k': k})}"


@require_safe
def savings(request: HttpRequest) -> HttpResponse:
    report = reports.savings(user=request.user)
    page = Paginator(report.retired, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "registry/retirement/savings.html", {"report": report, "page": page})


@require_safe
def sprawl(request: HttpRequest) -> HttpResponse:
    form = SprawlFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        context = {"form": form, "report": None, "k": reports.DEFAULT_K}
        return render(request, "registry/retirement/sprawl.html", context, status=400)
    k = (form.cleaned_data.get("k") if form.is_bound else None) or reports.DEFAULT_K
    context = {
        "form": form,
        "k": k,
        "report": reports.sprawl(user=request.user, k=k),
        "can_open": reports.may_open_consolidation(request.user),
        "traffic_days": reports.TRAFFIC_DAYS,
    }
    return render(request, "registry/retirement/sprawl.html", context)


@require_POST
def consolidation_open(request: HttpRequest) -> HttpResponse:
    form = ConsolidateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Use the button next to a finding to open a case.")
        return redirect("registry:retirement-sprawl")
    data = form.cleaned_data
    k = data["k"] or reports.DEFAULT_K
    if not reports.may_open_consolidation(request.user):
        raise PermissionDenied(
            "Platform admins, finance and review-board members open consolidation cases."
        )
    item = reports.sprawl(user=request.user, k=k).find(data["kind"], data["model"], data["version"])
    if item is None:
        messages.warning(request, "The report no longer shows that finding; nothing was opened.")
        return redirect(_sprawl_url(k))
    try:
        case = retirement_services.consolidation_open(
            model=item.model, by=request.user, summary=item.summary, evidence=item.evidence
        )
    except PermissionDeniedError as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect(_sprawl_url(k))
    told = f"{case.owner} is told by e-mail" if case.owner else "the unit has no owner to tell"
    messages.success(request, f"Consolidation case #{case.pk} opened; {told}.")
    return redirect(reverse("registry:retirement-case", args=[case.pk]))
