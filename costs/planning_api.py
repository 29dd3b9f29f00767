"""REST API for capacity planning and commitments, scoped like the pages.

Cycles: anyone signed in reads them; finance and platform admins open (POST) and approve
them; platform admins and the board start the review. Plans and lines: the board, finance
and platform admins read all, a unit's people their own; the unit's people add, change,
remove lines and file; the board decides lines. Commitments: finance, platform admins and
the board. Each write calls one service; the project's handler maps a refusal to 400, 403
or 409 with its ``detail``.
"""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from costs import commitment_services, planning
from costs.filters import (
    CapacityPlanFilterSet,
    CommitmentRecommendationFilterSet,
    PlanLineFilterSet,
    PlanningCycleFilterSet,
)
from costs.models import (
    Budget,
    CapacityPlan,
    CapacityQuota,
    CommitmentOffer,
    CommitmentRecommendation,
    PlanLine,
    PlanningCycle,
)
from governance.exceptions import PermissionDeniedError
from governance.models import ReviewBoard
from registry.models import CapacityPool

DetailSerializer = inline_serializer("PlanningDetail", {"detail": serializers.CharField()})
REFUSED = {
    400: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description='Bad input: {"detail": "…"} from the rule it breaks, or the fields\' messages.',
    ),
    403: DetailSerializer,
    409: DetailSerializer,
}
HOURS = {"max_digits": 14, "decimal_places": 2}


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2027-01"})
class MonthField(serializers.DateField):
    """A month written YYYY-MM (read: the first day of the month)."""

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m", input_formats=["%Y-%m", "%Y-%m-%d"], **kwargs)


@extend_schema_field({"type": "string", "nullable": True})
class NameField(serializers.StringRelatedField):
    """A person or board by name; null when there is none."""


# --- Output -----------------------------------------------------------------------------------


class PlanningCycleSerializer(serializers.ModelSerializer):
    label = serializers.CharField(source="__str__", read_only=True)
    first_month = MonthField(read_only=True)
    last_month = MonthField(read_only=True)
    board = NameField()
    opened_by = NameField()
    approved_by = NameField()
    plan_count = serializers.IntegerField(read_only=True)
    filed_count = serializers.IntegerField(read_only=True, help_text="Plans filed or decided.")
    url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = PlanningCycle
        fields = [
            "id",
            "label",
            "fiscal_year",
            "quarter",
            "first_month",
            "last_month",
            "status",
            "board",
            "plans_due",
            "opened_by",
            "opened_at",
            "review_started_at",
            "approved_at",
            "approved_by",
            "plan_count",
            "filed_count",
            "url",
        ]
        read_only_fields = fields


class PlanLineSerializer(serializers.ModelSerializer):
    cycle = serializers.IntegerField(source="plan.cycle_id", read_only=True)
    business_unit = serializers.CharField(source="plan.business_unit.code", read_only=True)
    pool = serializers.SlugRelatedField(slug_field="code", read_only=True)
    pool_name = serializers.CharField(source="pool.name", read_only=True)
    month = MonthField(read_only=True)
    decision = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = PlanLine
        fields = [
            "id",
            "plan",
            "cycle",
            "business_unit",
            "pool",
            "pool_name",
            "month",
            "gpu_hours",
            "forecast_gpu_hours",
            "justification",
            "status",
            "approved_gpu_hours",
            "unit_price",
            "currency",
            "decision",
        ]
        read_only_fields = fields


class CapacityPlanSerializer(serializers.ModelSerializer):
    cycle_label = serializers.CharField(source="cycle.__str__", read_only=True)
    business_unit = serializers.SlugRelatedField(slug_field="code", read_only=True)
    filed_by = NameField()
    lines = PlanLineSerializer(many=True, read_only=True)
    url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = CapacityPlan
        fields = [
            "id",
            "cycle",
            "cycle_label",
            "business_unit",
            "status",
            "justification",
            "filed_by",
            "filed_at",
            "lines",
            "url",
        ]
        read_only_fields = fields


