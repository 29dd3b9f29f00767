from django.db import models


class Role(models.TextChoices):
    """What a person may do. A person can hold several roles."""

    BOARD_INFRA = "board_infra", "Review board — infrastructure"
    BOARD_ML = "board_ml", "Review board — ML"
    BOARD_PRODUCT = "board_product", "Review board — product"
    APPROVER = "approver", "Approver"
    FINANCE = "finance", "Finance"
    ML_ENGINEER = "ml_engineer", "ML engineer"
    PLATFORM_ADMIN = "platform_admin", "Platform admin"


# The capacity review board: members from infrastructure, ML and product.
BOARD_ROLES = frozenset({Role.BOARD_INFRA, Role.BOARD_ML, Role.BOARD_PRODUCT})
# Roles that see every business unit's costs, including Unallocated.
ORGANISATION_WIDE_ROLES = frozenset({Role.FINANCE, Role.PLATFORM_ADMIN})
# Roles that may import billing data and edit allocation rules.
COST_MANAGER_ROLES = frozenset({Role.FINANCE, Role.PLATFORM_ADMIN})


class DecisionKind(models.TextChoices):
    """What a decision is about; other apps link to decisions of every kind."""

    VERSION_REVIEW = "version_review", "Model version review"
    ASSESSMENT = "assessment", "Capacity impact assessment"
    WAIVER = "waiver", "Requirement waiver"
    DEPLOYMENT_APPROVAL = "deployment_approval", "Deployment approval (cost tier)"
    PROTOCOL = "protocol", "Benchmark protocol"
    OTHER = "other", "Other"


class DecisionOutcome(models.TextChoices):
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
