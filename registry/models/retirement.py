"""Retirement of idle endpoints: the policies (data, not code), the cases they open, the
owners' answers, the exemptions, and every action taken on the cloud."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse

from governance.models import BusinessUnit
from registry.models.core import MONEY, Endpoint, RegisteredModel


class RetirementActionKind(models.TextChoices):
    NOTIFY = "notify", "Notify the owner only"
    SCALE_MIN = "scale_min", "Scale to the minimum"
    DELETE = "delete", "Delete (keep the configuration to restore)"


class RetirementPolicy(models.Model):
    """Which endpoints a policy watches, what idle means for them, and what happens then.

    An endpoint is idle when every day of the last ``window_days`` had fewer than
    ``max_daily_invocations`` requests, and it is worth acting on when it costs at least
    ``min_monthly_cost`` a month. Nothing changes in the cloud while ``dry_run`` is on; only a
    platform admin turns it off.
    """

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    business_units = models.ManyToManyField(
        BusinessUnit, blank=True, related_name="+", help_text="Empty: every unit."
    )
    providers = models.JSONField(default=list, blank=True, help_text='e.g. ["aws"]; empty: any.')
    environments = models.JSONField(
        default=list, blank=True, help_text='Values of the endpoint\'s "env" tag; empty: any.'
    )
    tags = models.JSONField(
        default=dict, blank=True, help_text='Tags the endpoint must carry, e.g. {"team": "ads"}.'
    )
    window_days = models.PositiveSmallIntegerField(default=14)
    max_daily_invocations = models.PositiveIntegerField(
        default=1, help_text="Idle: fewer than this many requests on every day of the window."
    )
    min_monthly_cost = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="USD")
    grace_days = models.PositiveSmallIntegerField(default=7)
    reminder_days = models.PositiveSmallIntegerField(
        default=2, help_text="Remind the owner this many days before the grace period ends."
    )
    action = models.CharField(
        max_length=16, choices=RetirementActionKind.choices, default=RetirementActionKind.NOTIFY
    )
    min_instances = models.PositiveSmallIntegerField(
        default=1, help_text="For scale to the minimum: instances left per variant."
    )
    dry_run = models.BooleanField(
        default=True, help_text="Record what would be done instead of doing it."
    )
    exempt_tag_key = models.CharField(max_length=128, default="capgov:keep")
    exempt_tag_value = models.CharField(max_length=128, default="true")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "retirement policies"
        constraints = [
            models.CheckConstraint(condition=models.Q(window_days__gte=1), name="window_gte_1"),
        ]

    def __str__(self) -> str:
        return self.name


class CaseStatus(models.TextChoices):
    OPEN = "open", "Open (grace period running)"
    DRY_RUN = "dry_run", "Dry run done (nothing changed in the cloud)"
    KEPT = "kept", "Kept by the owner"
    RETIRED = "retired", "Retired"
    RESTORED = "restored", "Restored"
    CLOSED = "closed", "Closed"


class CaseKind(models.TextChoices):
    IDLE = "idle", "Idle endpoint"
    CONSOLIDATION = "consolidation", "Version sprawl: consolidate"


class RetirementCase(models.Model):
    """One endpoint found idle by one policy (or sprawl flagged by someone), and its outcome.

    ``evidence`` keeps what the evaluation saw — invocations per day over the window, the
    monthly cost, the owner, days since the last request — so the case explains itself after
    the data has moved on.
    """

    kind = models.CharField(max_length=16, choices=CaseKind.choices, default=CaseKind.IDLE)
    endpoint = models.ForeignKey(
        Endpoint, on_delete=models.CASCADE, related_name="retirement_cases", null=True, blank=True
    )
    model = models.ForeignKey(
        RegisteredModel,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="consolidation_cases",
        help_text="For a consolidation case: the model whose versions sprawl.",
    )
    policy = models.ForeignKey(
        RetirementPolicy, on_delete=models.PROTECT, null=True, blank=True, related_name="cases"
    )
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    opened_at = models.DateTimeField()
    grace_ends_at = models.DateTimeField(null=True, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    monthly_cost = models.DecimalField(**MONEY, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    notified_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    decision = models.CharField(
        max_length=16,
        blank=True,
        choices=[("keep", "Keep"), ("retire", "Retire now"), ("wait", "Let the grace period run")],
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    last_error = models.TextField(blank=True)
    monthly_saving = models.DecimalField(**MONEY, null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    summary = models.CharField(max_length=300, blank=True, help_text="What the case is about.")

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            # One active idle case per endpoint at a time.
            models.UniqueConstraint(
                fields=["endpoint"],
                condition=models.Q(status__in=["open", "dry_run"], kind="idle"),
                name="one_open_idle_case_per_endpoint",
            ),
            models.UniqueConstraint(
                fields=["model"],
                condition=models.Q(status="open", kind="consolidation"),
                name="one_open_consolidation_case_per_model",
            ),
        ]

    def __str__(self) -> str:
        subject = self.endpoint or self.model
        return f"Case #{self.pk} {subject} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("registry:retirement-case", args=[self.pk])

    @property
    def is_open(self) -> bool:
        return self.status == CaseStatus.OPEN

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


ACTIVE_STATUSES = (CaseStatus.OPEN, CaseStatus.DRY_RUN)


class RetirementExemption(models.Model):
    """An endpoint kept by its owner until a date, with the reason; no case opens meanwhile."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="exemptions")
    until = models.DateField()
    reason = models.TextField()
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    case = models.ForeignKey(
        RetirementCase, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-until", "-pk"]

    def __str__(self) -> str:
        return f"{self.endpoint} kept until {self.until:%Y-%m-%d}"


class RetirementStep(models.Model):
    """Something done (or, in a dry run, that would have been done) about a case: a mail, a
    decision, a cloud call with its request and response, a failure with its error."""

    case = models.ForeignKey(RetirementCase, on_delete=models.CASCADE, related_name="steps")
    at = models.DateTimeField()
    kind = models.CharField(max_length=32)  # opened, notified, reminded, kept, scale_min, ...
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    policy = models.ForeignKey(
        RetirementPolicy, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    dry_run = models.BooleanField(default=False)
    succeeded = models.BooleanField(default=True)
    text = models.TextField(blank=True)
    request = models.JSONField(default=dict, blank=True)
    response = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.case_id} {self.kind} at {self.at:%Y-%m-%d %H:%M}"


class RetirementLink(models.Model):
    """An e-mailed link for one owner and one case: keep or retire. Single use, expiring."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey(RetirementCase, on_delete=models.CASCADE, related_name="links")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=8, choices=[("keep", "Keep"), ("retire", "Retire now")])
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.action} link for case {self.case_id}"
