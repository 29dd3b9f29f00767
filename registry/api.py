"""REST API for the registry: models, versions and their gate, benchmarks, assessments.

Reads go through ``registry.selectors`` (scoped); writes validate with an input serializer
and call one service. A CI pipeline asks ``GET /model-versions/{id}/gate/`` and deploys with
``POST /model-versions/{id}/deploy/``, which answers 409 with the unmet requirements.
"""

from __future__ import annotations

import django_filters
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from governance.api.exceptions import ErrorSerializer
from governance.api.parsers import StrictFormParser, StrictMultiPartParser
from governance.api.permissions import IsCostManager
from governance.api.rows import (
    CsvUploadSerializer,
    MonthFilter,
    RowsStoredSerializer,
    rows_posted,
)
from governance.choices import Role
from governance.models import BusinessUnit
from governance.selectors import visible_unit_ids
from governance.uploads import upload_check
from registry import selectors, services
from registry.benchmarks import METRICS
from registry.choices import SLO_METRICS, RequirementCode
from registry.filters import (
    AssessmentFilterSet,
    BenchmarkFilterSet,
    ModelVersionFilterSet,
    RegisteredModelFilterSet,
)
from registry.forms import BENCHMARK_RESULT
from registry.gate import WAIVABLE
from registry.lifecycle import MOVES
from registry.models import (
    BenchmarkPoint,
    BenchmarkProtocol,
    CapacityAssessment,
    CapacityPool,
    EfficiencyBenchmark,
    HardwarePrice,
    HardwareProfile,
    ModelVersion,
    PoolUsage,
    RegisteredModel,
    RequirementWaiver,
    VersionTransition,
)

# --- Output serializers -------------------------------------------------------------------------


class HardwarePriceSerializer(serializers.ModelSerializer):
    class Meta:
        model = HardwarePrice
        fields = [
            "provider",
            "instance_type",
            "region",
            "hourly_price",
            "currency",
            "effective_from",
            "source",
        ]


class HardwareProfileSerializer(serializers.ModelSerializer):
    prices = HardwarePriceSerializer(many=True, read_only=True)

    class Meta:
        model = HardwareProfile
        fields = [
            "id",
            "name",
            "accelerator",
            "accelerator_count",
            "accelerator_memory_gb",
            "prices",
        ]


class CapacityPoolSerializer(serializers.ModelSerializer):
    hardware_profile = serializers.StringRelatedField()
    owner = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)

    class Meta:
        model = CapacityPool
        fields = [
            "id",
            "code",
            "name",
            "provider",
            "hardware_profile",
            "accelerator_count",
            "owner",
        ]


class PoolUsageSerializer(serializers.ModelSerializer):
    pool = serializers.SlugRelatedField(slug_field="code", read_only=True)
    business_unit = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = PoolUsage
        fields = ["pool", "business_unit", "day", "gpu_hours", "source"]
        read_only_fields = fields


class RegisteredModelSerializer(serializers.ModelSerializer):
    business_unit = serializers.SlugRelatedField(slug_field="code", read_only=True)
    version_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = RegisteredModel
        fields = [
            "id",
            "name",
            "business_unit",
            "task",
            "source",
            "vendor",
            "risk_tier",
            "description",
            "version_count",
            "created_at",
        ]


class ModelVersionSerializer(serializers.ModelSerializer):
    model_name = serializers.CharField(source="model.name", read_only=True)
    business_unit = serializers.CharField(source="model.business_unit.code", read_only=True)
    hardware_profile = serializers.StringRelatedField()
    created_by = serializers.StringRelatedField()
    url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "model",
            "model_name",
            "business_unit",
            "version",
            "artifact_uri",
            "framework",
            "parameter_count",
            "precision",
            "serving_runtime",
            "hardware_profile",
            "notes",
            "state",
            "state_changed_at",
            "created_by",
            "created_at",
            "url",
        ]


class VersionTransitionSerializer(serializers.ModelSerializer):
    by = serializers.StringRelatedField()

    class Meta:
        model = VersionTransition
        fields = ["from_state", "to_state", "by", "at", "comment", "decision"]


class BenchmarkPointSerializer(serializers.ModelSerializer):
    class Meta:
        model = BenchmarkPoint
        fields = [
            "position",
            "label",
            "concurrency",
            "request_rate",
            "completed",
            "failed",
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
            "metrics",
        ]


