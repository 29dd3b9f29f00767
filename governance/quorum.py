"""When a review board's votes make a decision. Pure: plain votes in, a verdict out.

Quorum is about participation: enough members, or one of each function, must have voted.
Once it is met, the majority decides; a tie waits for another vote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FUNCTIONS = ("infra", "ml", "product")
LABELS = {"infra": "infra", "ml": "ML", "product": "product"}


@dataclass(frozen=True)
class Vote:
    member: str
    function: str
    approve: bool


@dataclass(frozen=True)
class QuorumState:
    met: bool
    outcome: str | None  # "approved", "rejected", or None while undecided
    approvals: int
    rejections: int
    voted_functions: frozenset[str]
    waiting_for: str  # what is still missing, in words ("product", "1 more member")

    def summary(self) -> str:
        """E.g. "infra ✓, ML ✓, product pending"."""
        return ", ".join(
            f"{LABELS[f]} {'✓' if f in self.voted_functions else 'pending'}" for f in FUNCTIONS
        )


def quorum_state(*, rule: str, n: int, votes: Sequence[Vote]) -> QuorumState:
    voted = frozenset(v.function for v in votes)
    approvals = sum(1 for v in votes if v.approve)
    rejections = len(votes) - approvals
    if rule == "one_of_each":
        missing = [LABELS[f] for f in FUNCTIONS if f not in voted]
        met = not missing
        waiting = " and ".join(missing)
    else:
        need = max(1, n)
        met = len(votes) >= need
        short = need - len(votes)
        waiting = "" if met else f"{short} more member{'s' if short > 1 else ''}"
    outcome = None
    if met and approvals != rejections:
        outcome = "approved" if approvals > rejections else "rejected"
    elif met:
        waiting = "a deciding vote (the votes are tied)"
    return QuorumState(met, outcome, approvals, rejections, voted, waiting)
