"""What runs: models, versions, benchmarks, capacity assessments and deployment gates."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from governance.choices import Role
from governance.models import BusinessUnit, Decision
from registry.choices import (
    SLO_METRICS,
    AssessmentStatus,
    LifecycleState,
    ModelSource,
    Precision,
    ProtocolStatus,
    Provider,
    RequirementCode,
    RiskTier,
    Task,
    WaiverStatus,
)

MONEY = {"max_digits": 24, "decimal_places": 10}
MEASURE = {"max_digits": 24, "decimal_places": 9, "null": True, "blank": True}


class HardwareProfile(models.Model):
    """What one replica runs on, e.g. "1 x H100 80GB" or "8 x A100 40GB".

    Prices are kept per provider in :class:`HardwarePrice`; cost figures use the price in
    force at the time they are computed.
    """

    name = models.CharField(max_length=100, unique=True)
    accelerator = models.CharField(max_length=100, help_text="e.g. NVIDIA H100 80GB; blank = CPU")
    accelerator_count = models.PositiveSmallIntegerField(
        default=1, help_text="Accelerators per replica (0 for CPU-only)."
    )
    accelerator_memory_gb = models.DecimalField(
        max_digits=8, decimal_places=2, null=True, blank=True
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class HardwarePrice(models.Model):
    """The hourly price of one replica's hardware at one provider, from a date on."""

    hardware_profile = models.ForeignKey(
        HardwareProfile, on_delete=models.CASCADE, related_name="prices"
    )
    provider = models.CharField(max_length=16, choices=Provider.choices)
    instance_type = models.CharField(max_length=100, blank=True, help_text="e.g. ml.p5.48xlarge")
    region = models.CharField(max_length=64, blank=True)
    hourly_price = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, default="USD")
    effective_from = models.DateTimeField()
    source = models.CharField(max_length=32, default="manual", help_text="manual, or the sync")

    class Meta:
        ordering = ["hardware_profile", "provider", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["hardware_profile", "provider", "region", "effective_from"],
                name="unique_hardware_price_per_start",
            ),
            models.CheckConstraint(
                condition=models.Q(hourly_price__gte=0), name="hardware_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hardware_profile} at {self.get_provider_display()}: {self.hourly_price}/h"


class CapacityPool(models.Model):
    """A shared set of accelerators that business units deploy onto (e.g. the H100 pool)."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    hardware_profile = models.ForeignKey(
        HardwareProfile, on_delete=models.PROTECT, related_name="pools"
    )
    accelerator_count = models.PositiveIntegerField(help_text="Accelerators in the pool.")
    owner = models.ForeignKey(
        BusinessUnit,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="pools",
        help_text="The team that runs the pool (it receives surcharges).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RegisteredModel(models.Model):
    """A model a business unit runs or wants to run, in-house or bought in."""

    name = models.CharField(max_length=200, unique=True)
    business_unit = models.ForeignKey(BusinessUnit, on_delete=models.PROTECT, related_name="models")
    task = models.CharField(max_length=32, choices=Task.choices)
    source = models.CharField(max_length=16, choices=ModelSource.choices)
    vendor = models.CharField(max_length=200, blank=True, help_text="For vendor and third-party")
    risk_tier = models.CharField(max_length=16, choices=RiskTier.choices, default=RiskTier.MEDIUM)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "model"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("registry:model-detail", args=[self.pk])


class ModelVersion(models.Model):
    """One build of a model, with what it needs to run; it moves through its lifecycle.

    ``state`` changes only through ``registry.services``, which records every change in
    :class:`VersionTransition`.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=64)
    artifact_uri = models.CharField(max_length=1000)
    framework = models.CharField(max_length=64, help_text="e.g. PyTorch, TensorRT-LLM, ONNX")
    parameter_count = models.PositiveBigIntegerField(null=True, blank=True)
    precision = models.CharField(max_length=8, choices=Precision.choices)
    serving_runtime = models.CharField(max_length=64, help_text="e.g. vLLM 0.8, Triton 24.05")
    hardware_profile = models.ForeignKey(
        HardwareProfile, on_delete=models.PROTECT, related_name="versions"
    )
    notes = models.TextField(blank=True)
    state = models.CharField(
        max_length=16, choices=LifecycleState.choices, default=LifecycleState.DRAFT
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="unique_version_per_model")
        ]
        indexes = [models.Index(fields=["state", "state_changed_at"])]

    def __str__(self) -> str:
        return f"{self.model.name} {self.version}"

    def get_absolute_url(self) -> str:
        return reverse("registry:version-detail", args=[self.pk])


