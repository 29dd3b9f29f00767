"""REST API for governance: business units, approval requests, decisions, freezes.

Reads go through ``governance.selectors`` so the API sees what the pages see; writes
validate an input serializer and call one service.
"""

from __future__ import annotations

import django_filters
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from governance import selectors, services
from governance.api.permissions import IsCostManager
from governance.api.rows import (
    CsvUploadSerializer,
    MonthFilter,
    RowsStoredSerializer,
    rows_posted,
)
from governance.api.serializers import (
    ApprovalRequestDetailSerializer,
    ApprovalRequestInputSerializer,
    ApprovalRequestSerializer,
    ApprovalRequestUpdateSerializer,
    ApprovalVoteInputSerializer,
    BusinessUnitSerializer,
    DecisionSerializer,
    DeploymentFreezeSerializer,
    FreezeLiftInputSerializer,
    OpenSloImportSerializer,
    ReasonInputSerializer,
    ServiceLevelObjectiveSerializer,
    SloMeasurementInputSerializer,
    SloMeasurementSerializer,
)
from governance.exceptions import ConflictError
from governance.filters import (
    ApprovalRequestFilterSet,
    DecisionFilterSet,
    DeploymentFreezeFilterSet,
)
from governance.models import ApprovalRequest, ServiceLevelObjective, SloMeasurement
from governance.services.slos import slos_export, slos_import
from governance.uploads import TEXT, UploadKind, upload_check

MAX_OPENSLO_BYTES = 1024 * 1024
OPENSLO_FILE = UploadKind(
    label="OpenSLO file",
    extensions={".yaml": TEXT, ".yml": TEXT},
    described="OpenSLO v1 YAML (.yaml, .yml)",
    fix="Upload the SLO definitions as UTF-8 YAML, as GET /api/v1/slos/openslo/ gives them.",
    too_large="An OpenSLO file over 1 MB is not a set of SLOs: split it.",
)


class BusinessUnitViewSet(viewsets.ReadOnlyModelViewSet):
    """Business units the caller may see (all of them for finance and admins)."""

    serializer_class = BusinessUnitSerializer
    lookup_field = "code"

    def get_queryset(self):
        return selectors.business_unit_list(user=self.request.user)


