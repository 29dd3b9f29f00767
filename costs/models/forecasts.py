"""Forecasts of daily cost and GPU-hours, the events that move them, and the anomalies found."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from costs.models.billing import MONEY
from governance.models import BusinessUnit


class SubjectKind(models.TextChoices):
    """What a forecast is of."""

    UNIT = "unit", "Business unit"
    POOL = "pool", "Shared pool"
    ENDPOINT = "endpoint", "Endpoint"


class Measure(models.TextChoices):
    COST = "cost", "Cost"
    GPU_HOURS = "gpu_hours", "GPU-hours"


class EventKind(models.TextChoices):
    LAUNCH = "launch", "Product launch"
    CAMPAIGN = "campaign", "Marketing campaign"
    MIGRATION = "migration", "Model migration"
    OTHER = "other", "Other"


def _subject_constraints(prefix: str) -> list[models.CheckConstraint]:
    """Exactly the field named by ``kind`` is set (unit, pool or endpoint)."""
    unit = models.Q(business_unit__isnull=False, pool__isnull=True, endpoint__isnull=True)
    pool = models.Q(business_unit__isnull=True, pool__isnull=False, endpoint__isnull=True)
    endpoint = models.Q(business_unit__isnull=True, pool__isnull=True, endpoint__isnull=False)
    return [
        models.CheckConstraint(
            condition=(models.Q(kind=SubjectKind.UNIT) & unit)
            | (models.Q(kind=SubjectKind.POOL) & pool)
            | (models.Q(kind=SubjectKind.ENDPOINT) & endpoint),
            name=f"{prefix}_one_subject",
        )
    ]


class BusinessEvent(models.Model):
    """A dated business event expected to move spend (a launch, a campaign, a migration).

    Between ``starts_on`` and ``ends_on`` (inclusive) the forecasts of the subjects it names
    are raised by ``uplift_percent`` (negative lowers them). No unit, pool or endpoint:
    the whole organisation.
    """

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=EventKind.choices, default=EventKind.OTHER)
    starts_on = models.DateField()
    ends_on = models.DateField()
    uplift_percent = models.DecimalField(max_digits=7, decimal_places=2)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    pool = models.ForeignKey(
        "registry.CapacityPool", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    endpoint = models.ForeignKey(
        "registry.Endpoint", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_on", "name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_on__gte=models.F("starts_on")), name="event_days_in_order"
            ),
            models.CheckConstraint(
                condition=models.Q(uplift_percent__gt=-100), name="event_uplift_gt_minus_100"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.starts_on} to {self.ends_on}, {self.uplift_percent:+}%)"


class Forecast(models.Model):
    """The latest forecast of one subject's daily cost (per currency) or GPU-hours.

    Refreshed in place: ``points`` hold the fitted history's interval and the next
    ``horizon_days``; ``mape`` is the error of a back-test on the last weeks of history.
    """

    kind = models.CharField(max_length=16, choices=SubjectKind.choices)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, null=True, blank=True, related_name="forecasts"
    )
    pool = models.ForeignKey(
        "registry.CapacityPool",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="forecasts",
    )
    endpoint = models.ForeignKey(
        "registry.Endpoint",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="forecasts",
    )
    measure = models.CharField(max_length=16, choices=Measure.choices)
    currency = models.CharField(max_length=3, blank=True, help_text="Empty for GPU-hours.")
    method = models.CharField(max_length=120, blank=True)
    interval_percent = models.DecimalField(max_digits=5, decimal_places=2, default=99)
    history_start = models.DateField(null=True, blank=True)
    history_end = models.DateField(null=True, blank=True)
    horizon_days = models.PositiveSmallIntegerField(default=90)
    mape = models.DecimalField(
        max_digits=9, decimal_places=2, null=True, blank=True, help_text="Back-test error, %."
    )
    warnings = models.JSONField(default=list, blank=True)
    generated_at = models.DateTimeField()

    class Meta:
        ordering = ["kind", "measure", "currency", "pk"]
        constraints = [
            *_subject_constraints("forecast"),
            *(
                models.UniqueConstraint(
                    fields=[field, "measure", "currency"],
                    condition=models.Q(kind=kind),
                    name=f"one_{kind}_forecast",
                )
                for kind, field in (
                    (SubjectKind.UNIT, "business_unit"),
                    (SubjectKind.POOL, "pool"),
                    (SubjectKind.ENDPOINT, "endpoint"),
                )
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_measure_display()} forecast of {self.subject}"

    @property
    def subject(self):
        return self.business_unit or self.pool or self.endpoint


class ForecastPoint(models.Model):
    """One day of a forecast: the expected value and its prediction interval."""

    forecast = models.ForeignKey(Forecast, on_delete=models.CASCADE, related_name="points")
    day = models.DateField()
    expected = models.DecimalField(**MONEY)
    lower = models.DecimalField(**MONEY)
    upper = models.DecimalField(**MONEY)
    low_quantile = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="The low quantile commitments are sized from."
    )
    uplift_percent = models.DecimalField(max_digits=7, decimal_places=2, default=0)

    class Meta:
        ordering = ["forecast", "day"]
        constraints = [
            models.UniqueConstraint(fields=["forecast", "day"], name="one_forecast_point_per_day")
        ]

    def __str__(self) -> str:
        return f"{self.day}: {self.expected} [{self.lower}, {self.upper}]"


class ForecastExclusion(models.Model):
    """Days left out of the history the next forecasts learn from (an incident, an outage).

    No unit, pool or endpoint: the days are left out of every forecast.
    """

    starts_on = models.DateField()
    ends_on = models.DateField()
    reason = models.CharField(max_length=300)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    pool = models.ForeignKey(
        "registry.CapacityPool", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    endpoint = models.ForeignKey(
        "registry.Endpoint", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    source = models.CharField(
        max_length=64, blank=True, help_text="What asked for it, e.g. incident INC-12."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_on", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_on__gte=models.F("starts_on")),
                name="exclusion_days_in_order",
            )
        ]

    def __str__(self) -> str:
        return f"{self.starts_on} to {self.ends_on}: {self.reason}"


class AnomalyDirection(models.TextChoices):
    ABOVE = "above", "Above the interval"
    BELOW = "below", "Below the interval"


class CostAnomaly(models.Model):
    """A day whose actual value fell outside its forecast's prediction interval."""

    forecast = models.ForeignKey(Forecast, on_delete=models.CASCADE, related_name="anomalies")
    day = models.DateField()
    actual = models.DecimalField(**MONEY)
    expected = models.DecimalField(**MONEY)
    lower = models.DecimalField(**MONEY)
    upper = models.DecimalField(**MONEY)
    size = models.DecimalField(**MONEY, help_text="Actual minus the nearer interval bound.")
    direction = models.CharField(max_length=8, choices=AnomalyDirection.choices)
    detected_at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["forecast", "day"], name="one_anomaly_per_day")
        ]
        indexes = [models.Index(fields=["day"])]

    def __str__(self) -> str:
        return f"{self.day}: {self.actual} outside [{self.lower}, {self.upper}]"
