"""Who decides: the organisation, decisions and freezes (one module per concern)."""

from governance.models.decisions import Decision, DeploymentFreeze
from governance.models.organisation import BusinessUnit, RoleAssignment, User

__all__ = ["BusinessUnit", "Decision", "DeploymentFreeze", "RoleAssignment", "User"]
