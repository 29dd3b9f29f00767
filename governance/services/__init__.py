"""Every write in governance, one module per concern; import from here."""

from governance.services.boards import VoteOutcome, board_standing, board_vote
from governance.services.decisions import decision_record, freeze_lift, freeze_start
from governance.services.organisation import business_unit_owner_set, person_upsert

__all__ = [
    "VoteOutcome",
    "board_standing",
    "board_vote",
    "business_unit_owner_set",
    "decision_record",
    "freeze_lift",
    "freeze_start",
    "person_upsert",
]