class EfficiencyBenchmarkSerializer(serializers.ModelSerializer):
    protocol = serializers.StringRelatedField()
    hardware_profile = serializers.StringRelatedField()
    uploaded_by = serializers.StringRelatedField()
    points = BenchmarkPointSerializer(many=True, read_only=True)

    class Meta:
        model = EfficiencyBenchmark
        fields = [
            "id",
            "version",
            "protocol",
            "hardware_profile",
            "tool",
            "tool_label",
            "model_name_in_file",
            "hardware_in_file",
            "measured_at",
            "file_name",
            "raw_sha256",
            "run_settings",
            "warnings",
            "uploaded_by",
            "uploaded_at",
            "points",
        ]


class CapacityAssessmentSerializer(serializers.ModelSerializer):
    pool = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    submitted_by = serializers.StringRelatedField()
    point = serializers.CharField(source="point.label", read_only=True)
    decision = serializers.SerializerMethodField()

    class Meta:
        model = CapacityAssessment
        fields = [
            "id",
            "version",
            "benchmark",
            "pool",
            "peak_rps",
            "daily_requests",
            "slo_metric",
            "slo_threshold_ms",
            "headroom_pct",
            "point",
            "point_throughput_rps",
            "replicas",
            "accelerators",
            "hourly_price",
            "currency",
            "price_source",
            "monthly_cost",
            "pool_share_pct",
            "cost_per_1k_requests",
            "notes",
            "status",
            "submitted_by",
            "submitted_at",
            "decision",
        ]

    @extend_schema_field(
        inline_serializer(
            "AssessmentDecision",
            {
                "id": serializers.IntegerField(),
                "outcome": serializers.CharField(),
                "by": serializers.CharField(),
                "at": serializers.DateTimeField(),
                "rationale": serializers.CharField(),
            },
            allow_null=True,
        )
    )
    def get_decision(self, a: CapacityAssessment) -> dict | None:
        d = a.decision
        if d is None:
            return None
        return {
            "id": d.pk,
            "outcome": d.outcome,
            "by": str(d.decided_by),
            "at": d.decided_at.isoformat(),
            "rationale": d.rationale,
        }


class BenchmarkProtocolSerializer(serializers.ModelSerializer):
    hardware_profile = serializers.StringRelatedField(allow_null=True)
    approved_by = serializers.StringRelatedField(allow_null=True)

    class Meta:
        model = BenchmarkProtocol
        fields = [
            "id",
            "name",
            "revision",
            "status",
            "description",
            "workload",
            "concurrency_levels",
            "warmup_s",
            "measurement_s",
            "hardware_profile",
            "required_metrics",
            "approved_by",
            "approved_at",
        ]


class RequirementWaiverSerializer(serializers.ModelSerializer):
    granted_by = serializers.StringRelatedField()

    class Meta:
        model = RequirementWaiver
        fields = [
            "id",
            "version",
            "requirement",
            "status",
            "reason",
            "expires_at",
            "granted_by",
            "granted_at",
            "decision",
        ]


# One class (one schema component), a fresh field for each response that lists warnings.
_GateWarning = type(
    inline_serializer(
        "GateWarning", {"code": serializers.CharField(), "message": serializers.CharField()}
    )
)


def _gate_warnings() -> serializers.ListField:
    return serializers.ListField(
        child=_GateWarning(),
        help_text="Shown beside the verdict (e.g. open prevent action items from incidents); "
        "they do not hold the version back. Where the registration requirement blocks on "
        "them, they are listed in `unmet` instead.",
    )


GateSerializer = inline_serializer(
    "GateVerdict",
    {
        "deployable": serializers.BooleanField(),
        "policy": serializers.CharField(),
        "unmet": serializers.ListField(child=serializers.DictField()),
        "waivers_used": serializers.ListField(child=serializers.DictField()),
        "benchmark": serializers.IntegerField(allow_null=True),
        "assessment": serializers.IntegerField(allow_null=True),
        "warnings": _gate_warnings(),
    },
)
GateClosedSerializer = inline_serializer(
    "GateClosed",
    {
        "detail": serializers.CharField(),
        "deployable": serializers.BooleanField(),
        "unmet": serializers.ListField(child=serializers.DictField()),
        "waivers_used": serializers.ListField(child=serializers.DictField()),
        "warnings": _gate_warnings(),
    },
)
DetailSerializer = inline_serializer("Detail", {"detail": serializers.CharField()})
# A file the protocol refuses says what it lacks; a malformed request names its fields.
RejectedBenchmarkSerializer = inline_serializer(
    "BenchmarkRejected",
    {
        "detail": serializers.CharField(required=False),
        "missing": serializers.ListField(child=serializers.CharField(), required=False),
    },
)

