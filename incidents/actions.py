"""Action items of a post-mortem: who may change them, the lists, the e-mail reminders, and the
warnings they put on the registry's deployment gate.

Items are follow-ups: they stay editable after the post-mortem is published. Who may change
them: the post-mortem's authors and named approvers, the incident's commander and platform
admins; an item's owner may also mark it done.

Everyone signed in sees every action item (as every incident: post-mortems are blameless and
read across the organisation, and a prevent item already shows on the gate of any version it
concerns).
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import models, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from governance.choices import Role
from governance.emails import absolute_url, subject_clean
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import User
from incidents.models import ActionItem, ActionKind, ActionStatus, PostMortem
from registry import gate
from registry.choices import AssessmentStatus
from registry.models import (
    CapacityAssessment,
    CapacityPool,
    Endpoint,
    HardwarePrice,
    RegisteredModel,
)

logger = logging.getLogger(__name__)

TITLE_MAX = 300
EDITABLE = ("title", "kind", "owner", "due", "subject")
CLOSED = (ActionStatus.DONE, ActionStatus.CANCELLED)
# Subjects the gate knows: a prevent item names one of these (or nothing).
GATE_SUBJECTS = (RegisteredModel, CapacityPool)


def today_utc(now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(dt.UTC).date()


# --- who may do what ---------------------------------------------------------------------------


def may_manage_actions(user: User | Any, postmortem: PostMortem) -> bool:
    """Authors and named approvers of the post-mortem, the incident's commander, platform
    admins — whatever the post-mortem's status (items are follow-ups)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.has_role(Role.PLATFORM_ADMIN) or postmortem.incident.commander_id == user.pk:
        return True
    return (
        PostMortem.objects.filter(pk=postmortem.pk)
        .filter(Q(authors=user) | Q(approvers=user))
        .exists()
    )


def may_close_action(user: User | Any, action: ActionItem, status: str) -> bool:
    """Who may manage the post-mortem's items; the owner may mark their own item done."""
    if (
        status == ActionStatus.DONE
        and getattr(user, "is_authenticated", False)
        and user.is_active
        and action.owner_id == user.pk
    ):
        return True
    return may_manage_actions(user, action.postmortem)


MANAGERS_ONLY = (
    "Only the post-mortem's authors and approvers, the incident's commander or a platform "
    "admin can {doing}."
)


def _require_manager(user: User, postmortem: PostMortem, doing: str) -> None:
    if not may_manage_actions(user, postmortem):
        raise PermissionDeniedError(MANAGERS_ONLY.format(doing=doing))


# --- checks ------------------------------------------------------------------------------------


def _clean_title(value: Any) -> str:
    title = " ".join(str(value or "").split())
    if not title:
        raise DomainError("Say what is to be done: the title is empty.")
    if len(title) > TITLE_MAX:
        raise DomainError(f"Keep the title within {TITLE_MAX} characters.")
    return title


def _clean_kind(value: Any) -> str:
    if value not in ActionKind.values:
        names = ", ".join(ActionKind.values)
        raise DomainError(f"The kind must be one of {names}.")
    return str(value)


def _clean_owner(value: Any) -> User:
    if not isinstance(value, User) or value.pk is None:
        raise DomainError("Name the person who owns the item.")
    if not value.is_active:
        raise DomainError(f"{value} has left (their account is inactive): name another owner.")
    return value


def _clean_due(value: Any) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise DomainError("The due date must be a date (YYYY-MM-DD).")
    return value


def _clean_subject(subject: Any, kind: str) -> models.Model | None:
    if subject is None:
        return None
    if not isinstance(subject, models.Model) or subject.pk is None:
        raise DomainError("The item's subject must be a saved record.")
    if kind == ActionKind.PREVENT and not isinstance(subject, GATE_SUBJECTS):
        raise DomainError(
            f"A prevent item's subject must be a registered model or a capacity pool (so the "
            f"deployment gate can show it), not a {subject._meta.verbose_name}."
        )
    return subject


# --- writes ------------------------------------------------------------------------------------


