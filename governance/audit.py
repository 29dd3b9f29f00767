"""The audit log: who did what, when, from where.

django-auditlog records every change to the tracked models (``AUDITLOG_INCLUDE_TRACKING_MODELS``
in settings) as a ``governance.AuditEntry``; ``audit_record`` adds the domain events no model
change says on its own (a token issued, the log exported). One log, one page (``/audit/``),
one CSV export and one API (``/api/v1/audit/``), read by platform admins, finance and board
members.
"""

from __future__ import annotations

import csv
import ipaddress
import json
from collections.abc import Iterable, Iterator
from typing import Any

import django_filters
from auditlog.cid import get_cid
from auditlog.context import auditlog_value
from auditlog.middleware import AuditlogMiddleware
from django import forms
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from governance.choices import BOARD_ROLES, Role
from governance.models import AuditEntry, BusinessUnit, User

ACTION_VERBS = {
    AuditEntry.Action.CREATE: "created",
    AuditEntry.Action.UPDATE: "updated",
    AuditEntry.Action.DELETE: "deleted",
    AuditEntry.Action.ACCESS: "accessed",
}
AUDIT_READER_ROLES = frozenset({Role.PLATFORM_ADMIN, Role.FINANCE, *BOARD_ROLES})
# A changed value is written out in the summary when it is this short; longer ones (JSON,
# free text) are named only, and the CSV and the API carry them whole.
SHORT_VALUE = 40
# Foreign keys walked (at most two hops) to find the business unit an entry concerns: a vote
# belongs to its step's request's unit, a retirement step to its case's.
UNIT_PATHS = ("step", "request", "case")


# --- who and from where ---------------------------------------------------------------------


def client_address(request: HttpRequest) -> str | None:
    """The caller's IP address: the socket's, or behind ``CAPGOV_TRUSTED_PROXIES`` proxies the
    one that many entries from the right of X-Forwarded-For (what the outermost proxy saw).

    The leftmost entry is whatever the client wrote, so it is never trusted; an entry that is
    not an IP address falls back to the socket's.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    hops = settings.CAPGOV_TRUSTED_PROXIES
    forwarded = request.headers.get("X-Forwarded-For", "")
    if hops > 0 and forwarded:
        parts = [part.strip() for part in forwarded.split(",") if part.strip()]
        if parts:
            candidate = parts[-hops] if len(parts) >= hops else parts[0]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                return remote
    return remote


class AuditMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware (the signed-in person, the request id), with the address
    taken as ``client_address`` says rather than from a header any client can forge."""

    @staticmethod
    def _get_remote_addr(request: HttpRequest) -> str | None:
        return client_address(request)

    @staticmethod
    def _get_remote_port(request: HttpRequest) -> int | None:
        return None


def audit_actor_set(*, user: User) -> None:
    """Name the actor of the current request once it is known late: an API call authenticates
    inside DRF, after the middleware saw an anonymous request."""
    try:
        context = auditlog_value.get()
    except LookupError:
        return
    context["actor"] = user


# --- describing a change ------------------------------------------------------------------


def _label(instance: models.Model) -> str:
    return instance._meta.label_lower


