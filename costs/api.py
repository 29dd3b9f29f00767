"""REST API for costs: chargeback, cost rows and summaries, imports, allocation rules."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from costs import selectors, services
from costs.filters import CostRowFilterSet
from costs.ingest import FORMATS
from costs.models import AllocationRule, BillingImport, CostRow
from governance.api.permissions import IsCostManager
from governance.models import BusinessUnit
from governance.money import money_round

# --- Serializers ------------------------------------------------------------------------------


class CostRowSerializer(serializers.ModelSerializer):
    business_unit = serializers.SerializerMethodField()
    tags = serializers.JSONField(source="tag_set.tags", read_only=True)

    class Meta:
        model = CostRow
        fields = [
            "id",
            "source",
            "provider",
            "billing_account_id",
            "sub_account_id",
            "sub_account_name",
            "billing_period",
            "usage_date",
            "charge_category",
            "service_name",
            "service_category",
            "resource_id",
            "sku_id",
            "region",
            "currency",
            "billed_cost",
            "effective_cost",
            "list_cost",
            "quantity",
            "pricing_unit",
            "business_unit",
            "tags",
        ]

    def get_business_unit(self, row: CostRow) -> str:
        unit = row.tag_set.business_unit
        return unit.code if unit else selectors.UNALLOCATED


class CostSummarySerializer(serializers.Serializer):
    """One group: its key, currency, amount rounded to the currency's minor unit, row count."""

    key = serializers.CharField(allow_null=True)
    currency = serializers.CharField()
    amount = serializers.SerializerMethodField()
    rows = serializers.IntegerField()

    def get_amount(self, group: dict) -> str:
        return f"{money_round(group['amount'], group['currency']):f}"


class BillingImportSerializer(serializers.ModelSerializer):
    class Meta:
        model = BillingImport
        fields = [
            "id",
            "file_name",
            "requested_format",
            "detected_format",
            "status",
            "stage",
            "progress",
            "rows_read",
            "rows_stored",
            "billing_periods",
            "billing_accounts",
            "billed_totals",
            "period_totals",
            "warnings",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "superseded_by",
        ]
        read_only_fields = fields


class BillingImportInputSerializer(serializers.Serializer):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=FORMATS, default="auto")


class AllocationRuleSerializer(serializers.ModelSerializer):
    business_unit = serializers.SlugRelatedField(
        slug_field="code", queryset=BusinessUnit.objects.all()
    )
    tag_values = serializers.ListField(child=serializers.CharField(), allow_empty=True)

    class Meta:
        model = AllocationRule
        fields = [
            "id",
            "business_unit",
            "tag_key",
            "tag_values",
            "priority",
            "is_active",
            "description",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


# --- Views ------------------------------------------------------------------------------------


class ChargebackView(APIView):
    """The month's cost per business unit and currency, reconciled to the cent."""

    @extend_schema(
        parameters=[
            OpenApiParameter("month", OpenApiTypes.STR, required=True, description="YYYY-MM"),
            OpenApiParameter("basis", OpenApiTypes.STR, enum=list(selectors.BASES)),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("month")
        if not raw:
            raise serializers.ValidationError({"month": "Give the billing month as YYYY-MM."})
        try:
            month = selectors.month_parse(raw)
            basis = request.query_params.get("basis", "billed")
            selectors.basis_field(basis)
        except ValueError as exc:
            raise serializers.ValidationError({"detail": str(exc)}) from exc
        result = selectors.chargeback_get(user=request.user, month=month, basis=basis)
        return Response(result.as_dict())


class CostRowViewSet(viewsets.ReadOnlyModelViewSet):
    """Stored daily cost rows, filtered; ``summary/`` groups them by one dimension."""

    serializer_class = CostRowSerializer
    filterset_class = CostRowFilterSet

    def get_queryset(self):
        return selectors.cost_row_list(user=self.request.user).order_by("usage_date", "pk")

    @extend_schema(
        parameters=[
            OpenApiParameter("group_by", OpenApiTypes.STR, enum=list(selectors.GROUPINGS)),
            OpenApiParameter("basis", OpenApiTypes.STR, enum=list(selectors.BASES)),
        ],
        responses=CostSummarySerializer(many=True),
    )
    @action(detail=False)
    def summary(self, request: Request) -> Response:
        group_by = request.query_params.get("group_by", "service")
        basis = request.query_params.get("basis", "billed")
        if group_by not in selectors.GROUPINGS:
            raise serializers.ValidationError(
                {"group_by": f"Choose one of {', '.join(selectors.GROUPINGS)}."}
            )
        if basis not in selectors.BASES:
            raise serializers.ValidationError({"basis": "Choose billed, effective or list."})
        rows = self.filter_queryset(self.get_queryset())
        groups = selectors.cost_summary(rows=rows, group_by=group_by, basis=basis)
        page = self.paginate_queryset(groups)
        return self.get_paginated_response(CostSummarySerializer(page, many=True).data)


class BillingImportViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Billing imports: upload a file (multipart) and follow its status."""

    serializer_class = BillingImportSerializer
    permission_classes = [IsCostManager]
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return selectors.billing_import_list(user=self.request.user)

    @extend_schema(request=BillingImportInputSerializer, responses={202: BillingImportSerializer})
    def create(self, request: Request) -> Response:
        data = BillingImportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        billing_import = services.billing_import_create(
            uploaded_file=data.validated_data["file"],
            fmt=data.validated_data["format"],
            by=request.user,
        )
        billing_import.refresh_from_db()  # with eager tasks it has already run
        return Response(
            BillingImportSerializer(billing_import).data, status=status.HTTP_202_ACCEPTED
        )


class AllocationRuleViewSet(viewsets.ModelViewSet):
    """Allocation rules; every change re-attributes costs at once."""

    serializer_class = AllocationRuleSerializer
    permission_classes = [IsCostManager]

    def get_queryset(self):
        return AllocationRule.objects.select_related("business_unit").order_by("priority", "pk")

    _FIELDS = ("business_unit", "tag_key", "tag_values", "priority", "is_active", "description")

    def _save(self, serializer, rule: AllocationRule | None = None) -> None:
        # A PATCH sends only what changes; the rest comes from the stored rule.
        current = (
            {f: getattr(rule, f) for f in self._FIELDS}
            if rule
            else {"priority": 100, "is_active": True, "description": "", "tag_values": []}
        )
        data = {**current, **serializer.validated_data}
        serializer.instance = services.allocation_rule_save(
            rule=rule, by=self.request.user, **{f: data[f] for f in self._FIELDS}
        )

    def perform_create(self, serializer) -> None:
        self._save(serializer)

    def perform_update(self, serializer) -> None:
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance: AllocationRule) -> None:
        services.allocation_rule_delete(rule=instance, by=self.request.user)
