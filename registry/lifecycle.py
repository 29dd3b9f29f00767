"""Which lifecycle moves exist, who makes each one, and why a move is refused. Pure.

draft → submitted → under review → approved → deployed → deprecated → retired, with
rejected as the board's other answer. Owners move their own versions; the review board
moves them through review.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DRAFT = "draft"
SUBMITTED = "submitted"
UNDER_REVIEW = "under_review"
APPROVED = "approved"
DEPLOYED = "deployed"
DEPRECATED = "deprecated"
RETIRED = "retired"
REJECTED = "rejected"


class Actor(StrEnum):
    OWNER = "owner"  # an ML engineer of the model's business unit, or a platform admin
    BOARD = "board"  # a member of the capacity review board


@dataclass(frozen=True)
class Move:
    action: str
    label: str
    sources: frozenset[str]
    target: str
    actor: Actor
    needs_comment: bool = False


MOVES: dict[str, Move] = {
    m.action: m
    for m in (
        Move("submit", "Submit for review", frozenset({DRAFT}), SUBMITTED, Actor.OWNER),
        Move("withdraw", "Withdraw", frozenset({SUBMITTED}), DRAFT, Actor.OWNER),
        Move("start_review", "Start review", frozenset({SUBMITTED}), UNDER_REVIEW, Actor.BOARD),
        Move(
            "approve",
            "Approve",
            frozenset({SUBMITTED, UNDER_REVIEW}),
            APPROVED,
            Actor.BOARD,
            needs_comment=True,
        ),
        Move(
            "reject",
            "Reject",
            frozenset({SUBMITTED, UNDER_REVIEW}),
            REJECTED,
            Actor.BOARD,
            needs_comment=True,
        ),
        Move("revise", "Reopen as draft", frozenset({REJECTED}), DRAFT, Actor.OWNER),
        Move("deploy", "Deploy", frozenset({APPROVED}), DEPLOYED, Actor.OWNER),
        Move("deprecate", "Deprecate", frozenset({DEPLOYED}), DEPRECATED, Actor.OWNER),
        Move(
            "retire",
            "Retire",
            frozenset({APPROVED, DEPRECATED}),
            RETIRED,
            Actor.OWNER,
        ),
    )
}

# What to say when a move is asked for from the wrong state.
_WHY_NOT = {
    DRAFT: "it is still a draft: submit it for review first",
    SUBMITTED: "it is waiting for the review board",
    UNDER_REVIEW: "the review board is reviewing it",
    APPROVED: "it is approved and not yet deployed",
    DEPLOYED: "it is deployed",
    DEPRECATED: "it is deprecated",
    RETIRED: "it is retired, which is final",
    REJECTED: "the board rejected it: reopen it as a draft and resubmit",
}


class TransitionError(ValueError):
    """A move that the lifecycle does not allow from the current state."""


def move_for(action: str, *, state: str) -> Move:
    """The move ``action`` from ``state``, or a TransitionError that says why not."""
    move = MOVES.get(action)
    if move is None:
        known = ", ".join(MOVES)
        raise TransitionError(f"Unknown action {action!r}; the actions are {known}.")
    if state not in move.sources:
        allowed = " or ".join(sorted(s.replace("_", " ") for s in move.sources))
        raise TransitionError(
            f"Cannot {move.label.lower()} this version: {_WHY_NOT[state]}. "
            f"It must be {allowed} to {move.label.lower()}."
        )
    return move


def moves_from(state: str) -> list[Move]:
    return [m for m in MOVES.values() if state in m.sources]