@transaction.atomic
def action_create(
    *,
    postmortem: PostMortem,
    by: User,
    title: str,
    kind: str,
    owner: User,
    due: dt.date,
    subject: models.Model | None = None,
) -> ActionItem:
    """Add an action item to a post-mortem (published or not)."""
    _require_manager(by, postmortem, "add action items")
    kind = _clean_kind(kind)
    return ActionItem.objects.create(
        postmortem=postmortem,
        title=_clean_title(title),
        kind=kind,
        owner=_clean_owner(owner),
        due=_clean_due(due),
        subject=_clean_subject(subject, kind),
    )


def _locked(action: ActionItem) -> ActionItem:
    return (
        ActionItem.objects.select_for_update(of=("self",))
        .select_related("postmortem__incident", "owner")
        .get(pk=action.pk)
    )


@transaction.atomic
def action_update(*, action: ActionItem, by: User, **fields: Any) -> ActionItem:
    """Change an open item's title, kind, owner, due date or subject.

    A new due date or owner resets the reminders, so the (new) owner is reminded again.
    """
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise DomainError(f"These cannot be changed here: {', '.join(sorted(unknown))}.")
    item = _locked(action)
    _require_manager(by, item.postmortem, "change action items")
    if item.status in CLOSED:
        raise ConflictError(f"This item is {item.get_status_display().lower()}; it is kept as is.")
    if "title" in fields:
        item.title = _clean_title(fields["title"])
    if "kind" in fields:
        item.kind = _clean_kind(fields["kind"])
    if "owner" in fields:
        owner = _clean_owner(fields["owner"])
        if owner.pk != item.owner_id:
            item.owner = owner
            item.reminded_before_at = item.reminded_overdue_at = None
    if "due" in fields:
        due = _clean_due(fields["due"])
        if due != item.due:
            item.due = due
            item.reminded_before_at = item.reminded_overdue_at = None
    if "subject" in fields:
        item.subject = _clean_subject(fields["subject"], item.kind)
    elif "kind" in fields and item.subject_type_id is not None:
        _clean_subject(item.subject, item.kind)  # a kept subject must suit the new kind
    item.save()
    return item


@transaction.atomic
def action_close(*, action: ActionItem, by: User, status: str) -> ActionItem:
    """Mark an open item done or cancelled (``done_at`` is when it was closed)."""
    if status not in CLOSED:
        raise DomainError("An item is closed as done or as cancelled.")
    item = _locked(action)
    if not may_close_action(by, item, status):
        raise PermissionDeniedError(
            "Only the post-mortem's authors and approvers, the incident's commander or a "
            "platform admin can close this item; its owner can mark it done."
        )
    if item.status in CLOSED:
        raise ConflictError(f"This item is already {item.get_status_display().lower()}.")
    item.status = status
    item.done_at = timezone.now()
    item.save(update_fields=["status", "done_at"])
    return item


# --- reads -------------------------------------------------------------------------------------


# Open items first, then by due date.
OPEN_FIRST = models.Case(models.When(status=ActionStatus.OPEN, then=0), default=1)


def _with_overdue(qs: QuerySet[ActionItem], today: dt.date) -> QuerySet[ActionItem]:
    return qs.annotate(
        is_overdue=ExpressionWrapper(
            Q(status=ActionStatus.OPEN, due__lt=today), output_field=BooleanField()
        )
    )


def action_items(*, today: dt.date | None = None) -> QuerySet[ActionItem]:
    """Every item, pre-joined for a list, with ``is_overdue``."""
    qs = ActionItem.objects.select_related(
        "owner", "postmortem__incident", "subject_type"
    ).prefetch_related("subject")
    return _with_overdue(qs, today or today_utc())


