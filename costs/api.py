"""REST API for costs: chargeback, cost rows and summaries, imports, allocation rules, budgets."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_FLOOR, Decimal

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from costs import budgets as budget_math
from costs import selectors, services, sync
from costs.filters import BudgetFilterSet, CostRowFilterSet
from costs.ingest import FORMATS
from costs.models import (
    AllocationRule,
    BillingImport,
    Budget,
    BudgetAlert,
    BudgetBasis,
    CloudAccount,
    CostRow,
    SyncKind,
    SyncRun,
)
from governance.api.exceptions import ErrorSerializer
from governance.api.pagination import KeysetPagination
from governance.api.parsers import StrictFormParser, StrictMultiPartParser
from governance.api.permissions import IsCostManager
from governance.choices import Role
from governance.models import BusinessUnit, DeploymentFreeze
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


class CostRowCursorPagination(KeysetPagination):
    """Cost rows page by usage day and id through a cursor (``next`` / ``previous``), never by
    page number: a bill has millions of rows, and counting or skipping them for every page is
    what would make the list slow. Filter by ``month`` or dates to narrow it."""

    key = "usage_date"
    parse_key = staticmethod(dt.date.fromisoformat)


class CostRowViewSet(viewsets.ReadOnlyModelViewSet):
    """Stored daily cost rows, filtered, by usage day and id, a cursor page at a time;
    ``summary/`` groups them by one dimension (counted, numbered pages)."""

    serializer_class = CostRowSerializer
    filterset_class = CostRowFilterSet
    pagination_class = CostRowCursorPagination

    def get_queryset(self):
        return selectors.cost_row_list(user=self.request.user)

    @extend_schema(
        parameters=[
            OpenApiParameter("group_by", OpenApiTypes.STR, enum=list(selectors.GROUPINGS)),
            OpenApiParameter("basis", OpenApiTypes.STR, enum=list(selectors.BASES)),
        ],
        responses=CostSummarySerializer(many=True),
    )
    @action(detail=False, pagination_class=PageNumberPagination)
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
    parser_classes = [StrictMultiPartParser, StrictFormParser]

    def get_queryset(self):
        return selectors.billing_import_list(user=self.request.user)

    @extend_schema(
        request=BillingImportInputSerializer,
        # 400 and 413: a file of another type, or over CAPGOV_MAX_UPLOAD_MB; nothing is kept.
        responses={202: BillingImportSerializer, 400: ErrorSerializer, 413: ErrorSerializer},
    )
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


# --- Budgets ----------------------------------------------------------------------------------


@extend_schema_field(
    {"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-11", "nullable": True}
)
class MonthField(serializers.Field):
    """A month written ``YYYY-MM``, kept as its first day."""

    def to_representation(self, value: dt.date) -> str:
        return f"{value:%Y-%m}"

    def to_internal_value(self, data) -> dt.date:
        try:
            return selectors.month_parse(str(data))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc


def _money(amount: Decimal | None, currency: str) -> str | None:
    return None if amount is None else f"{money_round(amount, currency):f}"


def _percent(amount: Decimal | None) -> str | None:
    # Rounded down, so 99.996 % never reads as 100.00 %.
    return None if amount is None else f"{amount.quantize(Decimal('0.01'), ROUND_FLOOR):f}"


class BudgetFreezeSerializer(serializers.ModelSerializer):
    lifted_by = serializers.StringRelatedField(allow_null=True)

    class Meta:
        model = DeploymentFreeze
        fields = ["id", "reason", "started_at", "lifted_at", "lifted_by", "lift_reason"]
        read_only_fields = fields


class BudgetMonthSerializer(serializers.Serializer):
    """Where the budget stands in the month asked for (default: the current UTC month).

    Amounts are rounded to the currency's minor unit; percentages are rounded down to
    hundredths. ``projection`` is a simple trend: spend to date divided by the days with data,
    times the days in the month. ``status`` is ``inactive`` (the budget does not cover the
    month), ``frozen`` (the unit is under a deployment freeze), ``alert`` (a threshold is
    reached) or ``ok``.
    """

    month = serializers.SerializerMethodField()
    in_force = serializers.BooleanField(source="active")
    status = serializers.CharField(help_text="inactive, frozen, alert or ok")
    spend = serializers.SerializerMethodField()
    percent = serializers.SerializerMethodField()
    projection = serializers.SerializerMethodField()
    projected_percent = serializers.SerializerMethodField()
    data_until = serializers.SerializerMethodField()
    days_with_data = serializers.SerializerMethodField()
    days_in_month = serializers.SerializerMethodField()
    freeze = BudgetFreezeSerializer(allow_null=True)

    def get_month(self, st: selectors.BudgetStatus) -> str:
        return f"{st.month:%Y-%m}"

    def get_spend(self, st: selectors.BudgetStatus) -> str | None:
        return _money(st.standing.spend, st.budget.currency) if st.standing else None

    def get_percent(self, st: selectors.BudgetStatus) -> str | None:
        return _percent(st.standing.percent) if st.standing else None

    def get_projection(self, st: selectors.BudgetStatus) -> str | None:
        return _money(st.standing.projection, st.budget.currency) if st.standing else None

    def get_projected_percent(self, st: selectors.BudgetStatus) -> str | None:
        return _percent(st.standing.projected_percent) if st.standing else None

    @extend_schema_field(serializers.DateField(allow_null=True))
    def get_data_until(self, st: selectors.BudgetStatus) -> dt.date | None:
        return st.standing.data_until if st.standing else None

    def get_days_with_data(self, st: selectors.BudgetStatus) -> int | None:
        return st.standing.days_elapsed if st.standing else None

    def get_days_in_month(self, st: selectors.BudgetStatus) -> int:
        return budget_math.days_in_month(st.month)


class BudgetSerializer(serializers.ModelSerializer):
    """A monthly budget and, under ``current``, where it stands in the month asked for."""

    business_unit = serializers.SlugRelatedField(slug_field="code", read_only=True)
    amount = serializers.SerializerMethodField()
    first_month = MonthField(allow_null=True)
    last_month = MonthField(allow_null=True)
    current = serializers.SerializerMethodField()

    class Meta:
        model = Budget
        fields = [
            "id",
            "name",
            "business_unit",
            "tag_key",
            "tag_value",
            "amount",
            "currency",
            "basis",
            "thresholds",
            "forecast_thresholds",
            "freeze_at_percent",
            "first_month",
            "last_month",
            "notify",
            "created_at",
            "updated_at",
            "current",
        ]
        read_only_fields = fields

    def get_amount(self, budget: Budget) -> str:
        return f"{money_round(budget.amount, budget.currency):f}"

    @extend_schema_field(BudgetMonthSerializer)
    def get_current(self, budget: Budget) -> dict:
        return BudgetMonthSerializer(self.context["statuses"][budget.pk]).data


class BudgetInputSerializer(serializers.Serializer):
    """What a budget is made of; thresholds are whole percentages of the amount."""

    name = serializers.CharField(max_length=120)
    business_unit = serializers.SlugRelatedField(
        slug_field="code", queryset=BusinessUnit.objects.all()
    )
    amount = serializers.DecimalField(max_digits=18, decimal_places=4, min_value=Decimal(0))
    currency = serializers.CharField(min_length=3, max_length=3)
    basis = serializers.ChoiceField(choices=BudgetBasis.choices, default=BudgetBasis.BILLED)
    tag_key = serializers.CharField(max_length=255, allow_blank=True, default="")
    tag_value = serializers.CharField(max_length=255, allow_blank=True, default="")
    thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=budget_math.MAX_THRESHOLD),
        default=list(budget_math.DEFAULT_THRESHOLDS),
        help_text="Percent of the amount spent to date that e-mails the owners.",
    )
    forecast_thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=budget_math.MAX_THRESHOLD),
        default=list(budget_math.DEFAULT_THRESHOLDS),
        help_text="Percent of the amount the month-end projection may reach before it alerts.",
    )
    freeze_at_percent = serializers.IntegerField(
        min_value=1,
        max_value=budget_math.MAX_THRESHOLD,
        allow_null=True,
        default=100,
        help_text="Spend to date, in percent, that freezes deployments; null: never.",
    )
    first_month = MonthField(allow_null=True, default=None)
    last_month = MonthField(allow_null=True, default=None)
    notify = serializers.ListField(
        child=serializers.EmailField(),
        default=list,
        help_text="E-mail addresses alerted besides the unit's owner.",
    )


class BudgetAlertSerializer(serializers.ModelSerializer):
    month = MonthField()
    spend = serializers.SerializerMethodField()
    projection = serializers.SerializerMethodField()
    freeze = BudgetFreezeSerializer(allow_null=True)

    class Meta:
        model = BudgetAlert
        fields = [
            "id",
            "month",
            "measure",
            "threshold",
            "is_enforcement",
            "spend",
            "projection",
            "currency",
            "data_until",
            "created_at",
            "sent_at",
            "recipients",
            "freeze",
        ]
        read_only_fields = fields

    def get_spend(self, alert: BudgetAlert) -> str:
        return _money(alert.spend, alert.currency)

    def get_projection(self, alert: BudgetAlert) -> str | None:
        return _money(alert.projection, alert.currency)


_MONTH = OpenApiParameter(
    "month",
    OpenApiTypes.STR,
    description="The month ``current`` describes, YYYY-MM; default the current UTC month.",
)


@extend_schema_view(
    list=extend_schema(parameters=[_MONTH]),
    retrieve=extend_schema(parameters=[_MONTH]),
    create=extend_schema(request=BudgetInputSerializer, responses={201: BudgetSerializer}),
    update=extend_schema(request=BudgetInputSerializer, responses=BudgetSerializer),
    partial_update=extend_schema(request=BudgetInputSerializer, responses=BudgetSerializer),
)
class BudgetViewSet(viewsets.ModelViewSet):
    """Monthly budgets of the business units the caller may see, with this month's spend.

    Finance and platform admins create, change and delete them. Reaching a threshold e-mails
    the unit's owner once a month; reaching the freeze threshold freezes its deployments.
    """

    serializer_class = BudgetSerializer
    filterset_class = BudgetFilterSet

    def get_permissions(self):
        if self.action in {"list", "retrieve", "alerts"}:
            return [IsAuthenticated()]
        return [IsAuthenticated(), IsCostManager()]

    def get_queryset(self):
        return selectors.budget_list(user=self.request.user)

    def _month(self) -> dt.date:
        raw = self.request.query_params.get("month")
        if not raw:
            return timezone.now().date().replace(day=1)
        try:
            return selectors.month_parse(raw)
        except ValueError as exc:
            raise serializers.ValidationError({"month": str(exc)}) from exc

    def _output(self, budgets: list[Budget], *, many: bool):
        statuses = selectors.budget_statuses(budgets=budgets, month=self._month())
        context = {**self.get_serializer_context(), "statuses": {s.budget.pk: s for s in statuses}}
        return BudgetSerializer(budgets if many else budgets[0], many=many, context=context).data

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self._output(list(page), many=True))

    def retrieve(self, request: Request, pk=None) -> Response:
        return Response(self._output([self.get_object()], many=False))

    _FIELDS = tuple(BudgetInputSerializer().fields)

    def _save(self, request: Request, budget: Budget | None, *, partial: bool) -> Budget:
        data = BudgetInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        # A PATCH sends only what changes; the rest comes from the stored budget.
        current = {f: getattr(budget, f) for f in self._FIELDS} if budget else {}
        values = {**current, **data.validated_data}
        return services.budget_save(
            budget=budget, by=request.user, **{f: values[f] for f in self._FIELDS}
        )

    def create(self, request: Request) -> Response:
        budget = self._save(request, None, partial=False)
        return Response(self._output([budget], many=False), status=status.HTTP_201_CREATED)

    def update(self, request: Request, pk=None, partial: bool = False) -> Response:
        budget = self._save(request, self.get_object(), partial=partial)
        return Response(self._output([budget], many=False))

    def partial_update(self, request: Request, pk=None) -> Response:
        return self.update(request, pk, partial=True)

    def perform_destroy(self, instance: Budget) -> None:
        services.budget_delete(budget=instance, by=self.request.user)

    @extend_schema(responses=BudgetAlertSerializer(many=True))
    @action(detail=True)
    def alerts(self, request: Request, pk=None) -> Response:
        """Every threshold the budget reached, newest month first, and the freezes started."""
        alerts = selectors.budget_alert_list(budget=self.get_object())
        page = self.paginate_queryset(alerts)
        return self.get_paginated_response(BudgetAlertSerializer(page, many=True).data)


# --- Cloud syncs -------------------------------------------------------------------------------


class IsPlatformAdmin(BasePermission):
    message = "Cloud accounts and syncs are for platform admins."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_role(Role.PLATFORM_ADMIN))


class CloudAccountSerializer(serializers.ModelSerializer):
    class Meta:
        model = CloudAccount
        fields = [
            "id",
            "name",
            "provider",
            "account_id",
            "is_active",
            "cost_source",
            "aws_region",
            "cur_bucket",
            "cur_prefix",
            "gcp_project",
            "bq_table",
            "cost_allocation_tags",
        ]


class SyncRunSerializer(serializers.ModelSerializer):
    account = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "account",
            "kind",
            "period_start",
            "period_end",
            "status",
            "created_at",
            "started_at",
            "finished_at",
            "rows",
            "detail",
            "error",
            "attempts",
        ]


class SyncRunInputSerializer(serializers.Serializer):
    account = serializers.PrimaryKeyRelatedField(queryset=CloudAccount.objects.all())
    kind = serializers.ChoiceField(choices=SyncKind.choices)
    start = serializers.DateField(required=False, allow_null=True)
    end = serializers.DateField(required=False, allow_null=True)


class CloudAccountViewSet(viewsets.ReadOnlyModelViewSet):
    """The cloud accounts Capgov reads (credential references are not shown)."""

    serializer_class = CloudAccountSerializer
    permission_classes = [IsPlatformAdmin]
    queryset = CloudAccount.objects.order_by("provider", "name")


class SyncRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Sync runs, newest first; POST queues one now (202)."""

    serializer_class = SyncRunSerializer
    permission_classes = [IsPlatformAdmin]
    filterset_fields = ["status", "kind", "account"]

    def get_queryset(self):
        return SyncRun.objects.select_related("account").order_by("-created_at", "-pk")

    @extend_schema(request=SyncRunInputSerializer, responses={202: SyncRunSerializer})
    def create(self, request: Request) -> Response:
        serializer = SyncRunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = sync.sync_run_create(
            account=data["account"],
            kind=data["kind"],
            by=request.user,
            start=data.get("start"),
            end=data.get("end"),
        )
        run.refresh_from_db()
        return Response(SyncRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
