"""Read queries about the organisation, approvals, decisions and freezes."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.contrib.auth.models import AnonymousUser
from django.db.models import F, Prefetch, Q, QuerySet

from governance import policy as rules
from governance.choices import BOARD_ROLES, RequestStatus, Role, StepStatus
from governance.models import (
    ApprovalEvent,
    ApprovalLink,
    ApprovalRequest,
    ApprovalStep,
    ApprovalVote,
    BusinessUnit,
    Decision,
    DeploymentFreeze,
    User,
)
from governance.money import money_format


def visible_unit_ids(user: User | AnonymousUser | None) -> frozenset[int] | None:
    """Business units whose costs ``user`` may read; None means all of them.

    ``None`` as the user is the system itself (commands, tasks); an anonymous visitor sees
    nothing.
    """
    if user is None:
        return None
    if not user.is_authenticated:
        return frozenset()
    if user.sees_all_business_units:
        return None
    return user.scoped_business_unit_ids


def manages_costs(user: User | AnonymousUser | None) -> bool:
    """May import billing data and edit rules; ``None`` is the system itself."""
    return user is None or (user.is_authenticated and user.manages_costs)


def business_unit_list(*, user: User | AnonymousUser | None) -> QuerySet[BusinessUnit]:
    units = BusinessUnit.objects.select_related("owner")
    visible = visible_unit_ids(user)
    return units if visible is None else units.filter(pk__in=visible)


def freezes_in_force(*, business_unit_ids: Iterable[int]) -> dict[int, DeploymentFreeze]:
    """The freeze that stops deployments in each of these business units now, if any."""
    freezes = (
        DeploymentFreeze.objects.filter(
            business_unit_id__in=list(business_unit_ids), lifted_at=None
        )
        .select_related("business_unit")
        .order_by("-started_at")
    )
    return {f.business_unit_id: f for f in freezes}


def decision_list_for(*, subject_type_id: int, subject_ids: list[int]) -> QuerySet[Decision]:
    """Decisions about these subjects, newest first, with their deciders."""
    return Decision.objects.filter(
        subject_type_id=subject_type_id, subject_id__in=subject_ids
    ).select_related("decided_by")


# --- Approvals, decisions and freezes -------------------------------------------------------

# Roles that see every approval request and decision: they are asked to decide anywhere.
APPROVALS_WIDE_ROLES = BOARD_ROLES | {Role.APPROVER, Role.FINANCE, Role.PLATFORM_ADMIN}
TIMES = "\u00d7"  # the multiplication sign, as in "64 x H100"


def approvals_see_all(user: User | AnonymousUser | None) -> bool:
    """Approvers, board members, finance and platform admins see every unit's requests."""
    if user is None:
        return True
    if not user.is_authenticated:
        return False
    return user.is_superuser or bool(user.role_set & APPROVALS_WIDE_ROLES)


def approval_visible_unit_ids(user: User | AnonymousUser | None) -> frozenset[int] | None:
    """Units whose requests, decisions and freezes ``user`` may read; None means all (the
    approvals counterpart of ``visible_unit_ids``)."""
    if approvals_see_all(user):
        return None
    if not user.is_authenticated:
        return frozenset()
    return user.scoped_business_unit_ids


def approval_filing_unit_list(*, user: User) -> QuerySet[BusinessUnit]:
    """Units ``user`` may file requests for: their own, or any for a platform admin."""
    units = BusinessUnit.objects.order_by("code")
    if user.has_role(Role.PLATFORM_ADMIN):
        return units
    return units.filter(pk__in=user.scoped_business_unit_ids)


def approval_unit_list(*, user: User | AnonymousUser | None) -> QuerySet[BusinessUnit]:
    """Business units whose requests, decisions and freezes ``user`` may read."""
    units = BusinessUnit.objects.select_related("owner").order_by("code")
    ids = approval_visible_unit_ids(user)
    return units if ids is None else units.filter(pk__in=ids)


def _approval_requests_scoped(
    requests: QuerySet[ApprovalRequest], user: User | AnonymousUser | None
) -> QuerySet[ApprovalRequest]:
    ids = approval_visible_unit_ids(user)
    if ids is None:
        return requests
    if not user.is_authenticated:
        return requests.none()
    return requests.filter(Q(requested_by=user) | Q(business_unit_id__in=ids))


def approval_request_list(*, user: User | AnonymousUser | None) -> QuerySet[ApprovalRequest]:
    """Requests ``user`` may read, newest first, with their unit, requester, policy and steps.

    Without a wide role a person sees what they filed and what their business units
    (member or owner) filed.
    """
    requests = (
        ApprovalRequest.objects.select_related("business_unit", "requested_by", "policy")
        .prefetch_related(Prefetch("steps", queryset=ApprovalStep.objects.order_by("order")))
        .order_by("-created_at", "-pk")
    )
    return _approval_requests_scoped(requests, user)


def approval_request_detail(*, user: User | AnonymousUser | None) -> QuerySet[ApprovalRequest]:
    """The list's scope, with everything the request page shows: votes and history."""
    requests = ApprovalRequest.objects.select_related(
        "business_unit", "business_unit__owner", "requested_by", "policy", "decision"
    ).prefetch_related(
        Prefetch(
            "steps",
            queryset=ApprovalStep.objects.order_by("order").prefetch_related(
                Prefetch(
                    "votes", queryset=ApprovalVote.objects.select_related("approver").order_by("at")
                )
            ),
        ),
        Prefetch("events", queryset=ApprovalEvent.objects.select_related("actor")),
    )
    return _approval_requests_scoped(requests, user)