class PlanQuotaSerializer(serializers.ModelSerializer):
    business_unit = serializers.SlugRelatedField(slug_field="code", read_only=True)
    pool = serializers.SlugRelatedField(slug_field="code", read_only=True)
    month = MonthField(source="first_month", read_only=True)

    class Meta:
        model = CapacityQuota
        fields = [
            "id",
            "business_unit",
            "pool",
            "month",
            "gpu_hours",
            "unit_price",
            "currency",
            "multiplier",
            "plan_line",
        ]
        read_only_fields = fields


class PlanBudgetSerializer(serializers.ModelSerializer):
    business_unit = serializers.SlugRelatedField(slug_field="code", read_only=True)
    month = MonthField(source="first_month", read_only=True)

    class Meta:
        model = Budget
        fields = ["id", "name", "business_unit", "month", "amount", "currency", "freeze_at_percent"]
        read_only_fields = fields


class ReviewStartSerializer(serializers.Serializer):
    cycle = PlanningCycleSerializer()
    unfiled = serializers.ListField(
        child=serializers.CharField(), help_text="Units whose plan is still a draft."
    )
    conflicts = serializers.ListField(
        child=serializers.IntegerField(), help_text="Capacity conflicts opened now (ids)."
    )


class CycleApprovalSerializer(serializers.Serializer):
    cycle = PlanningCycleSerializer()
    quotas = PlanQuotaSerializer(many=True)
    budgets = PlanBudgetSerializer(many=True)
    made_room = serializers.ListField(
        child=serializers.CharField(),
        help_text="Manual quotas and budgets changed to give the plan's months to the plan.",
    )
    not_filed = serializers.ListField(child=serializers.CharField())


class RiskRowSerializer(serializers.Serializer):
    fall_percent = serializers.IntegerField()
    used_gpus = serializers.DecimalField(max_digits=14, decimal_places=2)
    wasted_cost = serializers.DecimalField(max_digits=24, decimal_places=2)
    net_saving = serializers.DecimalField(max_digits=24, decimal_places=2)
    basis = serializers.CharField()


class CommitmentOfferSerializer(serializers.ModelSerializer):
    pool = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = CommitmentOffer
        fields = ["id", "pool", "kind", "term_years", "discount_percent", "upfront"]
        read_only_fields = fields


class CommitmentRecommendationSerializer(serializers.ModelSerializer):
    pool = serializers.SlugRelatedField(slug_field="code", read_only=True)
    risk = RiskRowSerializer(many=True, read_only=True)
    annual_cost = serializers.DecimalField(max_digits=24, decimal_places=2, read_only=True)
    annual_on_demand_cost = serializers.DecimalField(
        max_digits=24, decimal_places=2, read_only=True
    )
    annual_saving = serializers.DecimalField(max_digits=24, decimal_places=2, read_only=True)
    approval_request = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = CommitmentRecommendation
        fields = [
            "id",
            "pool",
            "offer",
            "kind",
            "term_years",
            "low_quantile_gpus",
            "commit_gpus",
            "hours_per_year",
            "on_demand_rate",
            "committed_rate",
            "discount_percent",
            "currency",
            "annual_cost",
            "annual_on_demand_cost",
            "annual_saving",
            "break_even_percent",
            "risk",
            "status",
            "approval_request",
            "generated_at",
            "url",
        ]
        read_only_fields = fields


class RecommendationRunSerializer(serializers.Serializer):
    made = CommitmentRecommendationSerializer(many=True)
    superseded = serializers.IntegerField()
    skipped = serializers.ListField(child=serializers.CharField())


# --- Input ------------------------------------------------------------------------------------


class CycleOpenInputSerializer(serializers.Serializer):
    fiscal_year = serializers.IntegerField(min_value=1901, max_value=9998)
    quarter = serializers.IntegerField(min_value=1, max_value=4)
    plans_due = serializers.DateField(required=False, allow_null=True)
    board = serializers.PrimaryKeyRelatedField(
        queryset=ReviewBoard.objects.filter(is_active=True), required=False, allow_null=True
    )


