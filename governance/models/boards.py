"""Review boards, their votes, capacity conflicts, and SLO definitions."""

from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.urls import reverse

from governance.choices import BoardFunction, ConflictStatus, QuorumRule, SloIndicator
from governance.models.decisions import Decision
from governance.models.organisation import BusinessUnit, User


class ReviewBoard(models.Model):
    """The capacity review board: who sits on it and how many must take part in a decision."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    quorum_rule = models.CharField(
        max_length=16, choices=QuorumRule.choices, default=QuorumRule.ONE_OF_EACH
    )
    quorum_n = models.PositiveSmallIntegerField(default=2, help_text="For 'at least N members': N.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BoardMembership(models.Model):
    board = models.ForeignKey(ReviewBoard, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="board_memberships")
    function = models.CharField(max_length=16, choices=BoardFunction.choices)

    class Meta:
        ordering = ["board", "function", "user"]
        constraints = [models.UniqueConstraint(fields=["board", "user"], name="one_seat_per_board")]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_function_display()}) on {self.board}"


class BoardVote(models.Model):
    """One member's vote on one item; a Decision is taken once the votes make quorum."""

    board = models.ForeignKey(ReviewBoard, on_delete=models.CASCADE, related_name="votes")
    member = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    function = models.CharField(max_length=16, choices=BoardFunction.choices)
    approve = models.BooleanField()
    rationale = models.TextField()
    alternatives = models.TextField(blank=True)
    at = models.DateTimeField()
    subject_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    subject_id = models.PositiveBigIntegerField()
    subject = GenericForeignKey("subject_type", "subject_id")
    decision = models.ForeignKey(
        Decision, on_delete=models.PROTECT, null=True, blank=True, related_name="votes"
    )

    class Meta:
        ordering = ["at", "pk"]
        constraints = [
            # One open vote per member; a decided round does not block the next one (a
            # version resubmitted after a rejection is reviewed again).
            models.UniqueConstraint(
                fields=["board", "subject_type", "subject_id", "member"],
                condition=models.Q(decision__isnull=True),
                name="one_open_board_vote_per_member",
            )
        ]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return f"{self.member}: {'approve' if self.approve else 'reject'}"


class CapacityConflict(models.Model):
    """Two or more business units want the same capacity; it ends in a Decision.

    The contested capacity (a pool, usually) is held through a generic relation.
    """

    title = models.CharField(max_length=300)
    description = models.TextField()
    business_units = models.ManyToManyField(BusinessUnit, related_name="capacity_conflicts")
    raised_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    raised_at = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=ConflictStatus.choices, default=ConflictStatus.OPEN
    )
    escalation_path = models.JSONField(default=list, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField(null=True, blank=True)
    subject_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    subject_id = models.PositiveBigIntegerField(null=True, blank=True)
    subject = GenericForeignKey("subject_type", "subject_id")
    proposal = models.TextField(
        blank=True, help_text="The resolution the board is voting on, if one is proposed."
    )
    proposed_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decision = models.ForeignKey(
        Decision, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-raised_at"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        # The conflict page lives with the review queue (the registry app), linked by name.
        return reverse("registry:conflict-detail", args=[self.pk])


class ServiceLevelObjective(models.Model):
    """An SLO on an endpoint or a service tier, importable and exportable as OpenSLO."""

    name = models.SlugField(max_length=200, unique=True)
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    service = models.CharField(max_length=200, help_text="Endpoint name or service tier.")
    indicator = models.CharField(max_length=32, choices=SloIndicator.choices)
    target = models.DecimalField(
        max_digits=12, decimal_places=4, help_text="Percent for availability, ms for latency."
    )
    window_days = models.PositiveSmallIntegerField(default=30)
    provider = models.ForeignKey(
        BusinessUnit,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="slos_provided",
        help_text="The team that runs the service (pays SLA penalties).",
    )

    class Meta:
        ordering = ["service", "name"]
        verbose_name = "SLO"

    def __str__(self) -> str:
        return self.display_name or self.name


class SloMeasurement(models.Model):
    """An SLO's measurement on one UTC day: availability in percent, or p95 latency in ms.

    ``good`` and ``total`` (e.g. successful and all requests) make a month's availability
    exact, weighting each day by its traffic; without them the day's ``value`` counts once.
    A missing day is unknown, never a perfect day.
    """

    slo = models.ForeignKey(
        ServiceLevelObjective, on_delete=models.CASCADE, related_name="measurements"
    )
    day = models.DateField()
    value = models.DecimalField(max_digits=12, decimal_places=4)
    good = models.PositiveBigIntegerField(null=True, blank=True)
    total = models.PositiveBigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=32, default="upload")

    class Meta:
        ordering = ["slo", "day"]
        constraints = [
            models.UniqueConstraint(fields=["slo", "day"], name="one_measurement_per_slo_day"),
            models.CheckConstraint(
                condition=models.Q(good__isnull=True, total__isnull=True)
                | models.Q(good__lte=models.F("total")),
                name="measurement_good_lte_total",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.slo} {self.day}: {self.value}"
