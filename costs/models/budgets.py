"""Monthly budgets per business unit and the alerts they raise."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from costs.models.billing import MONEY
from governance.models import BusinessUnit
from governance.money import money_round


class BudgetBasis(models.TextChoices):
    """Which cost a budget counts: what the invoice says, or after discounts and commitments."""

    BILLED = "billed", "Billed cost"
    EFFECTIVE = "effective", "Effective cost"


class AlertMeasure(models.TextChoices):
    ACTUAL = "actual", "Spend to date"
    FORECAST = "forecast", "Projected month-end spend"


def _default_thresholds() -> list[int]:
    return [50, 80, 100]


class Budget(models.Model):
    """How much a business unit may spend each month, and what happens as it gets there.

    The amount recurs every month from ``first_month`` to ``last_month`` (either open). A tag
    narrows it to one project: only the unit's costs carrying ``tag_key=tag_value`` count,
    matched as allocation rules match. Reaching a threshold of spend to date, or of the
    month-end projection, e-mails the owners once per month; reaching ``freeze_at_percent``
    of spend to date puts the unit under a deployment freeze.
    """

    name = models.CharField(max_length=120)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, related_name="budgets"
    )
    tag_key = models.CharField(max_length=255, blank=True, help_text="Narrow to a project tag.")
    tag_value = models.CharField(max_length=255, blank=True)
    amount = models.DecimalField(max_digits=18, decimal_places=4, help_text="Per month.")
    currency = models.CharField(max_length=3)
    basis = models.CharField(max_length=16, choices=BudgetBasis.choices, default=BudgetBasis.BILLED)
    thresholds = models.JSONField(
        default=_default_thresholds, help_text="Percent of the amount spent to date that alert."
    )
    forecast_thresholds = models.JSONField(
        default=_default_thresholds,
        blank=True,
        help_text="Percent of the amount the month-end projection may reach before it alerts.",
    )
    freeze_at_percent = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        default=100,
        help_text="Spend to date, in percent, that freezes deployments; empty: never freeze.",
    )
    first_month = models.DateField(null=True, blank=True, help_text="First day of a month.")
    last_month = models.DateField(null=True, blank=True, help_text="First day of a month.")
    notify = models.JSONField(
        default=list, blank=True, help_text="E-mail addresses alerted besides the unit's owner."
    )
    plan = models.ForeignKey(
        "costs.CapacityPlan",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="budgets",
        help_text="The approved capacity plan this budget came from.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="budget_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(first_month__isnull=True)
                | models.Q(last_month__isnull=True)
                | models.Q(last_month__gte=models.F("first_month")),
                name="budget_months_in_order",
            ),
            models.CheckConstraint(
                condition=models.Q(tag_key="", tag_value="")
                | (~models.Q(tag_key="") & ~models.Q(tag_value="")),
                name="budget_tag_key_and_value",
            ),
        ]

    def __str__(self) -> str:
        amount = money_round(self.amount, self.currency)
        return f"{self.name} ({self.business_unit.code}, {amount:,} {self.currency}/month)"

    def get_absolute_url(self) -> str:
        return reverse("costs:budget-detail", args=[self.pk])

    @property
    def tag(self) -> str:
        return f"{self.tag_key}={self.tag_value}" if self.tag_key else ""

    def is_active_in(self, month) -> bool:
        return (self.first_month is None or self.first_month <= month) and (
            self.last_month is None or month <= self.last_month
        )


class BudgetAlert(models.Model):
    """A threshold of a budget reached in one month; there is one per (budget, month, measure,
    threshold), which is what makes the owners hear of each threshold once a month.

    It keeps the numbers as they were when the threshold was reached, whom it was mailed to,
    and the deployment freeze it started. Because the enforcement alert exists only once per
    month, a freeze that someone lifts is not imposed again that month.
    """

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    month = models.DateField(help_text="First day of the month.")
    measure = models.CharField(max_length=16, choices=AlertMeasure.choices)
    threshold = models.PositiveSmallIntegerField(help_text="Percent of the budget amount.")
    is_enforcement = models.BooleanField(
        default=False, help_text="The threshold that freezes deployments."
    )
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    currency = models.CharField(max_length=3)
    spend = models.DecimalField(**MONEY)
    projection = models.DecimalField(**MONEY, null=True, blank=True)
    data_until = models.DateField(null=True, blank=True, help_text="Last day with cost data.")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    recipients = models.JSONField(default=list, blank=True)
    freeze = models.ForeignKey(
        "governance.DeploymentFreeze",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="budget_alerts",
        help_text="The deployment freeze this alert started.",
    )

    class Meta:
        ordering = ["-month", "-created_at", "measure", "-threshold", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "month", "measure", "threshold"], name="budget_alert_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.budget.name} {self.month:%Y-%m}: {self.threshold} % {self.measure}"
