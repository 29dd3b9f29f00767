"""Every write in governance, one module per concern; import from here."""

from governance.services.approvals import (
    approval_link_check,
    approval_link_confirm,
    approval_link_mail,
    approval_link_needs_signin,
    approval_plan,
    approval_policies_load,
    approval_request_create,
    approval_request_outcome_mail,
    approval_request_submit,
    approval_request_update,
    approval_request_withdraw,
    approval_requests_expire,
    approval_steps_escalate,
    approval_vote_cast,
)
from governance.services.boards import VoteOutcome, board_standing, board_vote, board_voter
from governance.services.decisions import decision_record, freeze_lift, freeze_start
from governance.services.organisation import business_unit_owner_set, person_upsert
from governance.services.slos import (
    slo_measurements_import,
    slo_measurements_record,
    slos_export,
    slos_import,
)

__all__ = [
    "VoteOutcome",
    "approval_link_check",
    "approval_link_confirm",
    "approval_link_mail",
    "approval_link_needs_signin",
    "approval_plan",
    "approval_policies_load",
    "approval_request_create",
    "approval_request_outcome_mail",
    "approval_request_submit",
    "approval_request_update",
    "approval_request_withdraw",
    "approval_requests_expire",
    "approval_steps_escalate",
    "approval_vote_cast",
    "board_standing",
    "board_vote",
    "board_voter",
    "business_unit_owner_set",
    "decision_record",
    "freeze_lift",
    "freeze_start",
    "person_upsert",
    "slo_measurements_import",
    "slo_measurements_record",
    "slos_export",
    "slos_import",
]
