"""Accepting and dismissing a post-mortem's suggested contributing factors (POST only).

Each view calls one service and goes back to the post-mortem's page; a refused write says
why there (or answers 403 to someone who may not edit the post-mortem).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from governance.exceptions import DomainError
from incidents.models import ContributingFactor
from incidents.suggestions import factor_accept, factor_dismiss
from incidents.views import redirect_back


def _decide(request: HttpRequest, pk: int, *, accept: bool) -> HttpResponse:
    factor = get_object_or_404(
        ContributingFactor.objects.select_related("postmortem__incident"), pk=pk
    )
    note = request.POST.get("note", "")
    try:
        if accept:
            factor_accept(factor=factor, by=request.user, note=note)
        else:
            factor_dismiss(factor=factor, by=request.user, note=note)
    except DomainError as exc:
        if exc.http_status == 403:
            raise PermissionDenied(exc.message) from exc
        messages.error(request, exc.message)
    else:
        done = "accepted as a contributing factor" if accept else "dismissed"
        messages.success(request, f"“{factor.summary[:80]}” {done}.")
    return redirect_back(request, f"{factor.postmortem.get_absolute_url()}#factor-{factor.pk}")


@require_POST
def factor_accept_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, accept=True)


@require_POST
def factor_dismiss_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, accept=False)
