"""REST API for retirement: the cases (scoped like the pages) and the owners' and admins'
answers to them, and the policies (read-only; platform admins edit them in the admin).

Each action validates its input and calls one service in ``registry.retirement_services``;
the project's exception handler maps a refused one to 400, 403 or 409.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from governance.api.exceptions import ErrorSerializer
from registry import retirement_services as services
from registry.filters import RetirementCaseFilterSet
from registry.models import CaseStatus, RetirementCase, RetirementPolicy, RetirementStep
from registry.retirement_views import REASON_MAX

DetailSerializer = inline_serializer("RetirementDetail", {"detail": serializers.CharField()})
REFUSED = {400: ErrorSerializer, 403: DetailSerializer, 409: DetailSerializer}


# --- Output -----------------------------------------------------------------------------------


class RetirementPolicySerializer(serializers.ModelSerializer):
    business_units = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)

    class Meta:
        model = RetirementPolicy
        fields = [
            "id",
            "name",
            "description",
            "is_active",
            "business_units",
            "providers",
            "environments",
            "tags",
            "window_days",
            "max_daily_invocations",
            "min_monthly_cost",
            "currency",
            "grace_days",
            "reminder_days",
            "action",
            "min_instances",
            "dry_run",
            "exempt_tag_key",
            "exempt_tag_value",
        ]
        read_only_fields = fields


class RetirementStepSerializer(serializers.ModelSerializer):
    by = serializers.StringRelatedField(allow_null=True)

    class Meta:
        model = RetirementStep
        fields = ["at", "kind", "by", "dry_run", "succeeded", "text", "request", "response"]
        read_only_fields = fields


class RetirementCaseSerializer(serializers.ModelSerializer):
    endpoint_name = serializers.CharField(
        source="endpoint.name", read_only=True, default=None, allow_null=True
    )
    model_name = serializers.CharField(
        source="model.name", read_only=True, default=None, allow_null=True
    )
    business_unit = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    policy = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    owner = serializers.StringRelatedField(allow_null=True)
    decided_by = serializers.StringRelatedField(allow_null=True)
    # Empty until the owner answers; read-only fields lose the model's blank choice otherwise.
    decision = serializers.ChoiceField(
        choices=RetirementCase._meta.get_field("decision").choices, allow_blank=True, read_only=True
    )
    url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = RetirementCase
        fields = [
            "id",
            "kind",
            "status",
            "endpoint",
            "endpoint_name",
            "model",
            "model_name",
            "business_unit",
            "policy",
            "summary",
            "opened_at",
            "grace_ends_at",
            "monthly_cost",
            "currency",
            "owner",
            "decision",
            "decided_by",
            "decided_at",
            "reason",
            "last_error",
            "monthly_saving",
            "retired_at",
            "closed_at",
            "evidence",
            "url",
        ]
        read_only_fields = fields


# --- Input ------------------------------------------------------------------------------------


class KeepInputSerializer(serializers.Serializer):
    until = serializers.DateField(help_text="Keep the endpoint (no new case) until this day.")
    reason = serializers.CharField(max_length=REASON_MAX)


class CloseInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=REASON_MAX)


def _valid(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- Viewsets ---------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="Retirement cases the caller may see",
        description="Filter by `status`, `kind`, `business_unit` (code) and `policy` (id). "
        "Without a finance or platform-admin role a person sees their business units' cases.",
    ),
    retrieve=extend_schema(summary="One case with its evidence"),
)
class RetirementCaseViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Idle-endpoint and consolidation cases; the owner keeps, retires now or waits, and a
    platform admin runs the action, restores or closes."""

    serializer_class = RetirementCaseSerializer
    filterset_class = RetirementCaseFilterSet

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no person
            return RetirementCase.objects.none()
        return services.cases_visible(self.request.user).select_related("decided_by")

    def _answer(self, pk: str | None) -> Response:
        return Response(RetirementCaseSerializer(self.get_queryset().get(pk=pk)).data)

    @extend_schema(
        summary="The case's history: mails, decisions, cloud calls with request and response",
        responses={200: RetirementStepSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def steps(self, request: Request, pk: str | None = None) -> Response:
        steps = self.get_object().steps.select_related("by")
        return Response(RetirementStepSerializer(steps, many=True).data)

    @extend_schema(
        summary="Keep the endpoint until a date (an exemption with the reason)",
        request=KeepInputSerializer,
        responses={200: RetirementCaseSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def keep(self, request: Request, pk: str | None = None) -> Response:
        case = self.get_object()
        data = _valid(KeepInputSerializer, request)
        services.case_keep(case=case, by=request.user, until=data["until"], reason=data["reason"])
        return self._answer(pk)

    @extend_schema(
        summary="Retire now: the policy's action runs at once (a dry run stays one)",
        request=None,
        responses={200: RetirementCaseSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def retire(self, request: Request, pk: str | None = None) -> Response:
        services.case_retire_now(case=self.get_object(), by=request.user)
        return self._answer(pk)

    @extend_schema(
        summary="Let the grace period run (recorded; nothing else changes)",
        request=None,
        responses={200: RetirementCaseSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def wait(self, request: Request, pk: str | None = None) -> Response:
        services.case_wait(case=self.get_object(), by=request.user)
        return self._answer(pk)

    @extend_schema(
        summary="Run the policy's action now (platform admins)",
        request=None,
        responses={200: RetirementCaseSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def act(self, request: Request, pk: str | None = None) -> Response:
        services.case_act(case=self.get_object(), by=request.user)
        return self._answer(pk)

    @extend_schema(
        summary="Recreate a retired endpoint from its kept configuration (platform admins)",
        request=None,
        # 502: the cloud refused; the case stays retired and its history says why.
        responses={200: RetirementCaseSerializer, **REFUSED, 502: DetailSerializer},
    )
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, pk: str | None = None) -> Response:
        case = services.case_restore(case=self.get_object(), by=request.user)
        if case.status != CaseStatus.RESTORED:
            return Response({"detail": f"Restoring failed: {case.last_error}"}, status=502)
        return self._answer(pk)

    @extend_schema(
        summary="Close an open case, with the reason",
        request=CloseInputSerializer,
        responses={200: RetirementCaseSerializer, **REFUSED},
    )
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str | None = None) -> Response:
        case = self.get_object()
        data = _valid(CloseInputSerializer, request)
        services.case_close(case=case, by=request.user, reason=data["reason"])
        return self._answer(pk)


class RetirementPolicyViewSet(viewsets.ReadOnlyModelViewSet):
    """Retirement policies: what idle means, the grace period, the action and its dry run."""

    serializer_class = RetirementPolicySerializer
    filterset_fields = ["is_active", "action", "dry_run"]

    def get_queryset(self):
        return RetirementPolicy.objects.prefetch_related("business_units").order_by("name")
