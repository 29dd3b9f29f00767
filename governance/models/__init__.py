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

__all__ = [
    "ApprovalEvent",
    "ApprovalLink",
    "ApprovalPolicy",
    "ApprovalRequest",
    "ApprovalStep",
    "ApprovalVote",
    "BoardMembership",
    "BoardVote",
    "BusinessUnit",
    "CapacityConflict",
    "Decision",
    "DeploymentFreeze",
    "PolicyStep",
    "ReviewBoard",
    "RoleAssignment",
    "ServiceLevelObjective",
    "SloMeasurement",
    "User",
]
