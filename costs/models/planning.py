"""Quarterly capacity planning, commitment recommendations and TCO scenarios."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from costs.models.billing import MONEY
from governance.models import BusinessUnit, CapacityConflict, Decision, ReviewBoard


class CycleStatus(models.TextChoices):
    OPEN = "open", "Open for plans"
    REVIEW = "review", "In review"
    APPROVED = "approved", "Approved"
    CANCELLED = "cancelled", "Cancelled"


class PlanningCycle(models.Model):
    """One fiscal quarter's planning: units file plans, the board decides, quotas follow.

    ``first_month``…``last_month`` are the three calendar months of the planned quarter.
    """

    fiscal_year = models.PositiveSmallIntegerField()
    quarter = models.PositiveSmallIntegerField()
    first_month = models.DateField()
    last_month = models.DateField()
    status = models.CharField(max_length=16, choices=CycleStatus.choices, default=CycleStatus.OPEN)
    board = models.ForeignKey(
        ReviewBoard, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    plans_due = models.DateField(null=True, blank=True, help_text="Plans filed by this day.")
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    opened_at = models.DateTimeField()
    review_started_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-first_month", "-pk"]  # a replaced, cancelled cycle after its successor
        constraints = [
            # Cancelled cycles stay on record beside the one that replaced them.
            models.UniqueConstraint(
                fields=["fiscal_year", "quarter"],
                condition=~models.Q(status="cancelled"),
                name="one_cycle_per_quarter",
            ),
            models.CheckConstraint(
                condition=models.Q(quarter__gte=1, quarter__lte=4), name="cycle_quarter_1_to_4"
            ),
        ]

    def __str__(self) -> str:
        return f"FY{self.fiscal_year} Q{self.quarter}"

    def get_absolute_url(self) -> str:
        return reverse("costs:planning-cycle", args=[self.pk])


class PlanStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FILED = "filed", "Filed"
    DECIDED = "decided", "Decided"


class CapacityPlan(models.Model):
    """A business unit's plan for one cycle: GPU-hours per pool per month, justified."""

    cycle = models.ForeignKey(PlanningCycle, on_delete=models.CASCADE, related_name="plans")
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="capacity_plans"
    )
    status = models.CharField(max_length=16, choices=PlanStatus.choices, default=PlanStatus.DRAFT)
    justification = models.TextField(blank=True)
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    filed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["cycle", "business_unit__code"]
        constraints = [
            models.UniqueConstraint(fields=["cycle", "business_unit"], name="one_plan_per_unit")
        ]

    def __str__(self) -> str:
        return f"{self.business_unit.code} plan for {self.cycle}"

    def get_absolute_url(self) -> str:
        return reverse("costs:capacity-plan", args=[self.pk])


class LineStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    TRIMMED = "trimmed", "Trimmed"
    REJECTED = "rejected", "Rejected"


class PlanLine(models.Model):
    """GPU-hours asked for on one pool in one month, and what the board granted."""

    plan = models.ForeignKey(CapacityPlan, on_delete=models.CASCADE, related_name="lines")
    pool = models.ForeignKey("registry.CapacityPool", on_delete=models.PROTECT, related_name="+")
    month = models.DateField(help_text="First day of a month.")
    gpu_hours = models.DecimalField(max_digits=14, decimal_places=2)
    forecast_gpu_hours = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True, help_text="The pre-filled value."
    )
    justification = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=LineStatus.choices, default="pending")
    approved_gpu_hours = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    unit_price = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True, help_text="Per GPU-hour."
    )
    currency = models.CharField(max_length=3, blank=True)
    decision = models.ForeignKey(
        Decision, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["plan", "pool", "month"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "pool", "month"], name="one_line_per_pool_month"
            ),
            models.CheckConstraint(condition=models.Q(gpu_hours__gte=0), name="plan_hours_gte_0"),
            models.CheckConstraint(
                condition=models.Q(approved_gpu_hours__isnull=True)
                | models.Q(approved_gpu_hours__gte=0),
                name="plan_approved_gte_0",
            ),
        ]

    def __str__(self) -> str:
        # Not the plan's unit: naming a line would read its plan and unit too, and each
        # Decision about a line is audited with its subject's name (the Decision has the unit).
        return f"{self.pool} {self.month:%Y-%m}: {self.gpu_hours} GPU-h"

    def get_absolute_url(self) -> str:
        # The line's row on its plan's page; plan_id only, so a list of decisions about lines
        # links each one without reading its plan.
        return f"{reverse('costs:capacity-plan', args=[self.plan_id])}#line-{self.pk}"