# --- Input serializers --------------------------------------------------------------------------


class ModelInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    business_unit = serializers.SlugRelatedField(
        slug_field="code", queryset=BusinessUnit.objects.all()
    )
    task = serializers.ChoiceField(choices=RegisteredModel._meta.get_field("task").choices)
    source = serializers.ChoiceField(choices=RegisteredModel._meta.get_field("source").choices)
    risk_tier = serializers.ChoiceField(
        choices=RegisteredModel._meta.get_field("risk_tier").choices, default="medium"
    )
    vendor = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    description = serializers.CharField(required=False, default="", allow_blank=True)


class PoolUsageInputSerializer(serializers.Serializer):
    """One day of GPU-hours as posted; ``registry.pool_usage_csv`` checks it (as for a CSV)."""

    pool = serializers.SlugField(help_text="The capacity pool's code.")
    business_unit = serializers.SlugField(help_text="The business unit's code.")
    day = serializers.DateField(help_text="The UTC day, YYYY-MM-DD.")
    gpu_hours = serializers.DecimalField(
        max_digits=14, decimal_places=3, min_value=0, help_text="GPU-hours used that day."
    )


class VersionInputSerializer(serializers.Serializer):
    model = serializers.PrimaryKeyRelatedField(queryset=RegisteredModel.objects.all())
    version = serializers.CharField(max_length=64)
    artifact_uri = serializers.CharField(max_length=1000)
    framework = serializers.CharField(max_length=64)
    parameter_count = serializers.IntegerField(
        min_value=0, max_value=2**63 - 1, required=False, allow_null=True
    )
    precision = serializers.ChoiceField(choices=ModelVersion._meta.get_field("precision").choices)
    serving_runtime = serializers.CharField(max_length=64)
    hardware_profile = serializers.PrimaryKeyRelatedField(queryset=HardwareProfile.objects.all())
    notes = serializers.CharField(required=False, default="", allow_blank=True)


class VersionUpdateSerializer(VersionInputSerializer):
    # The model and the version number name the version: they do not change.
    model = None
    version = None

    def __init__(self, *args, **kwargs):
        kwargs["partial"] = True
        super().__init__(*args, **kwargs)


class CommentInputSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, default="", allow_blank=True)
    alternatives = serializers.CharField(required=False, default="", allow_blank=True)


class BenchmarkInputSerializer(serializers.Serializer):
    file = serializers.FileField()
    protocol = serializers.PrimaryKeyRelatedField(queryset=BenchmarkProtocol.objects.all())
    hardware_profile = serializers.PrimaryKeyRelatedField(
        queryset=HardwareProfile.objects.all(), required=False
    )
    measured_at = serializers.DateTimeField(required=False)
    cold_start_s = serializers.DecimalField(max_digits=12, decimal_places=3, required=False)
    peak_memory_gb = serializers.DecimalField(max_digits=12, decimal_places=3, required=False)


class AssessmentInputSerializer(serializers.Serializer):
    version = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.all())
    benchmark = serializers.PrimaryKeyRelatedField(queryset=EfficiencyBenchmark.objects.all())
    pool = serializers.SlugRelatedField(
        slug_field="code", queryset=CapacityPool.objects.all(), required=False, allow_null=True
    )
    peak_rps = serializers.DecimalField(
        max_digits=16, decimal_places=3, min_value=0, max_value=services.MAX_PEAK_RPS
    )
    daily_requests = serializers.IntegerField(min_value=0, max_value=10**15)
    slo_metric = serializers.ChoiceField(
        choices=list(SLO_METRICS.items()), default="latency_p95_ms"
    )
    slo_threshold_ms = serializers.DecimalField(max_digits=16, decimal_places=3, min_value=0)
    headroom_pct = serializers.DecimalField(
        max_digits=6, decimal_places=2, min_value=0, max_value=1000
    )
    notes = serializers.CharField(required=False, default="", allow_blank=True)


class DecisionInputSerializer(serializers.Serializer):
    rationale = serializers.CharField()
    alternatives = serializers.CharField(required=False, default="", allow_blank=True)


class WaiverInputSerializer(serializers.Serializer):
    version = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.all())
    requirement = serializers.ChoiceField(
        choices=[(c, RequirementCode(c).label) for c in sorted(WAIVABLE)]
    )
    reason = serializers.CharField()
    expires_at = serializers.DateTimeField()


