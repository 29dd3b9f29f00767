"""What went wrong: incidents, their timelines and evidence, post-mortems with sign-off, the
records that contributed to them, action items, and runbooks.

Anything an incident touches or was caused by — an endpoint, a model, a shared pool, a
decision, a freeze, a retirement action — is linked through a generic relation, so the apps
below never need to know about incidents.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.urls import reverse

from governance.models import BusinessUnit

MONEY = {"max_digits": 20, "decimal_places": 4}


class Severity(models.TextChoices):
    SEV1 = "sev1", "SEV1 — critical"
    SEV2 = "sev2", "SEV2 — major"
    SEV3 = "sev3", "SEV3 — minor"
    SEV4 = "sev4", "SEV4 — low"


class IncidentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    MITIGATED = "mitigated", "Mitigated"
    RESOLVED = "resolved", "Resolved"
    POSTMORTEM_DONE = "postmortem_done", "Post-mortem done"


class IncidentType(models.TextChoices):
    POOL_EXHAUSTION = "pool_exhaustion", "Capacity exhaustion of a shared pool"
    LATENCY = "latency", "Latency or throughput degradation"
    OUTAGE = "outage", "Endpoint outage or errors"
    COST_SPIKE = "cost_spike", "Cost spike"
    QUOTA = "quota", "Quota or limit reached"
    OTHER = "other", "Other"


class Runbook(models.Model):
    """What to do for one type of incident: the steps and who does them."""

    incident_type = models.CharField(max_length=32, choices=IncidentType.choices)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    steps = models.JSONField(
        default=list, help_text='[{"text": "Page the pool owner", "role": "commander"}, ...]'
    )
    roles = models.JSONField(default=list, blank=True, help_text='e.g. ["commander", "scribe"]')
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["incident_type", "title"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("incidents:runbook-detail", args=[self.pk])


class Incident(models.Model):
    title = models.CharField(max_length=200)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    status = models.CharField(
        max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.ACTIVE
    )
    incident_type = models.CharField(
        max_length=32, choices=IncidentType.choices, default=IncidentType.OTHER
    )
    description = models.TextField(blank=True)
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="incidents_commanded"
    )
    business_units = models.ManyToManyField(BusinessUnit, blank=True, related_name="incidents")
    started_at = models.DateTimeField()
    detected_at = models.DateTimeField(null=True, blank=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    cost = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Extra spend over the days before."
    )
    cost_currency = models.CharField(max_length=3, blank=True)
    cost_detail = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_severity_display().split(' ')[0]} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("incidents:incident-detail", args=[self.pk])


class IncidentRole(models.Model):
    """Someone with a role in the incident besides the commander (scribe, comms, ...)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="roles")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    role = models.CharField(max_length=64)

    class Meta:
        ordering = ["incident", "role"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "person", "role"], name="one_role_per_person"
            )
        ]

    def __str__(self) -> str:
        return f"{self.person} ({self.role})"


class AffectedSubject(models.Model):
    """An endpoint, model, shared pool (or any other record) the incident affected."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="affected")
    subject_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    subject_id = models.PositiveBigIntegerField()
    subject = GenericForeignKey("subject_type", "subject_id")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "subject_type", "subject_id"], name="affected_once"
            )
        ]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return str(self.subject)


class TimelineEvent(models.Model):
    """One moment of the incident: by hand, or taken from the app's own records."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField()
    kind = models.CharField(max_length=32, help_text="detected, page, action, mitigation, ...")
    text = models.TextField()
    source = models.CharField(
        max_length=64, default="manual", help_text="manual, or the record it came from"
    )
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind}"


