"""Chargeback: the allocation policy, SLA penalties, quotas, and the monthly statements.

A month's statements are computed live while the month is a draft; publishing stores them
(``Statement`` and ``StatementLine`` rows), and from then on everyone reads the stored
numbers. A closed month's rows never change: what arrives later for it is carried into the
next open month as adjustment lines.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from costs.models.budgets import BudgetBasis
from governance.models import BusinessUnit, ServiceLevelObjective

STATEMENT_MONEY = {"max_digits": 20, "decimal_places": 4}


class AllocationPolicy(models.Model):
    """How the months from ``first_month`` on become statements, until the next policy.

    The basis says which cost is charged: *billed* puts a commitment purchase in the month
    it was bought; *effective* spreads it over its term through the amortised cost of the
    usage it covers. The shared pools say which costs are split across units, and how.
    """

    name = models.CharField(max_length=120)
    first_month = models.DateField(unique=True, help_text="First day of a month.")
    basis = models.CharField(max_length=16, choices=BudgetBasis.choices, default=BudgetBasis.BILLED)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-first_month"]
        verbose_name_plural = "allocation policies"

    def __str__(self) -> str:
        return f"{self.name} (from {self.first_month:%Y-%m}, {self.basis})"


class SplitMethod(models.TextChoices):
    PROPORTIONAL = "proportional", "Proportional to direct spend"
    EVEN = "even", "Evenly"
    FIXED = "fixed", "Fixed percentages"


class SharedPool(models.Model):
    """Costs that are shared: everything allocated to ``source_unit`` (a platform team's
    overhead, a shared GPU cluster), or Unallocated when ``source_unit`` is empty.

    The pool's month total is split across ``recipients`` (none listed: every unit with
    direct cost that month, pool holders excepted) by the method; fixed percentages come
    from :class:`SharedPoolShare` and must add up to 100.
    """

    policy = models.ForeignKey(AllocationPolicy, on_delete=models.CASCADE, related_name="pools")
    name = models.CharField(max_length=120)
    source_unit = models.ForeignKey(
        BusinessUnit,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="shared_pools",
        help_text="The unit whose costs are shared; empty: spread Unallocated.",
    )
    method = models.CharField(max_length=16, choices=SplitMethod.choices)
    recipients = models.ManyToManyField(
        BusinessUnit,
        blank=True,
        related_name="+",
        help_text="Units that share it; empty: every unit with direct cost that month.",
    )

    class Meta:
        ordering = ["policy", "name"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "source_unit"], name="one_pool_per_source"),
            models.UniqueConstraint(
                fields=["policy"],
                condition=models.Q(source_unit__isnull=True),
                name="one_unallocated_pool_per_policy",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_method_display().lower()})"


class SharedPoolShare(models.Model):
    pool = models.ForeignKey(SharedPool, on_delete=models.CASCADE, related_name="shares")
    business_unit = models.ForeignKey(BusinessUnit, on_delete=models.CASCADE, related_name="+")
    percent = models.DecimalField(max_digits=7, decimal_places=4)

    class Meta:
        ordering = ["pool", "business_unit__code"]
        constraints = [
            models.UniqueConstraint(fields=["pool", "business_unit"], name="one_share_per_unit"),
            models.CheckConstraint(
                condition=models.Q(percent__gt=0, percent__lte=100), name="share_percent_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.business_unit.code} {self.percent} %"


def _default_bands() -> list[dict]:
    return [
        {"below": "99.9", "credit_percent": "10"},
        {"below": "99.0", "credit_percent": "25"},
        {"below": "95.0", "credit_percent": "100"},
    ]


class SlaPenaltyPolicy(models.Model):
    """Credit bands for missing an SLO: a share of the consumer's charge for the service.

    The charge is the consumer's cost of the cost rows that match ``charge_service`` (a
    service name) and ``charge_resource`` (part of a resource id); with neither set, the
    cost of the endpoint the SLO names. The consumer is ``consumer``, or else the SLO's
    endpoint's unit, or else every unit with such a charge. The provider is the SLO's.
    """

    slo = models.OneToOneField(
        ServiceLevelObjective, on_delete=models.CASCADE, related_name="penalty_policy"
    )
    bands = models.JSONField(
        default=_default_bands,
        help_text='Attainment below a level credits a percent, e.g. [{"below": "99.9", '
        '"credit_percent": "10"}]; the lowest band reached applies.',
    )
    consumer = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    charge_service = models.CharField(max_length=255, blank=True)
    charge_resource = models.CharField(max_length=500, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        verbose_name = "SLA penalty policy"
        verbose_name_plural = "SLA penalty policies"

    def __str__(self) -> str:
        return f"Penalties for {self.slo}"


class QuotaSource(models.TextChoices):
    MANUAL = "manual", "Set by hand"
    PLAN = "plan", "Approved capacity plan"


class CapacityQuota(models.Model):
    """GPU-hours a unit reserved on a pool each month, and the surcharge for going over.

    Usage above ``gpu_hours`` costs ``unit_price * (multiplier - 1)`` per GPU-hour on top of
    what the bill already charged for it, paid to the pool's owner.
    """

    business_unit = models.ForeignKey(BusinessUnit, on_delete=models.CASCADE, related_name="quotas")
    pool = models.ForeignKey(
        "registry.CapacityPool", on_delete=models.CASCADE, related_name="quotas"
    )
    first_month = models.DateField(help_text="First day of a month.")
    last_month = models.DateField(null=True, blank=True, help_text="Empty: open-ended.")
    gpu_hours = models.DecimalField(max_digits=14, decimal_places=2)
    unit_price = models.DecimalField(max_digits=18, decimal_places=6, help_text="Per GPU-hour.")
    currency = models.CharField(max_length=3)
    multiplier = models.DecimalField(max_digits=6, decimal_places=3, default=1.5)
    source = models.CharField(max_length=16, choices=QuotaSource.choices, default="manual")
    plan_line = models.ForeignKey(
        "costs.PlanLine",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="quotas",
        help_text="The approved plan line this quota came from.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pool", "business_unit__code", "-first_month"]
        constraints = [
            # One quota per unit, pool and starting month: two would leave the surcharge to
            # chance.
            models.UniqueConstraint(
                fields=["business_unit", "pool", "first_month"], name="one_quota_per_start"
            ),
            models.CheckConstraint(condition=models.Q(gpu_hours__gte=0), name="quota_hours_gte_0"),
            models.CheckConstraint(condition=models.Q(unit_price__gt=0), name="quota_price_gt_0"),
            models.CheckConstraint(condition=models.Q(multiplier__gte=1), name="quota_mult_gte_1"),
            models.CheckConstraint(
                condition=models.Q(last_month__isnull=True)
                | models.Q(last_month__gte=models.F("first_month")),
                name="quota_months_in_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.business_unit.code} on {self.pool}: {self.gpu_hours} GPU-h/month"

    def is_active_in(self, month) -> bool:
        return self.first_month <= month and (self.last_month is None or month <= self.last_month)


class PeriodStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    CLOSED = "closed", "Closed"


class ChargebackPeriod(models.Model):
    """One billing month's chargeback: its status and, once published, its totals.

    ``totals`` keeps, per currency, the numbers the statements were computed from — the
    basis total, Unallocated, adjustments carried in — so reconciliation of a closed month
    compares what was closed with what the bill says now.
    """

    month = models.DateField(unique=True, help_text="First day of the billing month.")
    status = models.CharField(max_length=16, choices=PeriodStatus.choices, default="draft")
    basis = models.CharField(max_length=16, choices=BudgetBasis.choices, blank=True)
    policy = models.ForeignKey(
        AllocationPolicy, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    totals = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-month"]

    def __str__(self) -> str:
        return f"Chargeback {self.month:%Y-%m} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("costs:statements", args=[f"{self.month:%Y-%m}"])


class Statement(models.Model):
    """A business unit's published statement for one month in one currency."""

    period = models.ForeignKey(
        ChargebackPeriod, on_delete=models.CASCADE, related_name="statements"
    )
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="statements"
    )
    # The unit as it was when the statement was published: a later rename leaves it alone.
    unit_code = models.CharField(max_length=32, blank=True)
    unit_name = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3)
    total = models.DecimalField(**STATEMENT_MONEY)
    notified_at = models.DateTimeField(null=True, blank=True)
    notified_to = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["period", "currency", "business_unit__code"]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "business_unit", "currency"], name="one_statement_per_unit"
            )
        ]

    def __str__(self) -> str:
        return f"{self.business_unit.code} {self.period.month:%Y-%m} {self.currency}"

    def get_absolute_url(self) -> str:
        return reverse(
            "costs:statement-detail", args=[f"{self.period.month:%Y-%m}", self.business_unit.code]
        )


class LineKind(models.TextChoices):
    DIRECT = "direct", "Direct cost"
    CREDIT = "credit", "Credits and refunds"
    SHARED = "shared", "Shared-cost share"
    SHARED_OUT = "shared_out", "Shared out"
    PENALTY = "penalty", "SLA penalty"
    SURCHARGE = "surcharge", "Overage surcharge"
    ADJUSTMENT = "adjustment", "Adjustment"


class StatementLine(models.Model):
    """One line of a statement, with how it was computed (``explanation`` and ``detail``)."""

    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=LineKind.choices)
    label = models.CharField(max_length=300)
    amount = models.DecimalField(**STATEMENT_MONEY)
    explanation = models.TextField()
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["statement", "position"]
        constraints = [
            models.UniqueConstraint(fields=["statement", "position"], name="one_line_per_position")
        ]

    def __str__(self) -> str:
        return f"{self.label}: {self.amount}"
