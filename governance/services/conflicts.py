"""Capacity conflicts: two business units want the same capacity; escalate until decided.

A conflict starts with the review board. If it waits longer than its wait, it escalates
one level along its path (by default the owners of the units involved, then the platform
admins), and each level's people are e-mailed once. It ends in a Decision: the board's (by
quorum), or a platform admin's once it has reached them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from governance.celery import enqueue
from governance.choices import BOARD_ROLES, ConflictStatus, DecisionKind, DecisionOutcome, Role
from governance.emails import absolute_url, mail_send
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import BusinessUnit, CapacityConflict, Decision, ReviewBoard, User
from governance.services.boards import VoteOutcome, board_vote
from governance.services.decisions import decision_record

DEFAULT_PATH = ["board", "bu_owners", f"role:{Role.PLATFORM_ADMIN}"]
DEFAULT_WAIT = timedelta(hours=48)


def _level_people(conflict: CapacityConflict, target: str) -> list[User]:
    if target == "board":
        people = User.objects.filter(role_assignments__role__in=BOARD_ROLES)
    elif target == "bu_owners":
        people = User.objects.filter(owned_business_units__in=conflict.business_units.all())
    elif target.startswith("role:"):
        people = User.objects.filter(role_assignments__role=target.removeprefix("role:"))
    else:
        return []
    return list(people.filter(is_active=True).exclude(email="").distinct().order_by("pk"))


def conflict_notify(*, conflict_id: int, target: str) -> list[str]:
    """E-mail the people at one level of a conflict's path (run by a Celery task)."""
    conflict = CapacityConflict.objects.prefetch_related("business_units").get(pk=conflict_id)
    if conflict.status == ConflictStatus.RESOLVED:
        return []
    recipients = [u.email for u in _level_people(conflict, target)]
    if recipients:
        mail_send(
            to=recipients,
            subject=f"Capacity conflict: {conflict.title}",
            template="conflict",
            context={
                "conflict": conflict,
                "units": ", ".join(u.name for u in conflict.business_units.all()),
                "level": conflict.escalation_level,
                "url": absolute_url(conflict.get_absolute_url()),
            },
        )
    return recipients


def _enqueue_notify(conflict: CapacityConflict, target: str) -> None:
    from governance.tasks import conflict_notify_task  # tasks import services: import late

    transaction.on_commit(lambda: enqueue(conflict_notify_task, conflict.pk, target))


def _check_path(path: Iterable[str]) -> list[str]:
    path = list(path)
    for target in path:
        role = target.removeprefix("role:")
        if target not in ("board", "bu_owners") and not (
            target.startswith("role:") and role in Role.values
        ):
            raise DomainError(
                f"Unknown escalation target {target!r}: use board, bu_owners or role:<role>."
            )
    return path


@transaction.atomic
def conflict_raise(
    *,
    title: str,
    description: str,
    business_units: Iterable[BusinessUnit],
    by: User,
    subject: models.Model | None = None,
    escalation_path: Iterable[str] | None = None,
    wait: timedelta = DEFAULT_WAIT,
) -> CapacityConflict:
    """Record a conflict between units and put it in front of the first level (the board)."""
    units = list(business_units)
    if len(units) < 2:
        raise DomainError("A capacity conflict involves at least two business units.")
    involved = {u.pk for u in units} & by.scoped_business_unit_ids
    if not (involved or by.is_board_member or by.has_role(Role.PLATFORM_ADMIN)):
        raise PermissionDeniedError(
            "Raise a conflict for a unit you belong to (or as a board member or platform admin)."
        )
    if not description.strip():
        raise DomainError("Describe what each unit needs and why they collide.")
    now = timezone.now()
    conflict = CapacityConflict.objects.create(
        title=title.strip()[:300],
        description=description.strip(),
        raised_by=by,
        raised_at=now,
        escalation_path=_check_path(escalation_path or DEFAULT_PATH),
        due_at=now + wait,
        subject=subject,
    )
    conflict.business_units.set(units)
    _enqueue_notify(conflict, conflict.escalation_path[0])
    return conflict


def conflicts_escalate(*, now: datetime | None = None, wait: timedelta = DEFAULT_WAIT) -> int:
    """Move every undecided conflict past its due time one level up; returns how many."""
    now = now or timezone.now()
    moved = 0
    for conflict in CapacityConflict.objects.filter(
        ~Q(status=ConflictStatus.RESOLVED), due_at__lte=now
    ):
        with transaction.atomic():
            locked = CapacityConflict.objects.select_for_update().get(pk=conflict.pk)
            if locked.status == ConflictStatus.RESOLVED or locked.due_at > now:
                continue
            if locked.escalation_level + 1 >= len(locked.escalation_path):
                locked.due_at = None  # the top of the path: nobody above to ask
                locked.save(update_fields=["due_at"])
                continue
            locked.escalation_level += 1
            locked.status = ConflictStatus.ESCALATED
            locked.due_at = now + wait
            locked.save(update_fields=["escalation_level", "status", "due_at"])
            target = locked.escalation_path[locked.escalation_level]
            _enqueue_notify(locked, target)
            moved += 1
    return moved