class WaiverVoteInputSerializer(serializers.Serializer):
    approve = serializers.BooleanField()
    rationale = serializers.CharField(max_length=5000)


class DeploymentApprovalInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)
    rationale = serializers.CharField()


class ProtocolInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, default="", allow_blank=True)
    workload = serializers.JSONField()
    concurrency_levels = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=100_000), max_length=100
    )
    warmup_s = serializers.IntegerField(min_value=0, max_value=86_400, default=60)
    measurement_s = serializers.IntegerField(min_value=1, max_value=7 * 86_400, default=300)
    hardware_profile = serializers.PrimaryKeyRelatedField(
        queryset=HardwareProfile.objects.all(), required=False, allow_null=True
    )
    required_metrics = serializers.ListField(
        child=serializers.ChoiceField(choices=list(METRICS)), allow_empty=True
    )


def _valid(serializer_class, request: Request, **kwargs) -> dict:
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- Viewsets -----------------------------------------------------------------------------------


class RegisteredModelViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Models the caller may see; ML engineers register models for their own units."""

    serializer_class = RegisteredModelSerializer
    filterset_class = RegisteredModelFilterSet

    def get_queryset(self):
        return selectors.model_list(user=self.request.user)

    @extend_schema(request=ModelInputSerializer, responses={201: RegisteredModelSerializer})
    def create(self, request: Request) -> Response:
        model = services.model_register(by=request.user, **_valid(ModelInputSerializer, request))
        model.version_count = 0
        return Response(RegisteredModelSerializer(model).data, status=status.HTTP_201_CREATED)


def _move(name: str):
    """A POST action for one lifecycle move, named after it (``/submit/``, ``/approve/``…)."""
    move = MOVES[name]

    def view(self, request: Request, pk: str | None = None) -> Response:
        version = self.get_object()
        data = _valid(CommentInputSerializer, request)
        version = services.version_transition(
            version=version,
            action=name,
            by=request.user,
            comment=data["comment"],
            alternatives=data["alternatives"],
        )
        return Response(ModelVersionSerializer(version).data)

    # DRF maps the HTTP method to the function's name, so it must be set before decorating.
    view.__name__ = view.__qualname__ = name
    documented = extend_schema(
        summary=f"{move.label} (to {move.target})",
        request=CommentInputSerializer,
        responses={200: ModelVersionSerializer, 403: DetailSerializer, 409: DetailSerializer},
    )(view)
    return action(detail=True, methods=["post"], url_path=name.replace("_", "-"), url_name=name)(
        documented
    )


class ModelVersionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Versions, their lifecycle moves, their gate, history and benchmark uploads."""

    serializer_class = ModelVersionSerializer
    filterset_class = ModelVersionFilterSet

    def get_queryset(self):
        return selectors.version_list(user=self.request.user)

    def _visible_model(self, model: RegisteredModel) -> RegisteredModel:
        return get_object_or_404(selectors.model_list(user=self.request.user), pk=model.pk)

    @extend_schema(request=VersionInputSerializer, responses={201: ModelVersionSerializer})
    def create(self, request: Request) -> Response:
        data = _valid(VersionInputSerializer, request)
        data["model"] = self._visible_model(data["model"])
        version = services.version_create(by=request.user, **data)
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=VersionUpdateSerializer, responses={200: ModelVersionSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        version = self.get_object()
        data = _valid(VersionUpdateSerializer, request)
        version = services.version_update(version=version, by=request.user, **data)
        return Response(ModelVersionSerializer(version).data)

    submit = _move("submit")
    withdraw = _move("withdraw")
    start_review = _move("start_review")
    approve = _move("approve")
    reject = _move("reject")
    revise = _move("revise")
    deprecate = _move("deprecate")
    retire = _move("retire")

    @extend_schema(
        summary="Deploy, if the gate is open",
        request=CommentInputSerializer,
        responses={
            200: ModelVersionSerializer,
            403: DetailSerializer,
            409: OpenApiResponse(
                GateClosedSerializer, description="The gate is closed: `unmet` lists why."
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def deploy(self, request: Request, pk: str | None = None) -> Response:
        version = self.get_object()
        data = _valid(CommentInputSerializer, request)
        version = services.version_transition(
            version=version, action="deploy", by=request.user, comment=data["comment"]
        )
        return Response(ModelVersionSerializer(version).data)

    @extend_schema(
        summary="What still stands between this version and production",
        responses={200: GateSerializer},
    )
    @action(detail=True, methods=["get"])
    def gate(self, request: Request, pk: str | None = None) -> Response:
        return Response(services.deployment_gate(self.get_object()).as_dict())

    @extend_schema(responses={200: VersionTransitionSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)
    def history(self, request: Request, pk: str | None = None) -> Response:
        transitions = selectors.version_history(version=self.get_object())
        return Response(VersionTransitionSerializer(transitions, many=True).data)

    @extend_schema(
        summary="Upload a benchmark result file (vLLM, Triton, GenAI-Perf/AIPerf or Capgov JSON)",
        request={"multipart/form-data": BenchmarkInputSerializer},
        # 413: over the size limit; 400 also for a file that is not JSON or CSV text.
        responses={
            201: EfficiencyBenchmarkSerializer,
            400: RejectedBenchmarkSerializer,
            413: ErrorSerializer,
        },
    )
    @action(detail=True, methods=["post"], parser_classes=[StrictMultiPartParser, StrictFormParser])
    def benchmarks(self, request: Request, pk: str | None = None) -> Response:
        version = self.get_object()
        data = _valid(BenchmarkInputSerializer, request)
        upload = data.pop("file")
        upload_check(upload=upload, kind=BENCHMARK_RESULT, max_bytes=services.MAX_BENCHMARK_BYTES)
        benchmark = services.benchmark_upload(
            version=version,
            protocol=data.pop("protocol"),
            hardware_profile=data.pop("hardware_profile", version.hardware_profile),
            data=upload.read(),
            file_name=upload.name,
            by=request.user,
            **data,
        )
        benchmark = selectors.benchmark_list(user=request.user).get(pk=benchmark.pk)
        return Response(EfficiencyBenchmarkSerializer(benchmark).data, status=201)

    @extend_schema(
        summary="Approve the deployment for a cost tier (as approver or platform admin)",
        request=DeploymentApprovalInputSerializer,
        responses={201: DetailSerializer},
    )
    @action(detail=True, methods=["post"], url_path="deployment-approvals")
    def deployment_approvals(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(DeploymentApprovalInputSerializer, request)
        decision = services.deployment_approve(version=self.get_object(), by=request.user, **data)
        return Response({"detail": str(decision)}, status=201)


class EfficiencyBenchmarkViewSet(viewsets.ReadOnlyModelViewSet):
    """Benchmark results with their points; upload through a version."""

    serializer_class = EfficiencyBenchmarkSerializer
    filterset_class = BenchmarkFilterSet

    def get_queryset(self):
        return selectors.benchmark_list(user=self.request.user)


class CapacityAssessmentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Capacity impact assessments: owners file them, the review board decides."""

    serializer_class = CapacityAssessmentSerializer
    filterset_class = AssessmentFilterSet

    def get_queryset(self):
        return selectors.assessment_list(user=self.request.user)

    @extend_schema(request=AssessmentInputSerializer, responses={201: CapacityAssessmentSerializer})
    def create(self, request: Request) -> Response:
        data = _valid(AssessmentInputSerializer, request)
        version = get_object_or_404(
            selectors.version_list(user=request.user), pk=data.pop("version").pk
        )
        if data["benchmark"].version_id != version.pk:
            # The same answer as for an id that does not exist: ids of others stay unknown.
            raise serializers.ValidationError(
                {"benchmark": [f'Invalid pk "{data["benchmark"].pk}" - object does not exist.']}
            )
        assessment = services.assessment_file(version=version, by=request.user, **data)
        assessment = self.get_queryset().get(pk=assessment.pk)
        return Response(CapacityAssessmentSerializer(assessment).data, status=201)

    def _decide(self, request: Request, *, approve: bool) -> Response:
        data = _valid(DecisionInputSerializer, request)
        services.assessment_decide(
            assessment=self.get_object(), by=request.user, approve=approve, **data
        )
        return Response(
            CapacityAssessmentSerializer(self.get_queryset().get(pk=self.kwargs["pk"])).data
        )

    @extend_schema(request=DecisionInputSerializer, responses={200: CapacityAssessmentSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(request, approve=True)

    @extend_schema(request=DecisionInputSerializer, responses={200: CapacityAssessmentSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(request, approve=False)


class RequirementWaiverViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Waivers the review board granted; expired ones stay listed but stop counting."""

    serializer_class = RequirementWaiverSerializer

    def get_queryset(self):
        return selectors.waiver_list(user=self.request.user)

    @extend_schema(request=WaiverInputSerializer, responses={201: RequirementWaiverSerializer})
    def create(self, request: Request) -> Response:
        data = _valid(WaiverInputSerializer, request)
        data["version"] = get_object_or_404(
            selectors.version_list(user=request.user), pk=data["version"].pk
        )
        waiver = services.waiver_grant(by=request.user, **data)
        return Response(RequirementWaiverSerializer(waiver).data, status=201)

    @extend_schema(
        summary="Vote on a proposed waiver (the board's Decision grants or refuses it)",
        request=WaiverVoteInputSerializer,
        responses={200: RequirementWaiverSerializer},
    )
    @action(detail=True, methods=["post"])
    def vote(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(WaiverVoteInputSerializer, request)
        waiver = services.waiver_vote(waiver=self.get_object(), by=request.user, **data)
        return Response(RequirementWaiverSerializer(waiver).data)


class BenchmarkProtocolViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Benchmark protocols (every team's results are measured under one of these)."""

    serializer_class = BenchmarkProtocolSerializer

    def get_queryset(self):
        return selectors.protocol_list()

    @extend_schema(request=ProtocolInputSerializer, responses={201: BenchmarkProtocolSerializer})
    def create(self, request: Request) -> Response:
        protocol = services.protocol_create(
            by=request.user, **_valid(ProtocolInputSerializer, request)
        )
        return Response(BenchmarkProtocolSerializer(protocol).data, status=201)

    @extend_schema(request=DecisionInputSerializer, responses={200: BenchmarkProtocolSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(DecisionInputSerializer, request)
        services.protocol_approve(
            protocol=self.get_object(), by=request.user, rationale=data["rationale"]
        )
        return Response(BenchmarkProtocolSerializer(self.get_queryset().get(pk=pk)).data)


class HardwareProfileViewSet(viewsets.ReadOnlyModelViewSet):
    """Hardware profiles and their hourly prices per provider."""

    serializer_class = HardwareProfileSerializer

    def get_queryset(self):
        return selectors.hardware_list()


class CapacityPoolViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = CapacityPoolSerializer

    def get_queryset(self):
        return selectors.pool_list()


class PoolUsageFilterSet(django_filters.FilterSet):
    pool = django_filters.CharFilter(field_name="pool__code", label="Pool code")
    business_unit = django_filters.CharFilter(
        field_name="business_unit__code", lookup_expr="iexact", label="Business unit code"
    )
    month = MonthFilter()

    class Meta:
        model = PoolUsage
        fields = ["pool", "business_unit", "month"]


@extend_schema_view(
    list=extend_schema(
        summary="GPU-hours per pool, business unit and day",
        description="Filter by `pool` and `business_unit` (codes) and `month` (YYYY-MM). "
        "Without a finance or platform-admin role a person sees their business units' rows.",
    ),
)
class PoolUsageViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """GPU-hours each business unit used on each capacity pool per day (quotas read them).

    Finance and platform admins post them as a JSON list of rows or a CSV file
    (``pool,business_unit,day,gpu_hours``); all rows or none, the same pool, unit and day
    replaces.
    """

    serializer_class = PoolUsageSerializer
    filterset_class = PoolUsageFilterSet

    def get_permissions(self):
        if self.action == "create":
            return [IsAuthenticated(), IsCostManager()]
        return super().get_permissions()

    def get_queryset(self):
        rows = PoolUsage.objects.select_related("pool", "business_unit").order_by(
            "pool__code", "business_unit__code", "day"
        )
        units = visible_unit_ids(self.request.user)
        return rows if units is None else rows.filter(business_unit_id__in=units)

    @extend_schema(
        summary="Store GPU-hours from a JSON list of rows or a CSV file, all or none",
        request={
            "application/json": PoolUsageInputSerializer(many=True),
            "multipart/form-data": CsvUploadSerializer,
        },
        responses={
            200: RowsStoredSerializer,
            400: ErrorSerializer,
            403: DetailSerializer,
            413: ErrorSerializer,
        },
    )
    def create(self, request: Request) -> Response:
        posted = rows_posted(request, columns="pool, business_unit, day, gpu_hours")
        if isinstance(posted, list):
            stored = services.pool_usage_record(rows=posted, source="api", by=request.user)
        else:
            stored = services.pool_usage_import(data=posted, by=request.user)
        return Response({"stored": stored})
