"""Costly operations and who must approve them: policies, requests, steps, e-mail links."""

from __future__ import annotations

import uuid

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.urls import reverse

from governance.choices import RequestKind, RequestStatus, Role, StepMode, StepStatus
from governance.models.decisions import Decision
from governance.models.organisation import BusinessUnit, User

MONEY = {"max_digits": 24, "decimal_places": 2}


class ApprovalPolicy(models.Model):
    """Which approvals a request needs, chosen from its kind, cost, GPU-hours and unit.

    The active policy with the lowest ``priority`` whose conditions all hold applies; a
    blank condition matches everything. ``escalation_path`` lists who is asked next when a
    step waits too long: ``"bu_owner"`` (the business unit's owner) or ``"role:<role>"``.
    """

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    priority = models.PositiveIntegerField(default=100)
    is_active = models.BooleanField(default=True)
    kinds = models.JSONField(default=list, blank=True, help_text="Request kinds; empty = any.")
    business_units = models.ManyToManyField(BusinessUnit, blank=True, related_name="+")
    min_cost = models.DecimalField(**MONEY, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    min_gpu_hours = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    mode = models.CharField(max_length=16, choices=StepMode.choices, default=StepMode.SEQUENTIAL)
    escalation_path = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["priority", "name"]
        verbose_name_plural = "approval policies"

    def __str__(self) -> str:
        return self.name


class PolicyStep(models.Model):
    """One step of a policy: ``required_approvals`` people holding ``role`` must approve."""

    policy = models.ForeignKey(ApprovalPolicy, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField()
    role = models.CharField(max_length=32, choices=Role.choices)
    required_approvals = models.PositiveSmallIntegerField(default=1)
    wait_hours = models.PositiveIntegerField(default=24, help_text="Escalate after this long.")

    class Meta:
        ordering = ["policy", "order"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "order"], name="unique_policy_step_order")
        ]

    def __str__(self) -> str:
        return f"{self.policy} step {self.order}: {self.required_approvals} x {self.role}"


class ApprovalRequest(models.Model):
    """A request to spend on a costly operation, with its estimate, moving to a decision.

    ``revision`` goes up on every edit; links sent for an earlier revision stop working.
    """

    kind = models.CharField(max_length=32, choices=RequestKind.choices)
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="approval_requests"
    )
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    estimated_cost = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, default="USD")
    accelerator = models.CharField(max_length=100, blank=True, help_text="e.g. H100")
    accelerator_count = models.PositiveIntegerField(default=0)
    duration_hours = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    needed_by = models.DateTimeField(
        null=True, blank=True, help_text="Undecided by then, the request expires."
    )
    status = models.CharField(
        max_length=16, choices=RequestStatus.choices, default=RequestStatus.DRAFT
    )
    revision = models.PositiveIntegerField(default=1)
    policy = models.ForeignKey(
        ApprovalPolicy, on_delete=models.PROTECT, null=True, blank=True, related_name="requests"
    )
    mode = models.CharField(max_length=16, choices=StepMode.choices, default=StepMode.SEQUENTIAL)
    escalation_path = models.JSONField(default=list, blank=True)
    # What the request is about, if it is about a row of another app (a model version…).
    subject_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    subject_id = models.PositiveBigIntegerField(null=True, blank=True)
    subject = GenericForeignKey("subject_type", "subject_id")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision = models.ForeignKey(
        Decision, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "submitted_at"])]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("governance:request-detail", args=[self.pk])

    @property
    def gpu_hours(self):
        return self.accelerator_count * self.duration_hours


class ApprovalStep(models.Model):
    """One step of one request, copied from its policy when the request was submitted."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField()
    role = models.CharField(max_length=32, choices=Role.choices)
    required_approvals = models.PositiveSmallIntegerField(default=1)
    wait_hours = models.PositiveIntegerField(default=24)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.WAITING)
    activated_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["request", "order"]
        constraints = [
            models.UniqueConstraint(fields=["request", "order"], name="unique_request_step_order")
        ]
        indexes = [models.Index(fields=["status", "due_at"])]

    def __str__(self) -> str:
        return f"{self.request} step {self.order} ({self.get_role_display()})"


class ApprovalLink(models.Model):
    """What one e-mail to one approver carries: bound to the step and the request's revision.

    The URL holds a signed token naming this row and the action (approve or reject). The row
    is used once; a newer revision or a decided step supersedes it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    step = models.ForeignKey(ApprovalStep, on_delete=models.CASCADE, related_name="links")
    approver = models.ForeignKey(User, on_delete=models.CASCADE, related_name="approval_links")
    revision = models.PositiveIntegerField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    escalated = models.BooleanField(default=False, help_text="Sent by an escalation.")
    used_at = models.DateTimeField(null=True, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Link for {self.approver} on {self.step}"


class ApprovalVote(models.Model):
    """One approver's answer on one step."""

    step = models.ForeignKey(ApprovalStep, on_delete=models.CASCADE, related_name="votes")
    approver = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    approve = models.BooleanField()
    comment = models.TextField(blank=True)
    at = models.DateTimeField()
    via = models.CharField(max_length=16, default="page", help_text="email link, page or api")
    link = models.ForeignKey(
        ApprovalLink, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["step", "at"]
        constraints = [
            models.UniqueConstraint(fields=["step", "approver"], name="one_vote_per_step")
        ]

    def __str__(self) -> str:
        return f"{self.approver} {'approved' if self.approve else 'rejected'} {self.step}"


class ApprovalEvent(models.Model):
    """The request's audit history: every submission, mail, vote, edit and escalation."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    actor = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=32)
    text = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["request", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind}: {self.text}"