@extend_schema_view(
    list=extend_schema(
        summary="Approval requests the caller may see",
        description="Filed by the caller or their business units; every request for "
        "approvers, board members, finance and platform admins. `waiting=true` lists those "
        "waiting for the caller's vote, `mine=true` those they filed.",
    ),
    retrieve=extend_schema(
        summary="One request with its steps, votes and history",
        responses=ApprovalRequestDetailSerializer,
    ),
)
class ApprovalRequestViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Costly-operation requests: file, edit, submit, withdraw, approve and reject."""

    filterset_class = ApprovalRequestFilterSet
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        if self.action == "list":
            return selectors.approval_request_list(user=self.request.user)
        return selectors.approval_request_detail(user=self.request.user)

    def get_serializer_class(self):
        if self.action == "list":
            return ApprovalRequestSerializer
        return ApprovalRequestDetailSerializer

    def _detail(self, request_id: int, *, status_code: int = status.HTTP_200_OK) -> Response:
        approval = selectors.approval_request_detail(user=self.request.user).get(pk=request_id)
        return Response(ApprovalRequestDetailSerializer(approval).data, status=status_code)

    @extend_schema(
        summary="File a request (a draft, or submitted at once with submit=true)",
        request=ApprovalRequestInputSerializer,
        responses={201: ApprovalRequestDetailSerializer},
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = ApprovalRequestInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        submit = fields.pop("submit")
        approval = services.approval_request_create(by=request.user, **fields)
        if submit:
            services.approval_request_submit(request=approval, by=request.user)
        return self._detail(approval.pk, status_code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Edit a draft or pending request (a new revision; links sent stop working)",
        request=ApprovalRequestUpdateSerializer,
        responses=ApprovalRequestDetailSerializer,
    )
    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        approval = self.get_object()
        data = ApprovalRequestUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.approval_request_update(request=approval, by=request.user, **data.validated_data)
        return self._detail(approval.pk)

    @extend_schema(
        summary="Submit a draft: the policy that applies chooses the steps",
        request=None,
        responses=ApprovalRequestDetailSerializer,
    )
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk=None) -> Response:
        approval = self.get_object()
        services.approval_request_submit(request=approval, by=request.user)
        return self._detail(approval.pk)

    @extend_schema(
        summary="Withdraw a draft or pending request (the requester only)",
        request=ReasonInputSerializer,
        responses=ApprovalRequestDetailSerializer,
    )
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk=None) -> Response:
        approval = self.get_object()
        data = ReasonInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.approval_request_withdraw(
            request=approval, by=request.user, reason=data.validated_data["reason"]
        )
        return self._detail(approval.pk)

    def _vote(self, request: Request, *, approve: bool) -> Response:
        approval: ApprovalRequest = self.get_object()
        data = ApprovalVoteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        steps = list(approval.steps.all())
        wanted = data.validated_data.get("step")
        if wanted is not None:
            step = next((s for s in steps if s.pk == wanted), None)
            if step is None:
                raise ValidationError({"step": "That step is not part of this request."})
        else:
            votable = selectors.approval_steps_votable(request=approval, user=request.user)
            if not votable:
                raise ConflictError(
                    "No open step of this request waits for your vote; name the step to see why."
                )
            step = votable[0]
        services.approval_vote_cast(
            step=step,
            by=request.user,
            approve=approve,
            comment=data.validated_data["comment"],
            via="api",
        )
        return self._detail(approval.pk)

    @extend_schema(
        summary="Approve the open step you may vote on (or the one named)",
        request=ApprovalVoteInputSerializer,
        responses=ApprovalRequestDetailSerializer,
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk=None) -> Response:
        return self._vote(request, approve=True)

    @extend_schema(
        summary="Reject the request at the open step you may vote on (a comment is required)",
        request=ApprovalVoteInputSerializer,
        responses=ApprovalRequestDetailSerializer,
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk=None) -> Response:
        return self._vote(request, approve=False)


@extend_schema_view(
    list=extend_schema(
        summary="Decisions the caller may see",
        description="Filter by kind, outcome, business_unit (code), subject_type "
        "(`app_label.model`) and subject_id, and a date range on decided_at.",
    ),
    retrieve=extend_schema(summary="One decision with its evidence"),
)
class DecisionViewSet(viewsets.ReadOnlyModelViewSet):
    """What was decided, by whom, why and about what."""

    serializer_class = DecisionSerializer
    filterset_class = DecisionFilterSet

    def get_queryset(self):
        return selectors.decision_list(user=self.request.user).order_by("-decided_at", "-pk")


@extend_schema_view(
    list=extend_schema(summary="Deployment freezes, in force first"),
    retrieve=extend_schema(summary="One deployment freeze"),
)
class DeploymentFreezeViewSet(viewsets.ReadOnlyModelViewSet):
    """Deployment freezes of the business units the caller may see; admins lift them."""

    serializer_class = DeploymentFreezeSerializer
    filterset_class = DeploymentFreezeFilterSet

    def get_queryset(self):
        return selectors.freeze_list(user=self.request.user)

    @extend_schema(
        summary="Lift a freeze (platform admins)",
        request=FreezeLiftInputSerializer,
        responses=DeploymentFreezeSerializer,
    )
    @action(detail=True, methods=["post"])
    def lift(self, request: Request, pk=None) -> Response:
        freeze = self.get_object()
        data = FreezeLiftInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        freeze = services.freeze_lift(
            freeze=freeze, by=request.user, reason=data.validated_data["reason"]
        )
        return Response(DeploymentFreezeSerializer(freeze).data)


class ServiceLevelObjectiveViewSet(viewsets.ReadOnlyModelViewSet):
    """SLO definitions; in and out as OpenSLO YAML (import is for platform admins)."""

    serializer_class = ServiceLevelObjectiveSerializer
    filterset_fields = ["indicator", "service"]

    def get_queryset(self):
        return ServiceLevelObjective.objects.select_related("provider").order_by("service", "name")

    @extend_schema(
        summary="Every SLO (after filters) as one OpenSLO v1 YAML file",
        responses={(200, "application/yaml"): OpenApiTypes.STR},
    )
    @action(detail=False, methods=["get"])
    def openslo(self, request: Request) -> HttpResponse:
        text = slos_export(self.filter_queryset(self.get_queryset()))
        response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="slos.openslo.yaml"'
        return response

    @extend_schema(
        summary="Create or update SLOs from an OpenSLO v1 YAML file, all or none",
        request={"multipart/form-data": OpenSloImportSerializer},
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 413: OpenApiTypes.OBJECT},
    )
    @openslo.mapping.post
    def openslo_import(self, request: Request) -> Response:
        serializer = OpenSloImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        upload_check(upload=upload, kind=OPENSLO_FILE, max_bytes=MAX_OPENSLO_BYTES)
        raw = upload.read(MAX_OPENSLO_BYTES + 1)
        if len(raw) > MAX_OPENSLO_BYTES:
            raise ValidationError({"file": ["An OpenSLO file over 1 MiB is not a set of SLOs."]})
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError({"file": ["The file is not UTF-8 text."]}) from exc
        created, updated = slos_import(text=text, by=request.user)
        return Response({"created": created, "updated": updated})


class SloMeasurementFilterSet(django_filters.FilterSet):
    slo = django_filters.CharFilter(field_name="slo__name", label="SLO name")
    month = MonthFilter()

    class Meta:
        model = SloMeasurement
        fields = ["slo", "month"]


@extend_schema_view(
    list=extend_schema(
        summary="Daily SLO measurements",
        description="Filter by `slo` (its name) and `month` (YYYY-MM). Anyone signed in may "
        "read them: SLOs are not secret.",
    ),
)
class SloMeasurementViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Daily SLO measurements: availability in percent or p95 latency in ms.

    Finance and platform admins post them as a JSON list of rows or a CSV file
    (``slo,day,value[,good,total]``); all rows or none, the same SLO and day replaces.
    """

    serializer_class = SloMeasurementSerializer
    filterset_class = SloMeasurementFilterSet

    def get_permissions(self):
        if self.action == "create":
            return [IsAuthenticated(), IsCostManager()]
        return super().get_permissions()

    def get_queryset(self):
        return SloMeasurement.objects.select_related("slo").order_by("slo__name", "day")

    @extend_schema(
        summary="Store measurements from a JSON list of rows or a CSV file, all or none",
        request={
            "application/json": SloMeasurementInputSerializer(many=True),
            "multipart/form-data": CsvUploadSerializer,
        },
        responses={
            200: RowsStoredSerializer,
            400: OpenApiTypes.OBJECT,
            403: OpenApiTypes.OBJECT,
            413: OpenApiTypes.OBJECT,
        },
    )
    def create(self, request: Request) -> Response:
        posted = rows_posted(request, columns="slo, day, value[, good, total]")
        if isinstance(posted, list):
            stored = services.slo_measurements_record(rows=posted, source="api", by=request.user)
        else:
            stored = services.slo_measurements_import(data=posted, by=request.user)
        return Response({"stored": stored})
