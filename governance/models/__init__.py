"""Who decides: the organisation, decisions, approvals and boards (one module per concern)."""

from governance.models.approvals import (
    ApprovalEvent,
    ApprovalLink,
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalStep,
    ApprovalVote,
    PolicyStep,
)
from governance.models.audit import AuditEntry, MailCount, MailOutcome
from governance.models.boards import (
    BoardMembership,
    BoardVote,
    CapacityConflict,
    ReviewBoard,
    ServiceLevelObjective,
    SloMeasurement,
)
from governance.models.decisions import Decision, DeploymentFreeze
from governance.models.organisation import BusinessUnit, RoleAssignment, User
from governance.models.tokens import ApiToken, TokenScope

__all__ = [
    "ApiToken",
    "ApprovalEvent",
    "ApprovalLink",
    "ApprovalPolicy",
    "ApprovalRequest",
    "ApprovalStep",
    "ApprovalVote",
    "AuditEntry",
    "BoardMembership",
    "BoardVote",
    "BusinessUnit",
    "CapacityConflict",
    "Decision",
    "DeploymentFreeze",
    "MailCount",
    "MailOutcome",
    "PolicyStep",
    "ReviewBoard",
    "RoleAssignment",
    "ServiceLevelObjective",
    "SloMeasurement",
    "TokenScope",
    "User",
]