class VersionTransition(models.Model):
    """One change of a version's state: who, when, from, to, and why."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=16, choices=LifecycleState.choices, blank=True)
    to_state = models.CharField(max_length=16, choices=LifecycleState.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    comment = models.TextField(blank=True)
    decision = models.ForeignKey(
        Decision, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["version", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.version}: {self.from_state} → {self.to_state}"


class BenchmarkProtocol(models.Model):
    """A versioned way of measuring capacity, so results from different teams compare.

    ``workload`` describes the request shape, e.g.
    ``{"input_tokens": {"distribution": "normal", "mean": 512, "stddev": 128},
    "output_tokens": {"distribution": "fixed", "value": 256}}``; ``required_metrics`` are
    benchmark metric codes every result under this protocol must report.
    """

    name = models.CharField(max_length=100)
    revision = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(
        max_length=16, choices=ProtocolStatus.choices, default=ProtocolStatus.DRAFT
    )
    description = models.TextField(blank=True)
    workload = models.JSONField(default=dict)
    concurrency_levels = models.JSONField(default=list)
    warmup_s = models.PositiveIntegerField(default=60)
    measurement_s = models.PositiveIntegerField(default=300)
    hardware_profile = models.ForeignKey(
        HardwareProfile,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="protocols",
        help_text="Blank: any hardware.",
    )
    required_metrics = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "-revision"]
        constraints = [
            models.UniqueConstraint(fields=["name", "revision"], name="unique_protocol_revision")
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.revision}"

    def get_absolute_url(self) -> str:
        return reverse("registry:protocol-detail", args=[self.pk])


class EfficiencyBenchmark(models.Model):
    """One uploaded result: a version measured on one hardware profile under one protocol.

    The raw file is kept beside what was parsed from it.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="benchmarks")
    protocol = models.ForeignKey(
        BenchmarkProtocol, on_delete=models.PROTECT, related_name="benchmarks"
    )
    hardware_profile = models.ForeignKey(
        HardwareProfile, on_delete=models.PROTECT, related_name="benchmarks"
    )
    tool = models.CharField(max_length=32)
    tool_label = models.CharField(max_length=100)
    model_name_in_file = models.CharField(max_length=300, blank=True)
    hardware_in_file = models.CharField(max_length=300, blank=True)
    measured_at = models.DateTimeField()
    file_name = models.CharField(max_length=255)
    raw_file = models.FileField(upload_to="benchmarks/%Y/%m/")
    raw_sha256 = models.CharField(max_length=64)
    run_settings = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["version", "-measured_at"]

    def __str__(self) -> str:
        return f"{self.version} on {self.hardware_profile} ({self.tool_label})"

    def get_absolute_url(self) -> str:
        return reverse("registry:benchmark-detail", args=[self.pk])