def _value(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return str(value)


def _short(value: Any) -> bool:
    return not isinstance(value, dict | list) and len(_value(value)) <= SHORT_VALUE


def _unit_id(instance: models.Model, depth: int = 2) -> int | None:
    if isinstance(instance, BusinessUnit):
        return instance.pk
    unit_id = getattr(instance, "business_unit_id", None)
    if unit_id is not None or depth == 0:
        return unit_id
    for name in UNIT_PATHS:
        if getattr(instance, f"{name}_id", None) is None:
            continue
        try:
            parent = getattr(instance, name)
        except models.ObjectDoesNotExist:
            continue
        if isinstance(parent, models.Model) and (found := _unit_id(parent, depth - 1)):
            return found
    return None


def _changes_text(changes: dict[str, Any]) -> str:
    shown, named = [], []
    for field, change in changes.items():
        if isinstance(change, dict):  # many-to-many: {"operation", "objects"}
            verb = "added" if change.get("operation") == "add" else "removed"
            objects = ", ".join(map(str, change.get("objects", [])))
            shown.append(f"{field.replace('_', ' ')} {verb}: {objects}")
            continue
        old, new = change
        if _short(old) and _short(new):
            shown.append(f"{field.replace('_', ' ')} {_value(old)} → {_value(new)}")
        else:
            named.append(field.replace("_", " "))
    if named:
        shown.append(f"changed {', '.join(named)}")
    return "; ".join(shown)


def _governance_summary(
    instance: models.Model, action: int, changes: dict[str, Any]
) -> tuple[str, str] | None:
    """Sentences for governance's own rows, where the generic one would say too little."""
    from governance.models import ApprovalVote, Decision, DeploymentFreeze

    if isinstance(instance, ApprovalVote) and action == AuditEntry.Action.CREATE:
        verb = "approved" if instance.approve else "rejected"
        step = instance.step
        return (
            f"governance.approvalvote.{verb}",
            f"{instance.approver} {verb} step {step.order} of “{step.request}” "
            f"(via {instance.via}){': ' + instance.comment if instance.comment else ''}",
        )
    if isinstance(instance, Decision) and action == AuditEntry.Action.CREATE:
        return (
            f"governance.decision.{instance.outcome}",
            f"Decision ({instance.get_kind_display()}): {instance.get_outcome_display()} — "
            f"{instance.title}",
        )
    if isinstance(instance, DeploymentFreeze):
        unit = instance.business_unit
        if action == AuditEntry.Action.CREATE:
            return (
                "governance.deploymentfreeze.set",
                f"Froze deployments in {unit.code} ({instance.get_origin_display()}): "
                f"{instance.reason}",
            )
        if action == AuditEntry.Action.UPDATE and "lifted_at" in changes and instance.lifted_at:
            return (
                "governance.deploymentfreeze.lifted",
                f"Lifted the deployment freeze on {unit.code}: {instance.lift_reason}",
            )
    return None


def audit_describe(
    *, instance: models.Model, action: int | None, changes: dict[str, Any] | None
) -> tuple[str, str, int | None]:
    """The kind, the sentence and the business unit of a change to ``instance``.

    The kind is ``<app>.<model>.<what>``: ``created`` / ``updated`` / ``deleted``, or the
    new status when the status changed (``costs.chargebackperiod.published``).
    """
    action = AuditEntry.Action.UPDATE if action is None else action
    changes = changes or {}
    name = instance._meta.verbose_name
    unit_id = _unit_id(instance)
    special = _governance_summary(instance, action, changes)
    if special is not None:
        return special[0], special[1], unit_id
    verb = ACTION_VERBS.get(action, "changed")
    what = verb
    status = changes.get("status")
    if action == AuditEntry.Action.UPDATE and isinstance(status, list | tuple) and status[1]:
        what = str(status[1])
    summary = f"{verb.capitalize()} {name} “{instance}”"
    if action == AuditEntry.Action.UPDATE and changes:
        summary += f": {_changes_text(changes)}"
    return f"{_label(instance)}.{what}", summary, unit_id


def audit_record(
    *,
    kind: str,
    summary: str,
    subject: models.Model,
    actor: User | None = None,
    action: int = AuditEntry.Action.UPDATE,
    data: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write a domain event to the audit log; the request's person and address (when there is
    a request) are filled in by django-auditlog's context."""
    return AuditEntry.objects.create(
        content_type=ContentType.objects.get_for_model(subject),
        object_pk=str(subject.pk),
        object_id=subject.pk if isinstance(subject.pk, int) else None,
        object_repr=str(subject)[:1000],
        action=action,
        changes=data or {},
        actor=actor,
        actor_email=actor.email if actor else None,
        kind=kind,
        summary=summary,
        business_unit_id=_unit_id(subject),
        cid=get_cid(),
    )


# --- reading ------------------------------------------------------------------------------


def audit_can_read(user: User | AnonymousUser | None) -> bool:
    """Platform admins, finance and board members read the whole log."""
    return bool(user and user.is_authenticated and user.has_role(*AUDIT_READER_ROLES))


def audit_entry_list(*, user: User | AnonymousUser | None) -> QuerySet[AuditEntry]:
    """Every entry, newest first, with who and what pre-joined; nothing for other people."""
    entries = AuditEntry.objects.select_related("actor", "content_type", "business_unit")
    return entries if audit_can_read(user) else entries.none()


def audit_model_choices() -> list[tuple[str, str]]:
    """The tracked models, and API tokens (their events are domain entries), for the filter."""
    from auditlog.registry import auditlog

    from governance.models import ApiToken

    tracked = {model._meta.label_lower: model for model in (*auditlog.get_models(), ApiToken)}
    return [
        (label, f"{tracked[label]._meta.verbose_name.capitalize()} ({label.partition('.')[0]})")
        for label in sorted(tracked)
    ]


class AuditEntryFilterSet(django_filters.FilterSet):
    """Entries by person, model, kind (a prefix: ``costs.chargebackperiod``), unit and date."""

    actor = django_filters.CharFilter(
        field_name="actor__username", label="Person (username)", lookup_expr="iexact"
    )
    model = django_filters.ChoiceFilter(
        choices=audit_model_choices, method="filter_model", label="Model", empty_label="Any"
    )
    kind = django_filters.CharFilter(
        field_name="kind",
        lookup_expr="startswith",
        label="Kind",
        help_text="A kind or its start, e.g. costs.chargebackperiod or governance.apitoken",
    )
    business_unit = django_filters.CharFilter(
        field_name="business_unit__code", lookup_expr="iexact", label="Business unit (code)"
    )
    since = django_filters.DateFilter(
        field_name="timestamp",
        lookup_expr="date__gte",
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    until = django_filters.DateFilter(
        field_name="timestamp",
        lookup_expr="date__lte",
        label="Up to",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    class Meta:
        model = AuditEntry
        fields = ["actor", "model", "kind", "business_unit", "since", "until"]

    def filter_model(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        app_label, _, model = value.partition(".")
        return queryset.filter(content_type__app_label=app_label, content_type__model=model)


# --- export -------------------------------------------------------------------------------

CSV_HEADER = [
    "time_utc",
    "actor",
    "actor_email",
    "ip",
    "kind",
    "model",
    "object_id",
    "object",
    "business_unit",
    "summary",
    "changes",
    "request_id",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_BATCH = 2000


def _cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (an object's name from a billing file, a
    comment) is written as plain text."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


def audit_entry_row(entry: AuditEntry) -> list[Any]:
    return [
        entry.timestamp.isoformat(),
        entry.actor.username if entry.actor else "",
        entry.actor_email or "",
        entry.remote_addr or "",
        entry.kind,
        entry.content_type.app_labeled_name,
        entry.object_pk,
        _cell(entry.object_repr),
        entry.business_unit.code if entry.business_unit else "",
        _cell(entry.summary),
        _cell(json.dumps(entry.changes or {}, sort_keys=True, default=str)),
        entry.cid or "",
    ]


def audit_csv(entries: Iterable[AuditEntry]) -> Iterator[str]:
    """The entries as CSV lines, one by one (the whole log streams in constant memory)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for entry in entries:
        yield writer.writerow(audit_entry_row(entry))