def approval_escalation_entries(*, step: ApprovalStep) -> tuple[str, ...]:
    """The entries of the request's escalation path this step has been escalated along."""
    request = step.request
    path = list(request.escalation_path or rules.DEFAULT_ESCALATION_PATH)
    return rules.escalation_entries_reached(path, step.escalation_level)


def approval_escalation_entry_held(*, entry: str, step: ApprovalStep, user: User) -> bool:
    """``user`` is (still) someone that escalation entry asks: the unit's owner for
    ``bu_owner``, a holder of the role for ``role:<role>``."""
    if entry == rules.BU_OWNER:
        return step.request.business_unit.owner_id == user.pk
    if entry.startswith(rules.ROLE_PREFIX):
        return user.has_role(entry.removeprefix(rules.ROLE_PREFIX))
    return False


def approval_escalation_reason_holds(*, step: ApprovalStep, user: User) -> bool:
    """``user`` still holds what an escalation of this step asked them for."""
    return any(
        approval_escalation_entry_held(entry=entry, step=step, user=user)
        for entry in approval_escalation_entries(step=step)
    )


def approval_step_eligible(*, step: ApprovalStep, user: User) -> bool:
    """``user`` may vote on this step now: an active account holding the step's role, or one
    an escalation asked that still holds the reason it was asked (still the unit's owner,
    still holding the role). A deactivated account never votes, with a link or without."""
    if not user.is_active:
        return False
    if user.has_role(step.role):
        return True
    if not ApprovalLink.objects.filter(step=step, approver=user, escalated=True).exists():
        return False
    return approval_escalation_reason_holds(step=step, user=user)


def approval_steps_votable(*, request: ApprovalRequest, user: User) -> list[ApprovalStep]:
    """The open steps of a pending request that ``user`` may vote on now (none for the
    requester, none where they already voted)."""
    if (
        not user.is_authenticated
        or not user.is_active
        or request.status != RequestStatus.PENDING
        or request.requested_by_id == user.pk
    ):
        return []
    active = [s for s in request.steps.all() if s.status == StepStatus.ACTIVE]
    if not active:
        return []
    voted = set(
        ApprovalVote.objects.filter(step__in=active, approver=user).values_list(
            "step_id", flat=True
        )
    )
    escalated = set(
        ApprovalLink.objects.filter(step__in=active, approver=user, escalated=True).values_list(
            "step_id", flat=True
        )
    )
    for s in active:
        s.request = request
    return [
        s
        for s in active
        if s.pk not in voted
        and (
            user.has_role(s.role)
            or (s.pk in escalated and approval_escalation_reason_holds(step=s, user=user))
        )
    ]


def approval_steps_waiting_for(*, user: User) -> QuerySet[ApprovalStep]:
    """Open steps of pending requests that wait for ``user``'s vote."""
    open_steps = ApprovalStep.objects.filter(
        status=StepStatus.ACTIVE, request__status=RequestStatus.PENDING
    )
    if not user.is_active:
        return open_steps.none()
    roles = set(Role.values) if user.is_superuser else set(user.role_set)
    escalated = [
        step.pk
        for step in open_steps.filter(links__approver=user, links__escalated=True)
        .exclude(role__in=roles)
        .select_related("request__business_unit")
        .distinct()
        if approval_escalation_reason_holds(step=step, user=user)
    ]
    return (
        open_steps.filter(Q(role__in=roles) | Q(pk__in=escalated))
        .exclude(votes__approver=user)
        .exclude(request__requested_by=user)
    )


def approval_step_approvers(*, step: ApprovalStep) -> QuerySet[User]:
    """People e-mailed when a step opens: active holders of its role, never the requester."""
    return (
        User.objects.filter(role_assignments__role=step.role, is_active=True)
        .exclude(pk=step.request.requested_by_id)
        .distinct()
        .order_by("username")
    )


def approval_request_summary(*, request: ApprovalRequest) -> str:
    """One line for mails and link pages.

    ``Fine-tuning job: 64 x H100 for 72 h, est. $23,000.00, Research BU``
    """
    parts = [f"{request.get_kind_display()}: "]
    if request.accelerator_count:
        hours = f"{Decimal(request.duration_hours).normalize():f}"
        what = request.accelerator or "accelerators"
        parts.append(f"{request.accelerator_count:,} {TIMES} {what} for {hours} h, ")
    parts.append(f"est. {money_format(request.estimated_cost, request.currency, symbol=True)}, ")
    parts.append(f"{request.business_unit.name} BU")
    return "".join(parts)


def decision_list(*, user: User | AnonymousUser | None) -> QuerySet[Decision]:
    """Decisions ``user`` may read, newest first, with their decider, unit and subject.

    Wide roles see all; others see their business units' decisions and those about no
    unit in particular (a benchmark protocol, say).
    """
    decisions = Decision.objects.select_related(
        "decided_by", "business_unit", "subject_type"
    ).prefetch_related("subject")
    ids = approval_visible_unit_ids(user)
    if ids is None:
        return decisions
    if not user.is_authenticated:
        return decisions.none()
    return decisions.filter(Q(business_unit__isnull=True) | Q(business_unit_id__in=ids))


def freeze_list(*, user: User | AnonymousUser | None) -> QuerySet[DeploymentFreeze]:
    """Freezes in force first, then lifted ones, each with its unit and the people involved."""
    freezes = DeploymentFreeze.objects.select_related(
        "business_unit", "created_by", "lifted_by"
    ).order_by(F("lifted_at").desc(nulls_first=True), "-started_at", "-pk")
    ids = approval_visible_unit_ids(user)
    return freezes if ids is None else freezes.filter(business_unit_id__in=ids)