class BenchmarkPoint(models.Model):
    """One operating point of a benchmark (a concurrency level, a request rate, a config).

    The headline metrics have columns, in canonical units; ``metrics`` keeps every metric
    the file reported, as exact decimal strings.
    """

    benchmark = models.ForeignKey(
        EfficiencyBenchmark, on_delete=models.CASCADE, related_name="points"
    )
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=200)
    concurrency = models.PositiveIntegerField(null=True, blank=True)
    request_rate = models.DecimalField(**MEASURE)
    completed = models.PositiveBigIntegerField(null=True, blank=True)
    failed = models.PositiveBigIntegerField(null=True, blank=True)
    requests_per_s = models.DecimalField(**MEASURE)
    output_tokens_per_s = models.DecimalField(**MEASURE)
    total_tokens_per_s = models.DecimalField(**MEASURE)
    latency_p50_ms = models.DecimalField(**MEASURE)
    latency_p95_ms = models.DecimalField(**MEASURE)
    latency_p99_ms = models.DecimalField(**MEASURE)
    ttft_p50_ms = models.DecimalField(**MEASURE)
    ttft_p95_ms = models.DecimalField(**MEASURE)
    ttft_p99_ms = models.DecimalField(**MEASURE)
    peak_memory_gb = models.DecimalField(**MEASURE)
    cold_start_s = models.DecimalField(**MEASURE)
    utilisation_pct = models.DecimalField(**MEASURE)
    metrics = models.JSONField(default=dict)

    class Meta:
        ordering = ["benchmark", "position"]

    def __str__(self) -> str:
        return f"{self.benchmark}: {self.label}"


# The metric codes that have their own column on BenchmarkPoint.
POINT_COLUMNS = (
    "requests_per_s",
    "output_tokens_per_s",
    "total_tokens_per_s",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "peak_memory_gb",
    "cold_start_s",
    "utilisation_pct",
)


class CapacityAssessment(models.Model):
    """What a version would take from shared capacity, computed from its benchmark.

    The inputs are the owner's expectations; the results are computed by
    ``registry.capacity`` when the assessment is filed and kept as they were then, so the
    board decides on the numbers it saw.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="assessments")
    benchmark = models.ForeignKey(
        EfficiencyBenchmark, on_delete=models.PROTECT, related_name="assessments"
    )
    pool = models.ForeignKey(
        CapacityPool, on_delete=models.PROTECT, null=True, blank=True, related_name="assessments"
    )
    peak_rps = models.DecimalField(max_digits=16, decimal_places=3)
    daily_requests = models.PositiveBigIntegerField()
    slo_metric = models.CharField(max_length=32, choices=list(SLO_METRICS.items()))
    slo_threshold_ms = models.DecimalField(max_digits=16, decimal_places=3)
    headroom_pct = models.DecimalField(max_digits=6, decimal_places=2)
    # Results
    point = models.ForeignKey(BenchmarkPoint, on_delete=models.PROTECT, related_name="+")
    point_throughput_rps = models.DecimalField(max_digits=24, decimal_places=9)
    replicas = models.PositiveIntegerField()
    accelerators = models.PositiveIntegerField()
    hourly_price = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    price_source = models.CharField(max_length=200)
    monthly_cost = models.DecimalField(max_digits=24, decimal_places=2)
    pool_share_pct = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    cost_per_1k_requests = models.DecimalField(**MONEY, null=True, blank=True)
    notes = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=AssessmentStatus.choices, default=AssessmentStatus.SUBMITTED
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    submitted_at = models.DateTimeField()
    decision = models.ForeignKey(
        Decision, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["version", "-submitted_at"]
        indexes = [models.Index(fields=["status", "submitted_at"])]

    def __str__(self) -> str:
        return f"Assessment of {self.version} ({self.get_status_display()})"

    def get_absolute_url(self) -> str:
        return reverse("registry:assessment-detail", args=[self.pk])


class RegistrationRequirement(models.Model):
    """What a version must show before it deploys, for a risk tier and/or business unit.

    The most specific row applies: unit and tier, then unit, then tier, then the default
    (both blank). Without any row the built-in default in ``registry.gate`` applies.
    """

    name = models.CharField(max_length=200)
    business_unit = models.ForeignKey(
        BusinessUnit,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="registration_requirements",
    )
    risk_tier = models.CharField(max_length=16, choices=RiskTier.choices, blank=True)
    mandatory_metrics = models.JSONField(default=list)
    max_benchmark_age_days = models.PositiveIntegerField(default=90)
    assessment_required = models.BooleanField(default=True)
    block_on_prevent_items = models.BooleanField(
        default=False,
        help_text=(
            "An open prevent action item from an incident post-mortem on the version's model, "
            "or on a pool it uses, holds the version back instead of showing as a warning."
        ),
    )

    class Meta:
        ordering = ["business_unit", "risk_tier"]

    def __str__(self) -> str:
        return self.name


class CostTierApproval(models.Model):
    """Above this monthly cost, a person holding ``role`` must approve the deployment."""

    requirement = models.ForeignKey(
        RegistrationRequirement, on_delete=models.CASCADE, related_name="cost_tiers"
    )
    min_monthly_cost = models.DecimalField(max_digits=24, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    role = models.CharField(max_length=32, choices=Role.choices)

    class Meta:
        ordering = ["requirement", "min_monthly_cost", "role"]
        constraints = [
            models.UniqueConstraint(
                fields=["requirement", "min_monthly_cost", "currency", "role"],
                name="unique_cost_tier_role",
            )
        ]

    def __str__(self) -> str:
        return f"≥ {self.min_monthly_cost} {self.currency}/month: {self.get_role_display()}"


class RequirementWaiver(models.Model):
    """The board lets one version skip one requirement until ``expires_at``.

    A board member proposes it; it counts once the board's Decision grants it.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="waivers")
    requirement = models.CharField(max_length=32, choices=RequirementCode.choices)
    reason = models.TextField()
    expires_at = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=WaiverStatus.choices, default=WaiverStatus.PROPOSED
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who proposed it.",
    )
    granted_at = models.DateTimeField(help_text="Proposed, then decided.")
    decision = models.ForeignKey(
        Decision, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["version", "-granted_at"]

    def __str__(self) -> str:
        return f"Waiver of {self.get_requirement_display()} for {self.version}"


class Endpoint(models.Model):
    """A serving endpoint in a cloud (a SageMaker endpoint, a Vertex endpoint…).

    Kept current by the cloud sync (or entered by hand / the API); ``tags`` decide its
    business unit through the allocation rules. ``account_id`` is the cloud's account or
    project id, as text.
    """

    provider = models.CharField(max_length=16, choices=Provider.choices)
    account_id = models.CharField(max_length=64)
    region = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=300)
    resource_id = models.CharField(max_length=1000, help_text="ARN or full resource name.")
    status = models.CharField(max_length=64, blank=True)
    instance_type = models.CharField(max_length=100, blank=True)
    instance_count = models.PositiveIntegerField(default=0)
    config_name = models.CharField(max_length=300, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.SET_NULL, null=True, blank=True, related_name="endpoints"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="endpoints"
    )
    created_in_cloud_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    retirement_verdict = models.JSONField(
        default=dict, blank=True, help_text="The last retirement evaluation: idle or why not."
    )

    class Meta:
        ordering = ["provider", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "account_id", "region", "name"], name="unique_endpoint"
            )
        ]

    def __str__(self) -> str:
        return self.name