class PlanConflict(models.Model):
    """The plans of one cycle ask more of a pool in a month than it has."""

    cycle = models.ForeignKey(PlanningCycle, on_delete=models.CASCADE, related_name="conflicts")
    pool = models.ForeignKey("registry.CapacityPool", on_delete=models.PROTECT, related_name="+")
    month = models.DateField()
    requested_gpu_hours = models.DecimalField(max_digits=16, decimal_places=2)
    capacity_gpu_hours = models.DecimalField(max_digits=16, decimal_places=2)
    conflict = models.ForeignKey(CapacityConflict, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cycle", "pool", "month"]
        constraints = [
            models.UniqueConstraint(
                fields=["cycle", "pool", "month"], name="one_plan_conflict_per_pool_month"
            )
        ]

    def __str__(self) -> str:
        asked, has = self.requested_gpu_hours, self.capacity_gpu_hours
        return f"{self.pool} {self.month:%Y-%m}: {asked} GPU-h asked of {has}"


class CommitmentKind(models.TextChoices):
    COMMITTED_USE = "committed_use", "Committed-use discount"
    SAVINGS_PLAN = "savings_plan", "Savings plan"
    RESERVED = "reserved", "Reserved capacity"


class CommitmentOffer(models.Model):
    """A discount the provider offers for committing to a pool's hardware for a term."""

    pool = models.ForeignKey(
        "registry.CapacityPool", on_delete=models.CASCADE, related_name="commitment_offers"
    )
    kind = models.CharField(max_length=16, choices=CommitmentKind.choices)
    term_years = models.PositiveSmallIntegerField()
    discount_percent = models.DecimalField(max_digits=5, decimal_places=2)
    upfront = models.BooleanField(default=False, help_text="Paid in full at purchase.")

    class Meta:
        ordering = ["pool", "term_years", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["pool", "kind", "term_years"], name="one_offer_per_pool_kind_term"
            ),
            models.CheckConstraint(
                condition=models.Q(term_years__in=[1, 3]), name="offer_term_1_or_3"
            ),
            models.CheckConstraint(
                condition=models.Q(discount_percent__gt=0, discount_percent__lt=100),
                name="offer_discount_0_100",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.pool} {self.get_kind_display()} {self.term_years}y at -{self.discount_percent}%"
        )


class RecommendationStatus(models.TextChoices):
    OPEN = "open", "Open"
    REQUESTED = "requested", "Purchase requested"
    DISMISSED = "dismissed", "Dismissed"
    SUPERSEDED = "superseded", "Superseded"


class CommitmentRecommendation(models.Model):
    """How much of a pool to commit for a term, what it costs and saves, and the risk."""

    pool = models.ForeignKey(
        "registry.CapacityPool", on_delete=models.CASCADE, related_name="commitment_recommendations"
    )
    offer = models.ForeignKey(CommitmentOffer, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=CommitmentKind.choices)
    term_years = models.PositiveSmallIntegerField()
    low_quantile_gpus = models.DecimalField(max_digits=12, decimal_places=2)
    commit_gpus = models.PositiveIntegerField()
    hours_per_year = models.PositiveIntegerField(default=8760)
    on_demand_rate = models.DecimalField(max_digits=18, decimal_places=6)
    committed_rate = models.DecimalField(max_digits=18, decimal_places=6)
    discount_percent = models.DecimalField(max_digits=5, decimal_places=2)
    currency = models.CharField(max_length=3)
    annual_cost = models.DecimalField(**MONEY)
    annual_on_demand_cost = models.DecimalField(**MONEY)
    annual_saving = models.DecimalField(**MONEY)
    break_even_percent = models.DecimalField(max_digits=7, decimal_places=2)
    risk = models.JSONField(default=list, blank=True, help_text="What falling usage would cost.")
    status = models.CharField(
        max_length=16, choices=RecommendationStatus.choices, default=RecommendationStatus.OPEN
    )
    approval_request = models.ForeignKey(
        "governance.ApprovalRequest",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    generated_at = models.DateTimeField()

    class Meta:
        ordering = ["pool", "term_years", "-generated_at"]

    def __str__(self) -> str:
        return f"Commit {self.commit_gpus} GPUs of {self.pool} for {self.term_years}y"

    def get_absolute_url(self) -> str:
        return reverse("costs:commitment-detail", args=[self.pk])


class TcoScenario(models.Model):
    """On-prem against cloud for one long-running inference workload, saved for review.

    ``results`` keeps the figures as computed when the scenario was saved.
    """

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    currency = models.CharField(max_length=3, default="USD")
    capex = models.DecimalField(**MONEY)
    depreciation_years = models.PositiveSmallIntegerField()
    power_kw = models.DecimalField(max_digits=10, decimal_places=3)
    pue = models.DecimalField(max_digits=5, decimal_places=3)
    price_per_kwh = models.DecimalField(max_digits=10, decimal_places=5)
    operations_per_year = models.DecimalField(**MONEY)
    utilisation_percent = models.DecimalField(max_digits=5, decimal_places=2, default=100)
    hours_per_year = models.PositiveIntegerField(default=8760)
    cloud_on_demand_hourly = models.DecimalField(max_digits=18, decimal_places=6)
    cloud_committed_hourly = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True
    )
    benchmark = models.ForeignKey(
        "registry.EfficiencyBenchmark",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Its throughput gives the cost per 1M requests.",
    )
    requests_per_second = models.DecimalField(
        max_digits=14, decimal_places=4, null=True, blank=True, help_text="Or this throughput."
    )
    results = models.JSONField(default=dict, blank=True)
    assessments = models.ManyToManyField(
        "registry.CapacityAssessment", blank=True, related_name="tco_scenarios"
    )
    decisions = models.ManyToManyField(Decision, blank=True, related_name="tco_scenarios")
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(depreciation_years__gte=1), name="tco_depreciation_gte_1"
            ),
            models.CheckConstraint(condition=models.Q(pue__gte=1), name="tco_pue_gte_1"),
            models.CheckConstraint(
                condition=models.Q(utilisation_percent__gt=0, utilisation_percent__lte=100),
                name="tco_utilisation_0_100",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("costs:tco-detail", args=[self.pk])
