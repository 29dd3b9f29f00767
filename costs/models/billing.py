"""What the bill says: billing imports, daily cost rows, tag sets and allocation rules."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from governance.models import BusinessUnit

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
            # A month's rows in the API's order (usage day, id): the cost-row list pages
            # through them without sorting the month first.
            models.Index(fields=["billing_period", "usage_date", "id"], name="costrow_month_day"),
            # The same order across months: the unfiltered list's cursor pages, and the reads
            # by usage day whatever month billed it (post-mortem spend, endpoint costs).
            models.Index(fields=["usage_date", "id"], name="costrow_day"),
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