class EndpointUsage(models.Model):
    """One endpoint's traffic on one UTC day. A missing day is unknown, never zero."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="usage")
    day = models.DateField()
    invocations = models.PositiveBigIntegerField()
    errors = models.PositiveBigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=32, default="sync")

    class Meta:
        ordering = ["endpoint", "day"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "day"], name="one_usage_row_per_day")
        ]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.day}: {self.invocations}"


class PoolUsage(models.Model):
    """GPU-hours a business unit used on a capacity pool on one UTC day.

    Uploaded, posted to the API, or derived from the endpoints running on the pool's
    hardware; quotas and overage surcharges read it. A missing day is unknown, not zero.
    """

    pool = models.ForeignKey(CapacityPool, on_delete=models.CASCADE, related_name="usage")
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.CASCADE, related_name="pool_usage"
    )
    day = models.DateField()
    gpu_hours = models.DecimalField(max_digits=14, decimal_places=3)
    source = models.CharField(max_length=32, default="upload")

    class Meta:
        ordering = ["pool", "business_unit", "day"]
        constraints = [
            models.UniqueConstraint(
                fields=["pool", "business_unit", "day"], name="one_pool_usage_row_per_day"
            ),
            models.CheckConstraint(
                condition=models.Q(gpu_hours__gte=0), name="pool_usage_hours_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.business_unit.code} on {self.pool} {self.day}: {self.gpu_hours} GPU-h"
