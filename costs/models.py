"""What it costs: billing imports, daily cost rows, tag sets and allocation rules."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from governance.models import BusinessUnit
from governance.money import money_round

MONEY = {"max_digits": 24, "decimal_places": 10}


class BillingFormat(models.TextChoices):
    FOCUS = "focus", "FOCUS 1.x"
    AWS_CUR = "aws-cur", "AWS Cost and Usage Report (CUR 1.0 / 2.0)"
    GCP_EXPORT = "gcp-export", "GCP BigQuery billing export"
    AZURE_EXPORT = "azure-export", "Azure cost export (EA / MCA)"


class ChargeCategory(models.TextChoices):
    """FOCUS ChargeCategory: the kind of money a row is."""

    USAGE = "Usage"
    PURCHASE = "Purchase"
    TAX = "Tax"
    CREDIT = "Credit"
    ADJUSTMENT = "Adjustment"


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class BillingImport(models.Model):
    """One run of one billing file through the importer, with what it found.

    The rows it stores belong to (format, billing account, billing period) slices; a later
    import of the same slice replaces them, so ``rows_current`` of an older import can drop
    to zero while its record stays as history.
    """

    requested_format = models.CharField(max_length=16, default="auto")
    detected_format = models.CharField(max_length=16, choices=BillingFormat.choices, blank=True)
    file_name = models.CharField(max_length=255)
    file_path = models.CharField(max_length=1024, help_text="Where the uploaded file is kept.")
    status = models.CharField(
        max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    stage = models.CharField(max_length=64, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100")
    rows_read = models.PositiveBigIntegerField(default=0)
    rows_stored = models.PositiveBigIntegerField(default=0)
    billing_periods = models.JSONField(default=list, blank=True)
    billing_accounts = models.JSONField(default=list, blank=True)
    billed_totals = models.JSONField(
        default=dict, blank=True, help_text="Billed cost per currency, as decimal strings."
    )
    period_totals = models.JSONField(
        default=dict, blank=True, help_text="Billed cost per billing period and currency."
    )
    warnings = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    superseded_by = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="superseded",
        help_text="The later import that replaced this one's rows for a period it covered.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Import #{self.pk} {self.file_name} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("costs:import-detail", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in {ImportStatus.SUCCEEDED, ImportStatus.FAILED}

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class TagSet(models.Model):
    """One distinct set of tags/labels as the bill wrote it, and the business unit it falls to.

    Cost rows point here instead of carrying their tags, so attribution is decided once per
    distinct tag set (thousands) rather than once per cost row (millions), and a rule change
    re-attributes history without touching the cost rows.
    """

    digest = models.CharField(max_length=32, unique=True)
    tags = models.JSONField(default=dict)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.SET_NULL, null=True, blank=True, related_name="tag_sets"
    )
    rule = models.ForeignKey(
        "costs.AllocationRule",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tag_sets",
    )

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.tags.items())) or "(untagged)"


class CostRow(models.Model):
    """Cost of one resource and SKU on one usage day, in the FOCUS-shaped internal form.

    Rows are aggregated from the source's hourly lines per (account, resource, SKU, tag set,
    charge category, day). Amounts keep the source's precision; rounding happens only on
    statements.
    """

    # No database-level foreign keys on this table: their per-row triggers doubled the time of
    # a million-row COPY. The import service creates the import record and the tag sets in
    # the same transaction as the rows, and Django still cascades deletes.
    billing_import = models.ForeignKey(
        BillingImport,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    source = models.CharField(max_length=16, choices=BillingFormat.choices)
    provider = models.CharField(max_length=64)
    billing_account_id = models.CharField(max_length=128)
    billing_account_name = models.CharField(max_length=255, blank=True)
    sub_account_id = models.CharField(max_length=128, blank=True)
    sub_account_name = models.CharField(max_length=255, blank=True)
    billing_period = models.DateField(help_text="First day of the invoice month.")
    usage_date = models.DateField()
    charge_category = models.CharField(max_length=16, choices=ChargeCategory.choices)
    service_name = models.CharField(max_length=255, blank=True)
    service_category = models.CharField(max_length=128, blank=True)
    resource_id = models.CharField(max_length=1024, blank=True)
    resource_name = models.CharField(max_length=512, blank=True)
    sku_id = models.CharField(max_length=255, blank=True)
    region = models.CharField(max_length=64, blank=True)
    pricing_unit = models.CharField(max_length=64, blank=True)
    tag_set = models.ForeignKey(
        TagSet,
        on_delete=models.PROTECT,
        related_name="cost_rows",
        db_constraint=False,
        db_index=False,
    )
    currency = models.CharField(max_length=3)
    billed_cost = models.DecimalField(**MONEY)
    effective_cost = models.DecimalField(**MONEY)
    list_cost = models.DecimalField(**MONEY)
    quantity = models.DecimalField(max_digits=30, decimal_places=10, default=0)

    class Meta:
        # Few indexes, each paying for itself: every one slows the bulk load. Month queries
        # (chargeback, explorer, re-import of a slice) all lead with the billing period.
        indexes = [
            models.Index(
                fields=["billing_period", "source", "billing_account_id"], name="costrow_slice"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.usage_date} {self.service_name} {self.billed_cost} {self.currency}"


class AllocationRule(models.Model):
    """Send costs whose tag ``tag_key`` has one of ``tag_values`` to a business unit.

    Rules are tried in ascending ``priority``; the first that matches wins. Keys match
    case-insensitively and through the AWS ``user:`` / ``resourceTags/user:`` prefixes;
    values match case-insensitively after trimming.
    """

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, related_name="allocation_rules"
    )
    tag_key = models.CharField(max_length=255)
    tag_values = models.JSONField(default=list, help_text="Values that match; empty = any value.")
    priority = models.PositiveIntegerField(default=100)
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "pk"]

    def __str__(self) -> str:
        values = ", ".join(self.tag_values) or "*"
        return f"#{self.priority} {self.tag_key} in [{values}] → {self.business_unit.code}"

    def get_absolute_url(self) -> str:
        return reverse("costs:rule-update", args=[self.pk])


# --- Budgets --------------------------------------------------------------------------------


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


class SyncKind(models.TextChoices):
    """What a cloud sync reads."""

    COSTS = "costs", "Daily costs (Cost Explorer / BigQuery export)"
    CUR = "cur", "Cost and Usage Report files (S3)"
    ENDPOINTS = "endpoints", "Endpoints and their daily usage"
    PRICES = "prices", "Hourly prices of the hardware in use"
    BILLING_ACCOUNTS = "billing_accounts", "Billing accounts and project billing"


class SyncStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


CLOUD_PROVIDERS = [("aws", "AWS"), ("gcp", "Google Cloud")]


class CloudAccount(models.Model):
    """An AWS account or GCP billing account that Capgov reads, and how to reach it.

    Only *references* to credentials are stored — a profile name, a role ARN, the path or the
    environment variable of a service-account key — never a secret itself.
    """

    name = models.CharField(max_length=200, unique=True)
    provider = models.CharField(max_length=8, choices=CLOUD_PROVIDERS)
    account_id = models.CharField(
        max_length=64,
        help_text="AWS account id, or the GCP billing account id (XXXXXX-XXXXXX-XXXXXX).",
    )
    is_active = models.BooleanField(default=True)
    # AWS
    aws_profile = models.CharField(max_length=100, blank=True, help_text="A profile in ~/.aws.")
    aws_role_arn = models.CharField(max_length=300, blank=True, help_text="A role to assume.")
    aws_region = models.CharField(max_length=32, blank=True, default="us-east-1")
    cur_bucket = models.CharField(max_length=200, blank=True)
    cur_prefix = models.CharField(max_length=500, blank=True)
    cost_source = models.CharField(
        max_length=16,
        choices=[
            ("cost_explorer", "Cost Explorer"),
            ("cur", "CUR files"),
            ("bigquery", "BigQuery"),
        ],
        default="cost_explorer",
        help_text="Where daily costs come from (one per account, so nothing counts twice).",
    )
    # GCP
    gcp_credentials = models.CharField(
        max_length=500,
        blank=True,
        help_text="Path of a service-account key file, or env:NAME of a variable holding the "
        "path; empty for application default credentials.",
    )
    gcp_project = models.CharField(max_length=100, blank=True)
    bq_table = models.CharField(
        max_length=300, blank=True, help_text="project.dataset.gcp_billing_export_v1_XXXX"
    )
    cost_allocation_tags = models.JSONField(
        default=list, blank=True, help_text="Tag / label keys that are cost allocation tags."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["provider", "name"]
        constraints = [
            # Two records of one account would read (and count) its costs twice.
            models.UniqueConstraint(
                fields=["provider", "account_id"], name="one_record_per_account"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_provider_display()} {self.account_id})"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        errors = {}
        allowed = {"aws": {"cost_explorer", "cur"}, "gcp": {"bigquery"}}[self.provider or "aws"]
        if self.cost_source not in allowed:
            errors["cost_source"] = (
                f"A {self.get_provider_display()} account reads its costs from "
                f"{' or '.join(sorted(allowed))}."
            )
        tags = self.cost_allocation_tags
        if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
            errors["cost_allocation_tags"] = 'A list of tag keys, e.g. ["team", "cost-center"].'
        if errors:
            raise ValidationError(errors)


class SyncRun(models.Model):
    """One run of one sync for one account: when, what it read, how it ended."""

    account = models.ForeignKey(CloudAccount, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=32, choices=SyncKind.choices)
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True, help_text="Exclusive.")
    status = models.CharField(max_length=16, choices=SyncStatus.choices, default=SyncStatus.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rows = models.PositiveBigIntegerField(default=0)
    detail = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    requested_by = models.ForeignKey(
        "governance.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["account", "kind", "status"])]
        constraints = [
            # Two runs of the same account and kind never overlap.
            models.UniqueConstraint(
                fields=["account", "kind"],
                condition=models.Q(status="running"),
                name="one_running_sync_per_account_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.kind} #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("costs:sync-run-detail", args=[self.pk])
