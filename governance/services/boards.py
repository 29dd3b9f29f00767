"""The review board decides by votes; a Decision is taken when they make quorum.

Without any active board configured, one board member's answer is the decision (a small
organisation's board of one). With a board, only its members vote, and the Decision is
recorded when the votes meet the board's quorum rule with a majority.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from governance import quorum
from governance.choices import FUNCTION_OF_ROLE, DecisionOutcome, Role
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import BoardMembership, BoardVote, BusinessUnit, Decision, ReviewBoard, User
from governance.services.decisions import decision_record

BOARD_ROLE_ORDER = (Role.BOARD_INFRA, Role.BOARD_ML, Role.BOARD_PRODUCT)


@dataclass(frozen=True)
class VoteOutcome:
    """What a vote did: the Decision if it completed one, and the quorum as it stands."""

    decision: Decision | None
    quorum: quorum.QuorumState | None


def _seat(by: User) -> tuple[ReviewBoard | None, str]:
    """The active board ``by`` sits on and their function; (None, role) with no boards."""
    if not ReviewBoard.objects.filter(is_active=True).exists():
        role = next((r for r in BOARD_ROLE_ORDER if r in by.role_set), "")
        if not (role or by.is_superuser):
            raise PermissionDeniedError("Only members of the capacity review board can decide.")
        return None, role
    membership = (
        BoardMembership.objects.filter(user=by, board__is_active=True)
        .select_related("board")
        .order_by("board__name")
        .first()
    )
    if membership is None:
        raise PermissionDeniedError("You do not sit on an active capacity review board.")
    return membership.board, membership.function


def _votes(board: ReviewBoard, subject: models.Model) -> list[BoardVote]:
    return list(
        BoardVote.objects.filter(
            board=board,
            subject_type=ContentType.objects.get_for_model(subject),
            subject_id=subject.pk,
            decision=None,
        ).select_related("member")
    )


def board_voter(user: User) -> bool | None:
    """May ``user`` vote for the board? None when no board sits (board roles decide alone)."""
    if not ReviewBoard.objects.filter(is_active=True).exists():
        return None
    return BoardMembership.objects.filter(user=user, board__is_active=True).exists()


def board_standing(*, subject: models.Model) -> tuple[quorum.QuorumState | None, list[BoardVote]]:
    """Where the open votes on ``subject`` stand, and the votes; (None, []) without a board."""
    board = ReviewBoard.objects.filter(is_active=True).order_by("name").first()
    if board is None:
        return None, []
    votes = _votes(board, subject)
    state = quorum.quorum_state(
        rule=board.quorum_rule,
        n=board.quorum_n,
        votes=[quorum.Vote(str(v.member), v.function, v.approve) for v in votes],
    )
    return state, votes


@transaction.atomic
def board_vote(
    *,
    subject: models.Model,
    by: User,
    approve: bool,
    rationale: str,
    kind: str,
    title: str,
    alternatives: str = "",
    business_unit: BusinessUnit | None = None,
    evidence: dict[str, Any] | None = None,
) -> VoteOutcome:
    """Record a board member's vote on ``subject``; take the Decision if quorum is met."""
    rationale = rationale.strip()
    if not rationale:
        raise DomainError("Give your rationale: it is kept with the decision.")
    board, function = _seat(by)
    role = next((r for r, f in FUNCTION_OF_ROLE.items() if f == function), function)
    outcome_of = {True: DecisionOutcome.APPROVED, False: DecisionOutcome.REJECTED}
    if board is None:
        decision = decision_record(
            subject=subject,
            kind=kind,
            outcome=outcome_of[approve],
            title=title,
            rationale=rationale,
            alternatives=alternatives,
            by=by,
            decided_as=role,
            business_unit=business_unit,
            evidence=evidence,
        )
        return VoteOutcome(decision, None)
    now = timezone.now()
    try:
        with transaction.atomic():
            vote = BoardVote.objects.create(
                board=board,
                member=by,
                function=function,
                approve=approve,
                rationale=rationale,
                alternatives=alternatives.strip(),
                at=now,
                subject_type=ContentType.objects.get_for_model(subject),
                subject_id=subject.pk,
            )
    except IntegrityError as exc:
        raise ConflictError("You have already voted on this item.") from exc
    votes = _votes(board, subject)
    state = quorum.quorum_state(
        rule=board.quorum_rule,
        n=board.quorum_n,
        votes=[quorum.Vote(str(v.member), v.function, v.approve) for v in votes],
    )
    if state.outcome is None:
        return VoteOutcome(None, state)
    rationales = "\n".join(
        f"{v.member} ({v.get_function_display()}, {'for' if v.approve else 'against'}): "
        f"{v.rationale}"
        for v in votes
    )
    alternatives_all = "\n".join(f"{v.member}: {v.alternatives}" for v in votes if v.alternatives)
    decision = decision_record(
        subject=subject,
        kind=kind,
        outcome=state.outcome,
        title=title,
        rationale=rationales,
        alternatives=alternatives_all,
        by=vote.member,
        decided_as=role,
        business_unit=business_unit,
        evidence={
            **(evidence or {}),
            "board": board.name,
            "quorum": state.summary(),
            "votes": {"for": state.approvals, "against": state.rejections},
        },
        at=now,
    )
    BoardVote.objects.filter(pk__in=[v.pk for v in votes]).update(decision=decision)
    return VoteOutcome(decision, state)
