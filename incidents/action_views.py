"""Action item pages: add, change and close items of a post-mortem (POST from its page), the
list of every item with filters, and the overdue list.

Each write calls one service in ``incidents.actions`` and goes back to the post-mortem's page;
a refused write renders the item's form page with the service's message and the matching
status (400, 403 or 409).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from governance.exceptions import DomainError
from governance.models import User
from incidents import actions
from incidents.filters import ActionItemPageFilterSet
from incidents.models import ActionItem, ActionKind, ActionStatus, PostMortem
from incidents.views import redirect_back

PAGE_SIZE = 25


class ActionItemForm(forms.Form):
    title = forms.CharField(max_length=actions.TITLE_MAX)
    kind = forms.ChoiceField(choices=ActionKind.choices)
    owner = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("username"),
        to_field_name="username",
    )
    due = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    subject = forms.ChoiceField(
        required=False,
        help_text="For a prevent item: the model or pool whose deployment gate shows it.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["subject"].choices = [("", "—"), *actions.subject_choices()]

    def action_fields(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["subject"] = actions.subject_from_key(data.get("subject", ""))
        return data

    @classmethod
    def initial_for(cls, item: ActionItem) -> dict[str, Any]:
        return {
            "title": item.title,
            "kind": item.kind,
            "owner": item.owner.username,
            "due": item.due,
            "subject": actions.subject_key(item.subject),
        }


def _postmortem_url(pm: PostMortem, item: ActionItem | None = None) -> str:
    anchor = f"#action-{item.pk}" if item is not None else "#actions"
    return actions.postmortem_url(pm.incident_id) + anchor


def _form_page(
    request: HttpRequest,
    pm: PostMortem,
    *,
    form: ActionItemForm | None,
    item: ActionItem | None = None,
    status: int = 200,
    error: str = "",
) -> HttpResponse:
    return render(
        request,
        "incidents/actions/action_form.html",
        {
            "postmortem": pm,
            "incident": pm.incident,
            "item": item,
            "form": form,
            "error": error,
            "back": _postmortem_url(pm, item),
        },
        status=status,
    )


@require_POST
def action_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Add an item to the post-mortem of incident ``pk``."""
    pm = get_object_or_404(PostMortem.objects.select_related("incident"), incident_id=pk)
    if not actions.may_manage_actions(request.user, pm):
        return _form_page(
            request,
            pm,
            form=None,
            status=403,
            error=actions.MANAGERS_ONLY.format(doing="add action items"),
        )
    form = ActionItemForm(request.POST)
    if not form.is_valid():
        return _form_page(request, pm, form=form, status=400)
    try:
        item = actions.action_create(postmortem=pm, by=request.user, **form.action_fields())
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _form_page(request, pm, form=form, status=exc.http_status)
    messages.success(request, f"Action item “{item.title}” added, owned by {item.owner}.")
    return redirect(_postmortem_url(pm, item))


def _item(pk: int) -> ActionItem:
    return get_object_or_404(
        ActionItem.objects.select_related("postmortem__incident", "owner"), pk=pk
    )


@require_http_methods(["GET", "POST"])
def action_update(request: HttpRequest, pk: int) -> HttpResponse:
    """The item's form (GET); a POST saves it."""
    item = _item(pk)
    pm = item.postmortem
    if not actions.may_manage_actions(request.user, pm):
        return _form_page(
            request,
            pm,
            form=None,
            item=item,
            status=403,
            error=actions.MANAGERS_ONLY.format(doing="change action items"),
        )
    if request.method == "GET":
        form = ActionItemForm(initial=ActionItemForm.initial_for(item))
        return _form_page(request, pm, form=form, item=item)
    form = ActionItemForm(request.POST)
    if not form.is_valid():
        return _form_page(request, pm, form=form, item=item, status=400)
    fields = form.action_fields()
    if fields["subject"] is None and item.subject_type_id and not actions.subject_key(item.subject):
        del fields["subject"]  # a record the form does not offer (set by a service): kept
    try:
        item = actions.action_update(action=item, by=request.user, **fields)
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _form_page(request, pm, form=form, item=item, status=exc.http_status)
    messages.success(request, f"Action item “{item.title}” saved.")
    return redirect(_postmortem_url(pm, item))


@require_POST
def action_close(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark the item done or cancelled (``status``); back to ``next`` or the post-mortem."""
    item = _item(pk)
    status = request.POST.get("status", ActionStatus.DONE)
    try:
        item = actions.action_close(action=item, by=request.user, status=status)
    except DomainError as exc:
        return _form_page(
            request,
            item.postmortem,
            form=None,
            item=item,
            status=exc.http_status,
            error=exc.message,
        )
    messages.success(request, f"Action item “{item.title}” {item.get_status_display().lower()}.")
    return redirect_back(request, _postmortem_url(item.postmortem, item))


def _page(request: HttpRequest, qs: QuerySet[ActionItem]):
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    actions.mark_closable(page.object_list, request.user)
    return page


def action_list(request: HttpRequest) -> HttpResponse:
    """Every action item, open first by due date, with filters."""
    filterset = ActionItemPageFilterSet(
        request.GET or None,
        queryset=actions.action_items().order_by(actions.OPEN_FIRST, "due", "pk"),
        request=request,
    )
    if filterset.is_bound and not filterset.is_valid():
        qs = filterset.queryset.none()  # a filter that cannot be applied must not show all
    else:
        qs = filterset.qs
    return render(
        request,
        "incidents/actions/list.html",
        {
            "filter": filterset,
            "page": _page(request, qs),
            "filtered": any(request.GET.get(name) for name in filterset.filters),
            "here": request.get_full_path(),
        },
    )


def actions_overdue(request: HttpRequest) -> HttpResponse:
    """Open items past their due date, the longest overdue first."""
    return render(
        request,
        "incidents/actions/overdue.html",
        {
            "page": _page(request, actions.overdue_list(user=request.user)),
            "here": request.get_full_path(),
            "all_url": reverse("incidents:actions"),
        },
    )
