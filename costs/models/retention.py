"""How long each class of data is kept, and what each pruning run removed."""

from __future__ import annotations

from django.db import models


class DataClass(models.TextChoices):
    BILLING_DETAIL = "billing_detail", "Raw billing detail"
    BENCHMARK_ARTIFACTS = "benchmark_artifacts", "Benchmark artifacts"
    USAGE_METRICS = "usage_metrics", "Usage metrics"
    AUDIT_HISTORY = "audit_history", "Audit history"


class RetentionPolicy(models.Model):
    """Keep one class of data for ``keep_days``; older data is listed, and pruned if allowed.

    Audit history is never pruned by Capgov, whatever the policy says: the audit page only
    lists what is past it.
    """

    data_class = models.CharField(max_length=32, choices=DataClass.choices, unique=True)
    keep_days = models.PositiveIntegerField()
    prune = models.BooleanField(
        default=False, help_text="Let the daily task remove data past the policy."
    )
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["data_class"]
        verbose_name_plural = "retention policies"
        constraints = [
            models.CheckConstraint(condition=models.Q(keep_days__gte=1), name="keep_days_gte_1")
        ]

    def __str__(self) -> str:
        return f"{self.get_data_class_display()}: {self.keep_days} days"


class RetentionRun(models.Model):
    """One pruning of one data class: what it removed and what it kept in its place."""

    data_class = models.CharField(max_length=32, choices=DataClass.choices)
    cutoff = models.DateField(help_text="Data before this day was past the policy.")
    dry_run = models.BooleanField(default=False)
    rows_before = models.PositiveBigIntegerField(default=0)
    rows_removed = models.PositiveBigIntegerField(default=0)
    rows_added = models.PositiveBigIntegerField(
        default=0, help_text="Monthly aggregates written in place of the detail."
    )
    bytes_freed = models.PositiveBigIntegerField(default=0)
    months = models.JSONField(default=list, blank=True)
    skipped = models.JSONField(default=list, blank=True, help_text="What was kept, and why.")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.get_data_class_display()} before {self.cutoff}: {self.rows_removed} removed"