@dataclass
class ActionPanel:
    """What the post-mortem page shows of its items; iterating it gives the items.

    With a user: whether they may add and close items (``may_manage``; each item's
    ``may_close``), and the choices of the form that adds one (``owners``, ``subjects``).
    """

    postmortem: PostMortem
    items: list[ActionItem]
    may_manage: bool = False
    owners: list[User] = field(default_factory=list)
    subjects: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    def __iter__(self) -> Iterator[ActionItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def kinds(self) -> list[tuple[str, str]]:
        return ActionKind.choices

    @property
    def open_count(self) -> int:
        return sum(1 for i in self.items if i.status == ActionStatus.OPEN)


def subject_key(subject: models.Model | None) -> str:
    """How a form names a subject: ``model:<id>``, ``pool:<id>``, or '' (none, or another
    kind of record, which the form does not offer)."""
    if isinstance(subject, RegisteredModel):
        return f"model:{subject.pk}"
    if isinstance(subject, CapacityPool):
        return f"pool:{subject.pk}"
    return ""


def subject_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """The subjects an item may name, grouped: registered models, then capacity pools."""
    return [
        (
            "Models",
            [
                (f"model:{pk}", name)
                for pk, name in RegisteredModel.objects.values_list("pk", "name")
            ],
        ),
        (
            "Capacity pools",
            [(f"pool:{pk}", name) for pk, name in CapacityPool.objects.values_list("pk", "name")],
        ),
    ]


def subject_from_key(key: str) -> models.Model | None:
    """The model or pool a form's ``model:<id>`` / ``pool:<id>`` names; None for ''."""
    if not key:
        return None
    kind, _, pk = str(key).partition(":")
    model = {"model": RegisteredModel, "pool": CapacityPool}.get(kind)
    if model is None or not pk.isdigit():
        raise DomainError("Choose a model or a capacity pool as the subject.")
    found = model.objects.filter(pk=int(pk)).first()
    if found is None:
        raise DomainError("That subject no longer exists.")
    return found


def action_list(postmortem: PostMortem, *, user: User | Any = None) -> ActionPanel:
    """The post-mortem's items for its page: open first, then by due date."""
    items = list(action_items().filter(postmortem=postmortem).order_by(OPEN_FIRST, "due", "pk"))
    panel = ActionPanel(postmortem=postmortem, items=items)
    signed_in = getattr(user, "is_authenticated", False)
    panel.may_manage = signed_in and may_manage_actions(user, postmortem)
    for item in items:
        _set_closable(item, manages=panel.may_manage, user_pk=user.pk if signed_in else None)
    if panel.may_manage:
        panel.owners = list(User.objects.filter(is_active=True).order_by("username"))
        panel.subjects = subject_choices()
    return panel


def _set_closable(item: ActionItem, *, manages: bool, user_pk: int | None) -> None:
    """An open item: whoever manages its post-mortem's items closes or cancels it; its owner
    may mark it done."""
    is_open = item.status == ActionStatus.OPEN
    item.may_cancel = is_open and manages
    item.may_close = is_open and (manages or (user_pk is not None and item.owner_id == user_pk))


def mark_closable(items: Sequence[ActionItem], user: User | Any) -> None:
    """Set ``may_close`` (may ``user`` mark it done?) and ``may_cancel`` on each listed item,
    in one query at most: the post-mortems among them that ``user`` writes or approves."""
    signed_in = getattr(user, "is_authenticated", False) and user.is_active
    admin = signed_in and user.has_role(Role.PLATFORM_ADMIN)
    pm_ids = {i.postmortem_id for i in items}
    mine: set[int] = set()
    if signed_in and not admin and pm_ids:
        mine = set(
            PostMortem.objects.filter(pk__in=pm_ids)
            .filter(Q(authors=user) | Q(approvers=user))
            .values_list("pk", flat=True)
        )
    for item in items:
        manages = signed_in and (
            admin or item.postmortem.incident.commander_id == user.pk or item.postmortem_id in mine
        )
        _set_closable(item, manages=manages, user_pk=user.pk if signed_in else None)


def overdue_list(*, user: User | Any, today: dt.date | None = None) -> QuerySet[ActionItem]:
    """Open items past their due date, the longest overdue first. Everyone signed in sees
    them (as every incident)."""
    if not getattr(user, "is_authenticated", False):
        return ActionItem.objects.none()
    today = today or today_utc()
    return (
        action_items(today=today)
        .filter(status=ActionStatus.OPEN, due__lt=today)
        .order_by("due", "pk")
    )


# --- reminders ---------------------------------------------------------------------------------


class RemindersFailedError(Exception):
    """Some reminders could not be sent; they were not marked and go out on a retry."""


def postmortem_url(incident_id: int) -> str:
    return reverse("incidents:postmortem", args=[incident_id])


def _reminder(item: ActionItem, what: str, today: dt.date) -> EmailMultiAlternatives:
    incident = item.postmortem.incident
    context = {
        "item": item,
        "owner": item.owner,
        "incident": incident,
        "what": what,
        "days_left": (item.due - today).days,
        "days_over": (today - item.due).days,
        "url": absolute_url(postmortem_url(incident.pk) + f"#action-{item.pk}"),
        "overdue_url": absolute_url(reverse("incidents:actions-overdue")),
    }
    if what == "overdue":
        subject = f"[Capgov] Overdue action item (due {item.due:%Y-%m-%d}): {item.title}"
    else:
        subject = f"[Capgov] Action item due {item.due:%Y-%m-%d}: {item.title}"
    message = EmailMultiAlternatives(
        subject=subject_clean(subject),
        body=render_to_string("incidents/email/action_reminder.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[item.owner.email],
    )
    message.attach_alternative(
        render_to_string("incidents/email/action_reminder.html", context), "text/html"
    )
    return message


def _remind(item: ActionItem, what: str, stamp: str, now: dt.datetime, today: dt.date) -> bool:
    """Claim the reminder (one UPDATE: a re-run or a concurrent run finds it claimed), then
    mail it; a failed send gives the claim back so a retry sends it. True if mailed."""
    claimed = ActionItem.objects.filter(
        pk=item.pk, status=ActionStatus.OPEN, due=item.due, owner_id=item.owner_id, **{stamp: None}
    ).update(**{stamp: now})
    if not claimed:
        return False
    try:
        _reminder(item, what, today).send()
    except Exception:
        ActionItem.objects.filter(pk=item.pk, **{stamp: now}).update(**{stamp: None})
        raise
    return True


def actions_remind(*, now: dt.datetime | None = None) -> dict[str, list[int]]:
    """E-mail owners of open items: once ``CAPGOV_ACTION_REMINDER_DAYS`` days (or fewer) before
    the due date, and once after it has passed. Idempotent.

    Returns the ids of the items reminded (``before``, ``overdue``), of those whose owner has no
    address (``skipped``) and of those whose mail failed (``failed``: not marked, so the next
    run sends them).
    """
    now = now or timezone.now()
    today = today_utc(now)
    days = max(0, settings.CAPGOV_ACTION_REMINDER_DAYS)
    result: dict[str, list[int]] = {"before": [], "overdue": [], "skipped": [], "failed": []}
    open_items = ActionItem.objects.filter(status=ActionStatus.OPEN).select_related(
        "owner", "postmortem__incident"
    )
    due = [
        (
            "overdue",
            "reminded_overdue_at",
            open_items.filter(due__lt=today, reminded_overdue_at=None),
        ),
        (
            "before",
            "reminded_before_at",
            open_items.filter(
                due__gte=today, due__lte=today + dt.timedelta(days=days), reminded_before_at=None
            ),
        ),
    ]
    for what, stamp, items in due:
        for item in items.order_by("due", "pk"):
            owner = item.owner
            if not owner.email or not owner.is_active:
                logger.warning("action item %s: its owner %s has no address", item.pk, owner)
                result["skipped"].append(item.pk)
                continue
            try:
                if _remind(item, what, stamp, now, today):
                    result[what].append(item.pk)
            except (smtplib.SMTPException, OSError):
                logger.exception("action item %s: the %s reminder failed", item.pk, what)
                result["failed"].append(item.pk)
    return result


# --- the deployment gate -----------------------------------------------------------------------


def _ctype_q(model: type[models.Model], **extra: Any) -> Q:
    # By name, not id: no content-type lookup (a query on a cold cache) before the one query.
    meta = model._meta
    return Q(subject_type__app_label=meta.app_label, subject_type__model=meta.model_name, **extra)


def _pool_users(version_ids: list[int], pools: dict[int, CapacityPool]) -> dict[int, set[int]]:
    """For each pool, the versions among ``version_ids`` that use it: a capacity assessment of
    the version on the pool (not superseded), or an endpoint serving the version whose provider
    and instance type are the pool's (a price of the pool's hardware at its provider)."""
    users: dict[int, set[int]] = defaultdict(set)
    for version_id, pool_id in (
        CapacityAssessment.objects.filter(version_id__in=version_ids, pool_id__in=list(pools))
        .exclude(status=AssessmentStatus.SUPERSEDED)
        .values_list("version_id", "pool_id")
    ):
        users[pool_id].add(version_id)
    endpoints = list(
        Endpoint.objects.filter(model_version_id__in=version_ids)
        .exclude(instance_type="")
        .values_list("model_version_id", "provider", "instance_type")
    )
    if not endpoints:
        return users
    runs_on: dict[tuple[str, str], set[int]] = defaultdict(set)
    for profile_id, provider, instance_type in (
        HardwarePrice.objects.filter(
            hardware_profile_id__in={p.hardware_profile_id for p in pools.values()}
        )
        .exclude(instance_type="")
        .values_list("hardware_profile_id", "provider", "instance_type")
    ):
        for pool in pools.values():
            if pool.hardware_profile_id == profile_id and pool.provider == provider:
                runs_on[provider, instance_type].add(pool.pk)
    for version_id, provider, instance_type in endpoints:
        for pool_id in runs_on.get((provider, instance_type), ()):
            users[pool_id].add(version_id)
    return users


def _gate_message(item: ActionItem, pool: CapacityPool | None, today: dt.date) -> str:
    late = ", overdue" if item.due < today else ""
    on = f", on the pool {pool.name}" if pool is not None else ""
    return (
        f"Open prevent action from incident '{item.postmortem.incident.title}' "
        f"(due {item.due:%Y-%m-%d}{late}, owner {item.owner}{on}): {item.title}"
    )


def gate_prevent_items(
    versions: Sequence[Any], now: dt.datetime
) -> dict[int, list[gate.GateWarning]]:
    """The registry's warning provider: open prevent items on each version's model, or on a
    pool it uses. The registration requirement that applies decides whether they block
    (``block_on_prevent_items``); the registry turns them into unmet requirements then.

    One query however many versions (a few more only when an open item names a pool).
    """
    if not versions:
        return {}
    model_ids = {v.model_id for v in versions}
    items = list(
        ActionItem.objects.filter(status=ActionStatus.OPEN, kind=ActionKind.PREVENT)
        .filter(_ctype_q(RegisteredModel, subject_id__in=model_ids) | _ctype_q(CapacityPool))
        .select_related("owner", "postmortem__incident", "subject_type")
        .order_by("due", "pk")
    )
    if not items:
        return {}
    pool_model = CapacityPool._meta.model_name
    pool_ids = {i.subject_id for i in items if i.subject_type.model == pool_model}
    users: dict[int, set[int]] = {}
    pools: dict[int, CapacityPool] = {}
    if pool_ids:
        pools = CapacityPool.objects.in_bulk(pool_ids)
        users = _pool_users([v.pk for v in versions], pools)
    today = today_utc(now)
    found: dict[int, list[gate.GateWarning]] = defaultdict(list)
    for item in items:
        if item.subject_type.model == pool_model:
            pool = pools.get(item.subject_id)
            hit = [v for v in versions if v.pk in users.get(item.subject_id, ())]
        else:
            pool = None
            hit = [v for v in versions if v.model_id == item.subject_id]
        if not hit:
            continue
        warning = gate.GateWarning(gate.PREVENT_ITEMS, _gate_message(item, pool, today))
        for v in hit:
            found[v.pk].append(warning)
    return dict(found)
