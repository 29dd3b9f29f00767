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


# Roles that see every business unit's costs, including Unallocated.
ORGANISATION_WIDE_ROLES = frozenset({Role.FINANCE, Role.PLATFORM_ADMIN})
# Roles that may import billing data and edit allocation rules.
COST_MANAGER_ROLES = frozenset({Role.FINANCE, Role.PLATFORM_ADMIN})
