"""Cloud accounts Capgov reads, and each run of a sync against them."""

from __future__ import annotations

from django.db import models
from django.urls import reverse


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
