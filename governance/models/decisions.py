"""Decisions and the deployment freezes that stop a business unit deploying."""

from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models

from governance.choices import DecisionKind, DecisionOutcome, FreezeOrigin, Role
from governance.models.organisation import BusinessUnit, User


class Decision(models.Model):
    """What was decided, by whom, why, and about what: the record other apps link to.

    The subject is any row (a model version, an assessment, a waiver, later a job request),
    held through a generic relation so ``governance`` never imports the subject's app.
    ``evidence`` keeps the numbers the decider saw, as they were at that moment.
    """

    kind = models.CharField(max_length=32, choices=DecisionKind.choices)
    outcome = models.CharField(max_length=16, choices=DecisionOutcome.choices)
    title = models.CharField(max_length=300)
    rationale = models.TextField()
    alternatives = models.TextField(blank=True, help_text="Alternatives considered.")
    evidence = models.JSONField(default=dict, blank=True)
    decided_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="decisions",
        help_text="Empty when Capgov decided by a rule (a budget's freeze).",
    )
    decided_as = models.CharField(
        max_length=32, choices=Role.choices, blank=True, help_text="The role the person acted in."
    )
    decided_at = models.DateTimeField()
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, null=True, blank=True, related_name="decisions"
    )
    subject_type = models.ForeignKey(ContentType, on_delete=models.PROTECT)
    subject_id = models.PositiveBigIntegerField()
    subject = GenericForeignKey("subject_type", "subject_id")

    class Meta:
        ordering = ["-decided_at", "-pk"]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()}: {self.title}"


class DeploymentFreeze(models.Model):
    """A business unit may not deploy while a freeze on it is in force (not lifted)."""

    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, related_name="freezes"
    )
    reason = models.TextField()
    origin = models.CharField(
        max_length=16, choices=FreezeOrigin.choices, default=FreezeOrigin.PERSON
    )
    started_at = models.DateTimeField()
    created_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    lift_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Freeze on {self.business_unit.code} since {self.started_at:%Y-%m-%d}"

    @property
    def in_force(self) -> bool:
        return self.lifted_at is None