class PlanLineInputSerializer(serializers.Serializer):
    pool = serializers.SlugRelatedField(slug_field="code", queryset=CapacityPool.objects.all())
    month = MonthField()
    gpu_hours = serializers.DecimalField(**HOURS, min_value=0)
    justification = serializers.CharField(max_length=planning.JUSTIFICATION_MAX)


class PlanLineUpdateSerializer(serializers.Serializer):
    gpu_hours = serializers.DecimalField(**HOURS, min_value=0, required=False)
    justification = serializers.CharField(
        max_length=planning.JUSTIFICATION_MAX, required=False, allow_blank=True
    )


class PlanUpdateSerializer(serializers.Serializer):
    justification = serializers.CharField(max_length=planning.JUSTIFICATION_MAX, allow_blank=True)


class CycleCancelInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=planning.RATIONALE_MAX)


class LineDecideInputSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=planning.LineDecision.CHOICES)
    approved_gpu_hours = serializers.DecimalField(
        **HOURS, min_value=0, required=False, allow_null=True, help_text="When trimming."
    )
    rationale = serializers.CharField(max_length=planning.RATIONALE_MAX)
    alternatives = serializers.CharField(
        max_length=planning.RATIONALE_MAX, required=False, allow_blank=True
    )


def _valid(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class _Reread:
    """Answer a write with the row read again through the viewset's scoped queryset, so it
    carries the annotations and joins the reads have."""

    def _answer(self, pk, **kwargs) -> Response:
        return Response(self.serializer_class(self.get_queryset().get(pk=pk)).data, **kwargs)


# --- Cycles -----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Planning cycles, newest quarter first"),
    retrieve=extend_schema(summary="One planning cycle"),
    create=extend_schema(
        summary="Open a quarter's cycle (finance, platform admins): pre-filled draft plans "
        "for every unit, its owner e-mailed",
        request=CycleOpenInputSerializer,
        responses={201: PlanningCycleSerializer, **REFUSED},
    ),
)
class PlanningCycleViewSet(
    _Reread,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Quarterly planning cycles: open → review → approved."""

    serializer_class = PlanningCycleSerializer
    filterset_class = PlanningCycleFilterSet

    def get_queryset(self):
        return planning.cycle_list()

    def create(self, request: Request, *args, **kwargs) -> Response:
        if not planning.planning_may_run(request.user):
            raise PermissionDeniedError(
                "Planning cycles are opened by finance and platform admins."
            )
        data = _valid(CycleOpenInputSerializer, request)
        cycle = planning.cycle_open(
            fiscal_year=data["fiscal_year"],
            quarter=data["quarter"],
            plans_due=data.get("plans_due"),
            board=data.get("board"),
            by=request.user,
        )
        return self._answer(cycle.pk, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Start the review (platform admins, the board); lists unfiled plans",
        request=None,
        responses={200: ReviewStartSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"], url_path="start-review")
    def start_review(self, request: Request, pk: str | None = None) -> Response:
        started = planning.cycle_start_review(cycle=self.get_object(), by=request.user)
        return Response(
            ReviewStartSerializer(
                {
                    "cycle": self.get_queryset().get(pk=pk),
                    "unfiled": [p.business_unit.code for p in started.unfiled],
                    "conflicts": [c.conflict_id for c in started.conflicts],
                }
            ).data
        )

    @extend_schema(
        summary="Cancel a cycle opened by mistake, before approval (finance, platform admins); "
        "the quarter may then be opened again",
        request=CycleCancelInputSerializer,
        responses={200: PlanningCycleSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        cycle = self.get_object()
        if not planning.planning_may_run(request.user):  # before the body: a 403, not a 400
            raise PermissionDeniedError(
                "Planning cycles are cancelled by finance and platform admins."
            )
        data = _valid(CycleCancelInputSerializer, request)
        planning.cycle_cancel(cycle=cycle, by=request.user, reason=data["reason"])
        return self._answer(cycle.pk)

    @extend_schema(
        summary="Approve the reviewed plan (finance, platform admins): quotas and budgets",
        request=None,
        responses={200: CycleApprovalSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        result = planning.cycle_approve(cycle=self.get_object(), by=request.user)
        return Response(
            CycleApprovalSerializer(
                {
                    "cycle": self.get_queryset().get(pk=pk),
                    "quotas": result.quotas,
                    "budgets": result.budgets,
                    "made_room": result.changed,
                    "not_filed": result.not_filed,
                }
            ).data
        )


# --- Plans and lines --------------------------------------------------------------------------


def _plans(user):
    return planning.plan_list(user=user).prefetch_related(
        Prefetch(
            "lines",
            queryset=PlanLine.objects.select_related("pool", "plan__business_unit").order_by(
                "pool__code", "month"
            ),
        )
    )


@extend_schema_view(
    list=extend_schema(
        summary="Capacity plans the caller may see",
        description="The board, finance and platform admins see every unit's; anyone else "
        "their own units'. Filter by `cycle` (id), `business_unit` (code), `status`.",
    ),
    retrieve=extend_schema(summary="One plan with its lines"),
    partial_update=extend_schema(
        summary="Change a draft plan's justification (the unit's people)",
        request=PlanUpdateSerializer,
        responses={200: CapacityPlanSerializer, **REFUSED},
    ),
)
class CapacityPlanViewSet(
    _Reread, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """A business unit's capacity plan for one cycle."""

    serializer_class = CapacityPlanSerializer
    filterset_class = CapacityPlanFilterSet

    def get_queryset(self):
        return _plans(self.request.user).order_by(
            "-cycle__first_month", "-cycle_id", "business_unit__code"
        )

    def _editable(self) -> CapacityPlan:
        plan = self.get_object()
        planning.plan_edit_check(self.request.user, plan)
        return plan

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        plan = self._editable()
        data = _valid(PlanUpdateSerializer, request)
        planning.plan_update(plan=plan, by=request.user, justification=data["justification"])
        return self._answer(plan.pk)

    @extend_schema(
        methods=["GET"],
        summary="The plan's lines",
        request=None,
        responses={200: PlanLineSerializer(many=True)},
    )
    @extend_schema(
        methods=["POST"],
        summary="Add a line to a draft plan (the unit's people)",
        request=PlanLineInputSerializer,
        responses={201: PlanLineSerializer, **REFUSED},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def lines(self, request: Request, pk: str | None = None) -> Response:
        plan = self.get_object()
        if request.method == "GET":
            return Response(PlanLineSerializer(plan.lines.all(), many=True).data)
        planning.plan_edit_check(request.user, plan)
        data = _valid(PlanLineInputSerializer, request)
        line = planning.plan_line_add(
            plan=plan,
            by=request.user,
            pool=data["pool"],
            month=data["month"],
            gpu_hours=data["gpu_hours"],
            justification=data["justification"],
        )
        line = planning.plan_line_list(user=request.user).get(pk=line.pk)
        return Response(PlanLineSerializer(line).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="File the plan for the board (the unit's people); opens capacity conflicts",
        request=None,
        responses={200: CapacityPlanSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"], url_path="file")
    def file_plan(self, request: Request, pk: str | None = None) -> Response:
        planning.plan_file(plan=self.get_object(), by=request.user)
        return self._answer(pk)

    @extend_schema(
        summary="Take a filed plan back to draft while the cycle is open",
        request=None,
        responses={200: CapacityPlanSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def reopen(self, request: Request, pk: str | None = None) -> Response:
        planning.plan_reopen(plan=self.get_object(), by=request.user)
        return self._answer(pk)


@extend_schema_view(
    list=extend_schema(
        summary="Plan lines the caller may see",
        description="Filter by `cycle`, `plan`, `business_unit`, `pool` (code), `month` "
        "(YYYY-MM) and `status` (the board's answer).",
    ),
    retrieve=extend_schema(summary="One plan line"),
    partial_update=extend_schema(
        summary="Change a draft line's GPU-hours or justification (the unit's people)",
        request=PlanLineUpdateSerializer,
        responses={200: PlanLineSerializer, **REFUSED},
    ),
    destroy=extend_schema(
        summary="Remove a line from a draft plan (the unit's people)",
        responses={204: None, **REFUSED},
    ),
)
class PlanLineViewSet(
    _Reread,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """GPU-hours asked of one pool in one month, and what the board granted."""

    serializer_class = PlanLineSerializer
    filterset_class = PlanLineFilterSet

    def get_queryset(self):
        return planning.plan_line_list(user=self.request.user).order_by(
            "-plan__cycle__first_month", "plan__business_unit__code", "pool__code", "month", "pk"
        )

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        line = self.get_object()
        planning.plan_edit_check(request.user, line.plan)
        data = _valid(PlanLineUpdateSerializer, request)
        planning.plan_line_update(
            line=line,
            by=request.user,
            gpu_hours=data.get("gpu_hours"),
            justification=data.get("justification"),
        )
        return self._answer(line.pk)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        planning.plan_line_delete(line=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="The board's answer on a line: approve, trim (with the GPU-hours granted) or "
        "reject, with the rationale (a Decision)",
        request=LineDecideInputSerializer,
        responses={200: PlanLineSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, pk: str | None = None) -> Response:
        line = self.get_object()
        planning.line_decide_check(request.user, line.plan)
        data = _valid(LineDecideInputSerializer, request)
        planning.plan_line_decide(
            line=line,
            by=request.user,
            outcome=data["decision"],
            rationale=data["rationale"],
            approved_gpu_hours=data.get("approved_gpu_hours"),
            alternatives=data.get("alternatives", ""),
        )
        return self._answer(line.pk)


# --- Commitments ------------------------------------------------------------------------------


class CommitmentRoles(BasePermission):
    """Finance, platform admins and the review board."""

    message = "Commitments are for finance, platform admins and the review board."

    def has_permission(self, request, view) -> bool:
        return commitment_services.commitments_may_see(request.user)


@extend_schema_view(
    list=extend_schema(summary="Commitment offers per pool (edited in the admin)"),
    retrieve=extend_schema(summary="One commitment offer"),
)
class CommitmentOfferViewSet(viewsets.ReadOnlyModelViewSet):
    """What each provider offers for committing to a pool's hardware for a term."""

    serializer_class = CommitmentOfferSerializer
    permission_classes = [CommitmentRoles]
    filterset_fields = ["term_years", "kind"]

    def get_queryset(self):
        return commitment_services.offer_list()


@extend_schema_view(
    list=extend_schema(
        summary="Commitment recommendations",
        description="Filter by `pool` (code), `status`, `term_years` and `kind`.",
    ),
    retrieve=extend_schema(summary="One recommendation with its risk table"),
)
class CommitmentRecommendationViewSet(
    _Reread, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """How much of each pool to commit per offer, its cost, saving, break-even and risk."""

    serializer_class = CommitmentRecommendationSerializer
    filterset_class = CommitmentRecommendationFilterSet
    permission_classes = [CommitmentRoles]

    def get_queryset(self):
        return commitment_services.commitment_list(user=self.request.user)

    @extend_schema(
        summary="Recompute every pool's recommendations now (new ones supersede open ones)",
        request=None,
        responses={200: RecommendationRunSerializer, **REFUSED},
    )
    @action(detail=False, methods=["post"])
    def recompute(self, request: Request) -> Response:
        run = commitment_services.commitment_recommendations_compute(by=request.user)
        return Response(RecommendationRunSerializer(run).data)

    @extend_schema(
        summary="Request the purchase: a reserved-capacity approval request for the pool's "
        "owner, submitted to its policy's approvers",
        request=None,
        responses={200: CommitmentRecommendationSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"], url_path="request")
    def purchase_request(self, request: Request, pk: str | None = None) -> Response:
        commitment_services.commitment_request(recommendation=self.get_object(), by=request.user)
        return self._answer(pk)

    @extend_schema(
        summary="Dismiss an open recommendation",
        request=None,
        responses={200: CommitmentRecommendationSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str | None = None) -> Response:
        commitment_services.commitment_dismiss(recommendation=self.get_object(), by=request.user)
        return self._answer(pk)
