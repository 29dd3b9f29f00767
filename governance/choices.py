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
    APPROVAL_REQUEST = "approval_request", "Costly operation request"
    BUDGET_EXCEPTION = "budget_exception", "Budget exception"
    FREEZE = "freeze", "Deployment freeze"
    CAPACITY_CONFLICT = "capacity_conflict", "Capacity conflict"
    OTHER = "other", "Other"


class DecisionOutcome(models.TextChoices):
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class FreezeOrigin(models.TextChoices):
    """Who put a deployment freeze in place: a person, or a budget's rule."""

    PERSON = "person", "A platform admin"
    BUDGET = "budget", "A budget breach"


class RequestKind(models.TextChoices):
    """What a costly-operation request asks for."""

    FINE_TUNING = "fine_tuning", "Fine-tuning job"
    BATCH_INFERENCE = "batch_inference", "Batch inference"
    RESERVED_CAPACITY = "reserved_capacity", "Reserved or committed capacity"
    NEW_ENDPOINT = "new_endpoint", "New endpoint"
    BUDGET_EXCEPTION = "budget_exception", "Budget exception"


class RequestStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    WITHDRAWN = "withdrawn", "Withdrawn"


class StepMode(models.TextChoices):
    SEQUENTIAL = "sequential", "One step after another"
    PARALLEL = "parallel", "All steps at once"


class StepStatus(models.TextChoices):
    WAITING = "waiting", "Waiting for an earlier step"
    ACTIVE = "active", "Waiting for approvers"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


class BoardFunction(models.TextChoices):
    INFRA = "infra", "Infrastructure"
    ML = "ml", "ML"
    PRODUCT = "product", "Product"


# The board role a person holds says which function they sit for.
FUNCTION_OF_ROLE = {
    Role.BOARD_INFRA: BoardFunction.INFRA,
    Role.BOARD_ML: BoardFunction.ML,
    Role.BOARD_PRODUCT: BoardFunction.PRODUCT,
}


class QuorumRule(models.TextChoices):
    ONE_OF_EACH = "one_of_each", "At least one member of each function"
    N_OF_M = "n_of_m", "At least N members"


class ConflictStatus(models.TextChoices):
    OPEN = "open", "Open"
    ESCALATED = "escalated", "Escalated"
    RESOLVED = "resolved", "Resolved"


class SloIndicator(models.TextChoices):
    AVAILABILITY = "availability", "Availability (%)"
    LATENCY_P95 = "latency_p95", "p95 latency (ms)"
