"""A person's API tokens: list, create (the key is shown once), revoke.

Each person manages their own; a platform admin also sees everyone's working tokens and may
revoke any of them.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from governance.exceptions import DomainError
from governance.models import TokenScope
from governance.tokens import (
    MAX_DAYS,
    NAME_MAX,
    api_token_create,
    api_token_list,
    api_token_list_all,
    api_token_list_revocable,
    api_token_revoke,
)

DEFAULT_DAYS = 90


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX, help_text="What will use it, e.g. 'CI deploy gate' or 'BI export'."
    )
    scope = forms.ChoiceField(
        choices=TokenScope.choices,
        initial=TokenScope.READ,
        widget=forms.RadioSelect,
        help_text="Read only unless the integration must change things.",
    )
    days = forms.IntegerField(
        min_value=1,
        max_value=MAX_DAYS,
        initial=DEFAULT_DAYS,
        label="Expires after (days)",
    )


def _page(request: HttpRequest, form: TokenForm, *, new_key: str = "", status: int = 200):
    user = request.user
    return render(
        request,
        "governance/token_list.html",
        {
            "form": form,
            "tokens": api_token_list(user=user),
            "others": api_token_list_all(user=user),
            "new_key": new_key,
            "now": timezone.now(),
        },
        status=status,
    )


@never_cache  # the page right after creating shows the key: never keep it in a cache
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request, TokenForm())
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        token, key = api_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
            days=form.cleaned_data["days"],
            by=request.user,
        )
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _page(request, form, status=exc.http_status)
    messages.success(
        request, f"Token “{token.name}” created. Copy its key now: it is not shown again."
    )
    return _page(request, TokenForm(), new_key=key)


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    token = get_object_or_404(api_token_list_revocable(user=user), pk=pk)
    try:
        api_token_revoke(token=token, by=user)
    except DomainError as exc:
        if exc.http_status == 403:
            raise PermissionDenied(exc.message) from exc
        messages.error(request, exc.message)
    else:
        owner = "" if token.user_id == user.pk else f" of {token.user.username}"
        messages.success(request, f"Token “{token.name}”{owner} is revoked; it no longer works.")
    return redirect("governance:token-list")
