"""REST API for chargeback statements: read them (JSON or a finance export), publish and
close a month, reconcile it, and set the quotas that overage surcharges use."""

from __future__ import annotations

import datetime as dt

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from costs import chargeback, selectors
from costs.models import CapacityQuota, ChargebackPeriod
from costs.statement_exports import STATEMENT_EXPORTS
from governance.api.permissions import IsCostManager
from governance.models import BusinessUnit
from governance.policy import CURRENCY_HELP, currency_code_parse
from governance.selectors import manages_costs, visible_unit_ids
from registry.models import CapacityPool


class _ExportRenderer(BaseRenderer):
    """Lets ``?format=csv|xlsx|focus`` (or an Accept header asking for them) through content
    negotiation. The view answers with the export itself; anything else that reaches a
    renderer is an error, written as JSON so its message is not lost."""

    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data)


def _renderer(key: str) -> type[BaseRenderer]:
    export = STATEMENT_EXPORTS[key]
    return type(
        f"{key.title()}StatementRenderer",
        (_ExportRenderer,),
        {"format": key, "media_type": export.content_type.split(";")[0]},
    )


EXPORT_RENDERERS = [_renderer(key) for key in STATEMENT_EXPORTS]


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-\d{2}(-\d{2})?$", "example": "2026-10"})
class MonthDateField(serializers.DateField):
    """A month, written ``YYYY-MM`` and kept as its first day (read also as ``YYYY-MM-DD``)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("format", "%Y-%m")
        kwargs.setdefault("input_formats", ["%Y-%m", "%Y-%m-%d"])
        super().__init__(**kwargs)


def _month(raw: str | None) -> dt.date:
    if not raw:
        raise serializers.ValidationError({"month": "Give the billing month as YYYY-MM."})
    try:
        return selectors.month_parse(raw)
    except ValueError as exc:
        raise serializers.ValidationError({"month": str(exc)}) from exc


def _export_response(result: chargeback.StatementSet, fmt: str) -> HttpResponse:
    export = STATEMENT_EXPORTS[fmt]
    body = export.render(result)
    response = (
        StreamingHttpResponse(body, content_type=export.content_type)
        if export.streamed
        else HttpResponse(body, content_type=export.content_type)
    )
    response["Content-Disposition"] = f'attachment; filename="{export.file_name(result.month)}"'
    return response


class PeriodSerializer(serializers.ModelSerializer):
    month = MonthDateField()
    published_by = serializers.StringRelatedField(allow_null=True)
    closed_by = serializers.StringRelatedField(allow_null=True)

    class Meta:
        model = ChargebackPeriod
        fields = [
            "month",
            "status",
            "basis",
            "totals",
            "warnings",
            "published_at",
            "published_by",
            "closed_at",
            "closed_by",
        ]
        read_only_fields = fields


class ReconciliationSerializer(serializers.Serializer):
    month = MonthDateField()
    currency = serializers.CharField()
    status = serializers.CharField()
    basis = serializers.CharField()
    month_total = serializers.DecimalField(max_digits=20, decimal_places=4)
    statements_total = serializers.DecimalField(max_digits=20, decimal_places=4)
    unallocated = serializers.DecimalField(max_digits=20, decimal_places=4)
    adjustments_in = serializers.DecimalField(max_digits=20, decimal_places=4)
    difference = serializers.DecimalField(max_digits=20, decimal_places=4)
    reconciles = serializers.BooleanField()
    bill_now = serializers.DecimalField(max_digits=20, decimal_places=4)
    late = serializers.DecimalField(max_digits=20, decimal_places=4)


class StatementListView(APIView):
    """A month's statements: JSON, or a finance export with ``format=csv|xlsx|focus``.

    Finance and platform admins get every unit (drafts computed live) with Unallocated and
    the month total; anyone else gets their own units' statements once published.
    """

    renderer_classes = [JSONRenderer, *EXPORT_RENDERERS]

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors go out as JSON with its content type, whatever export was asked for.
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = "application/json"
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        parameters=[
            OpenApiParameter("month", OpenApiTypes.STR, required=True, description="YYYY-MM"),
            OpenApiParameter(
                "format", OpenApiTypes.STR, enum=["json", *STATEMENT_EXPORTS], required=False
            ),
        ],
        responses={(200, "application/json"): OpenApiTypes.OBJECT},
    )
    def get(self, request: Request):
        month = _month(request.query_params.get("month"))
        result = chargeback.statements_get(user=request.user, month=month)
        if result.error:
            raise serializers.ValidationError({"policy": result.error})
        fmt = getattr(request.accepted_renderer, "format", "json")
        if fmt in STATEMENT_EXPORTS:
            if not result.currencies:
                raise NotFound(f"No statements of {month:%Y-%m} that you can see.")
            return _export_response(result, fmt)
        return Response(result.as_dict())


class StatementDetailView(APIView):
    """One business unit's statement of a month, every currency, with each line's workings."""

    @extend_schema(operation_id="v1_statements_unit_retrieve", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, month: str, code: str) -> Response:
        result = chargeback.statements_get(user=request.user, month=_month(month))
        found = [
            s.as_dict()
            for cur in result.currencies.values()
            for s in cur.statements
            if s.unit.code == code.upper()
        ]
        if not found:
            raise NotFound(f"No statement of {code.upper()} for {month} that you can see.")
        return Response(
            {"month": month, "status": result.status, "basis": result.basis, "statements": found}
        )


class _PeriodAction(APIView):
    permission_classes = [IsCostManager]
    transition = staticmethod(chargeback.period_publish)

    @extend_schema(request=None, responses=PeriodSerializer)
    def post(self, request: Request, month: str) -> Response:
        period = self.transition(month=_month(month), by=request.user)
        return Response(PeriodSerializer(period).data)


class StatementPublishView(_PeriodAction):
    """Store the month's statements and e-mail each unit's owner (draft → published)."""

    transition = staticmethod(chargeback.period_publish)


class StatementCloseView(_PeriodAction):
    """Make a published month final (published → closed)."""

    transition = staticmethod(chargeback.period_close)


class StatementUnpublishView(_PeriodAction):
    """Take a published month back to draft to correct it."""

    transition = staticmethod(chargeback.period_unpublish)


class ReconciliationView(APIView):
    """Per currency: Σ statements + Unallocated against the month's total, to the cent."""

    permission_classes = [IsCostManager]

    @extend_schema(
        parameters=[OpenApiParameter("month", OpenApiTypes.STR, required=True)],
        responses=ReconciliationSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        month = _month(request.query_params.get("month"))
        result = chargeback.statements_get(user=None, month=month)
        if result.error:
            raise serializers.ValidationError({"policy": result.error})
        rows = chargeback.reconciliation(month=month, user=request.user, result=result)
        return Response(ReconciliationSerializer(rows, many=True).data)


# --- Quotas -----------------------------------------------------------------------------------


class QuotaSerializer(serializers.ModelSerializer):
    business_unit = serializers.SlugRelatedField(
        slug_field="code", queryset=BusinessUnit.objects.all()
    )
    pool = serializers.SlugRelatedField(slug_field="code", queryset=CapacityPool.objects.all())
    first_month = MonthDateField()
    last_month = MonthDateField(required=False, allow_null=True)

    class Meta:
        model = CapacityQuota
        fields = [
            "id",
            "business_unit",
            "pool",
            "first_month",
            "last_month",
            "gpu_hours",
            "unit_price",
            "currency",
            "multiplier",
            "source",
        ]
        read_only_fields = ["id"]

    def validate_currency(self, value: str) -> str:
        try:
            return currency_code_parse(value)
        except ValueError as exc:
            raise serializers.ValidationError(CURRENCY_HELP) from exc

    def validate(self, attrs: dict) -> dict:
        for key in ("first_month", "last_month"):
            if attrs.get(key):
                attrs[key] = attrs[key].replace(day=1)
        first = attrs.get("first_month", getattr(self.instance, "first_month", None))
        last = attrs.get("last_month", getattr(self.instance, "last_month", None))
        if first and last and last < first:
            raise serializers.ValidationError({"last_month": "The last month is before the first."})
        if attrs.get("multiplier") is not None and attrs["multiplier"] < 1:
            raise serializers.ValidationError(
                {"multiplier": "A surcharge multiplier is at least 1."}
            )
        if attrs.get("unit_price") is not None and attrs["unit_price"] <= 0:
            raise serializers.ValidationError({"unit_price": "The price per GPU-hour is above 0."})
        if attrs.get("gpu_hours") is not None and attrs["gpu_hours"] < 0:
            raise serializers.ValidationError({"gpu_hours": "Reserved GPU-hours are 0 or more."})
        return attrs


class ReadOrCostManager(BasePermission):
    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or manages_costs(request.user)


class CapacityQuotaViewSet(viewsets.ModelViewSet):
    """GPU-hours each unit reserved on a pool per month, and the overage multiplier.

    Everyone reads their units' quotas; finance and platform admins set them.
    """

    serializer_class = QuotaSerializer
    permission_classes = [ReadOrCostManager]

    def get_queryset(self):
        quotas = CapacityQuota.objects.select_related("business_unit", "pool").order_by(
            "pool__code", "business_unit__code", "-first_month", "pk"
        )
        visible = visible_unit_ids(self.request.user)
        return quotas if visible is None else quotas.filter(business_unit__in=visible)
