"""The registry's vocabularies."""

from django.db import models


class Task(models.TextChoices):
    TEXT_GENERATION = "text-generation", "Text generation"
    EMBEDDING = "embedding", "Embedding"
    CLASSIFICATION = "classification", "Classification"
    RANKING = "ranking", "Ranking / recommendation"
    VISION = "vision", "Vision"
    SPEECH = "speech", "Speech"
    OTHER = "other", "Other"


class ModelSource(models.TextChoices):
    IN_HOUSE = "in-house", "In-house"
    VENDOR = "vendor", "Vendor"
    OPEN_WEIGHTS = "open-weights", "Open-weights third party"


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class Precision(models.TextChoices):
    FP32 = "fp32", "FP32"
    BF16 = "bf16", "BF16"
    FP16 = "fp16", "FP16"
    FP8 = "fp8", "FP8"
    INT8 = "int8", "INT8"
    INT4 = "int4", "INT4"


class LifecycleState(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    UNDER_REVIEW = "under_review", "Under review"
    APPROVED = "approved", "Approved"
    DEPLOYED = "deployed", "Deployed"
    DEPRECATED = "deprecated", "Deprecated"
    RETIRED = "retired", "Retired"
    REJECTED = "rejected", "Rejected"


class Provider(models.TextChoices):
    AWS = "aws", "AWS"
    GCP = "gcp", "Google Cloud"
    AZURE = "azure", "Azure"
    ON_PREM = "on-prem", "On-premises"


class ProtocolStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    APPROVED = "approved", "Approved"
    RETIRED = "retired", "Retired"


class AssessmentStatus(models.TextChoices):
    SUBMITTED = "submitted", "Waiting for the board"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SUPERSEDED = "superseded", "Superseded"


class WaiverStatus(models.TextChoices):
    PROPOSED = "proposed", "Before the board"
    GRANTED = "granted", "Granted"
    REFUSED = "refused", "Refused"


class RequirementCode(models.TextChoices):
    """What the deployment gate checks; the waivable ones can be waived for one version."""

    STATE = "state", "Version approved by the board"
    BENCHMARK = "benchmark", "Benchmark under an approved protocol"
    BENCHMARK_AGE = "benchmark_age", "Benchmark recent enough"
    METRICS = "metrics", "Mandatory metrics reported"
    ASSESSMENT = "assessment", "Approved capacity impact assessment"
    APPROVALS = "approvals", "Approvals for the cost tier"
    FREEZE = "freeze", "No deployment freeze on the business unit"


# The latency an SLO can be set on, as benchmark metric codes.
SLO_METRICS = {
    "latency_p50_ms": "p50 latency",
    "latency_p95_ms": "p95 latency",
    "latency_p99_ms": "p99 latency",
    "ttft_p95_ms": "p95 time to first token",
    "ttft_p99_ms": "p99 time to first token",
}