class CapacityEvidence(models.Model):
    """A capacity figure at the time: queue depth, latency, error rate, utilisation."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="evidence")
    at = models.DateTimeField()
    metric = models.CharField(max_length=64, help_text="queue_depth, latency_p95_ms, ...")
    value = models.DecimalField(max_digits=20, decimal_places=6)
    unit = models.CharField(max_length=32, blank=True)
    source = models.CharField(max_length=64, default="manual")

    class Meta:
        ordering = ["metric", "at"]

    def __str__(self) -> str:
        return f"{self.metric}={self.value}{self.unit} at {self.at:%H:%M}"


class PostMortemStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    PUBLISHED = "published", "Published"


class PostMortem(models.Model):
    """The blameless record of an incident, signed off by its named approvers."""

    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="postmortem")
    status = models.CharField(
        max_length=16, choices=PostMortemStatus.choices, default=PostMortemStatus.DRAFT
    )
    authors = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="postmortems_written")
    approvers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="postmortems_to_approve"
    )
    summary = models.TextField(blank=True)
    requests_failed = models.PositiveBigIntegerField(null=True, blank=True)
    users_affected = models.PositiveBigIntegerField(null=True, blank=True)
    impact = models.TextField(blank=True, help_text="Impact in words, beyond the numbers.")
    trigger = models.TextField(blank=True)
    root_causes = models.TextField(blank=True)
    root_cause_tags = models.JSONField(
        default=list, blank=True, help_text='Short labels to find repeats, e.g. ["no-autoscaling"]'
    )
    contributing_factors = models.TextField(blank=True)
    detection = models.TextField(blank=True)
    went_well = models.TextField(blank=True)
    got_lucky = models.TextField(blank=True)
    lessons = models.TextField(blank=True)
    window_days = models.PositiveSmallIntegerField(
        default=7, help_text="How far before the incident to look for contributing records."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Post-mortem of {self.incident}"

    def get_absolute_url(self) -> str:
        return reverse("incidents:postmortem", args=[self.incident_id])


class SignOff(models.Model):
    """A named approver's sign-off of the post-mortem (for its current text)."""

    postmortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="signoffs")
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    approved = models.BooleanField()
    comment = models.TextField(blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.approver} {'approved' if self.approved else 'asked for changes'}"


class FactorStatus(models.TextChoices):
    SUGGESTED = "suggested", "Suggested"
    ACCEPTED = "accepted", "Accepted as contributing"
    DISMISSED = "dismissed", "Dismissed"


class ContributingFactor(models.Model):
    """A record from before the incident — a deployment, a decision, a waiver, a freeze, a
    retirement action, a cost anomaly — suggested by the app and accepted or dismissed."""

    postmortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="factors")
    kind = models.CharField(max_length=32, help_text="deployment, decision, waiver, freeze, ...")
    subject_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    subject_id = models.PositiveBigIntegerField(null=True, blank=True)
    subject = GenericForeignKey("subject_type", "subject_id")
    occurred_at = models.DateTimeField()
    summary = models.CharField(max_length=500)
    detail = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=FactorStatus.choices, default=FactorStatus.SUGGESTED
    )
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["occurred_at", "pk"]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]
        constraints = [
            models.UniqueConstraint(
                fields=["postmortem", "kind", "subject_type", "subject_id"],
                name="one_factor_per_record",
            )
        ]

    def __str__(self) -> str:
        return self.summary


class ActionKind(models.TextChoices):
    MITIGATE = "mitigate", "Mitigate"
    PREVENT = "prevent", "Prevent"
    PROCESS = "process", "Process"


class ActionStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class ActionItem(models.Model):
    """Something to do after the incident. A *prevent* item may name a model or shared pool
    (``subject``): while it is open, that model's versions show it on their gate."""

    postmortem = models.ForeignKey(PostMortem, on_delete=models.CASCADE, related_name="actions")
    title = models.CharField(max_length=300)
    kind = models.CharField(max_length=16, choices=ActionKind.choices)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    due = models.DateField()
    status = models.CharField(max_length=16, choices=ActionStatus.choices, default="open")
    subject_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    subject_id = models.PositiveBigIntegerField(null=True, blank=True)
    subject = GenericForeignKey("subject_type", "subject_id")
    reminded_before_at = models.DateTimeField(null=True, blank=True)
    reminded_overdue_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due", "pk"]
        indexes = [
            models.Index(fields=["status", "due"]),
            models.Index(fields=["subject_type", "subject_id"]),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("incidents:postmortem", args=[self.postmortem.incident_id])