def _board_sits() -> bool:
    return ReviewBoard.objects.filter(is_active=True).exists()


def _involved(by: User, conflict: CapacityConflict) -> bool:
    unit_ids = {u.pk for u in conflict.business_units.all()}
    return bool(unit_ids & by.scoped_business_unit_ids)


def _evidence(conflict: CapacityConflict) -> dict:
    return {"units": [u.code for u in conflict.business_units.all()]}


@transaction.atomic
def conflict_resolve(
    *, conflict: CapacityConflict, by: User, resolution: str, alternatives: str = ""
) -> VoteOutcome:
    """Propose a resolution. A board member's proposal goes to the board's vote (with their
    vote for it); without a configured board, or a platform admin once the conflict has
    reached them, it is decided at once. Nobody from a unit in the conflict decides it."""
    conflict = CapacityConflict.objects.select_for_update().get(pk=conflict.pk)
    if conflict.status == ConflictStatus.RESOLVED:
        raise ConflictError("This conflict is already resolved.")
    if not resolution.strip():
        raise DomainError("Say what is decided: who gets what capacity, until when, and why.")
    if _involved(by, conflict) and not _board_sits():
        # Alone, a party would decide its own case; a board's quorum and majority do not.
        raise PermissionDeniedError(
            "You belong to a business unit in this conflict, so others decide it."
        )
    title = f"Resolve capacity conflict: {conflict.title}"
    at_admins = conflict.escalation_path[conflict.escalation_level] == f"role:{Role.PLATFORM_ADMIN}"
    if at_admins and by.has_role(Role.PLATFORM_ADMIN):
        if _involved(by, conflict):
            raise PermissionDeniedError(
                "You belong to a business unit in this conflict, so another admin decides it."
            )
        decision = decision_record(
            subject=conflict,
            kind=DecisionKind.CAPACITY_CONFLICT,
            outcome=DecisionOutcome.APPROVED,
            title=title,
            rationale=resolution,
            alternatives=alternatives,
            by=by,
            decided_as=Role.PLATFORM_ADMIN,
            evidence=_evidence(conflict),
        )
        _close(conflict, decision)
        return VoteOutcome(decision, None)
    if not by.is_board_member:
        raise PermissionDeniedError(
            "The review board resolves capacity conflicts (a platform admin once it is "
            "escalated to them)."
        )
    if conflict.proposal:
        raise ConflictError(
            f"{conflict.proposed_by} has proposed a resolution: vote on it, or wait for the "
            "board to turn it down before proposing another."
        )
    conflict.proposal = resolution.strip()
    conflict.proposed_by = by
    conflict.save(update_fields=["proposal", "proposed_by"])
    return _vote(conflict, by=by, approve=True, rationale=resolution, alternatives=alternatives)


@transaction.atomic
def conflict_vote(
    *, conflict: CapacityConflict, by: User, approve: bool, rationale: str
) -> VoteOutcome:
    """A board member's vote on the proposed resolution."""
    conflict = CapacityConflict.objects.select_for_update().get(pk=conflict.pk)
    if conflict.status == ConflictStatus.RESOLVED:
        raise ConflictError("This conflict is already resolved.")
    if not conflict.proposal:
        raise ConflictError("No resolution is proposed yet: propose one.")
    if _involved(by, conflict) and not _board_sits():
        raise PermissionDeniedError(
            "You belong to a business unit in this conflict, so others decide it."
        )
    return _vote(conflict, by=by, approve=approve, rationale=rationale)


def _vote(
    conflict: CapacityConflict, *, by: User, approve: bool, rationale: str, alternatives: str = ""
) -> VoteOutcome:
    outcome = board_vote(
        subject=conflict,
        by=by,
        approve=approve,
        rationale=rationale,
        alternatives=alternatives,
        kind=DecisionKind.CAPACITY_CONFLICT,
        title=f"Resolve capacity conflict: {conflict.title} — {conflict.proposal[:150]}",
        evidence={**_evidence(conflict), "proposal": conflict.proposal},
    )
    if outcome.decision is not None:
        if outcome.decision.outcome == DecisionOutcome.APPROVED:
            _close(conflict, outcome.decision)
        else:
            # Turned down: the floor is open for another proposal.
            conflict.proposal = ""
            conflict.proposed_by = None
            conflict.save(update_fields=["proposal", "proposed_by"])
    return outcome


def _close(conflict: CapacityConflict, decision: Decision) -> None:
    conflict.status = ConflictStatus.RESOLVED
    conflict.decision = decision
    conflict.due_at = None
    conflict.save(update_fields=["status", "decision", "due_at"])


def conflict_withdraw(*, conflict: CapacityConflict, decision: Decision) -> None:
    """Close a conflict whose question went away (the plan that raised it was cancelled):
    resolved by ``decision``, which says why, with no vote and no further escalation."""
    conflict = CapacityConflict.objects.select_for_update().get(pk=conflict.pk)
    if conflict.status != ConflictStatus.RESOLVED:  # a vote that closed it first stands
        _close(conflict, decision)
