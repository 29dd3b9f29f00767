"""REST API for TCO: saved scenarios (results computed server-side, read-only) and a
calculator that saves nothing.

Finance, platform admins and review-board members read and edit every scenario; anyone else
only their own units' scenarios.
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from costs import tco, tco_services
from costs.models import TcoScenario
from governance.api.exceptions import ErrorSerializer
from governance.filters import IdFilter
from governance.models import BusinessUnit, Decision
from governance.policy import CURRENCY_HELP, currency_code_parse
from governance.selectors import decision_list
from registry import selectors as registry_selectors
from registry.models import CapacityAssessment, EfficiencyBenchmark

# --- Results ----------------------------------------------------------------------------------


def _amount(help_text: str, *, nullable: bool = False) -> serializers.CharField:
    return serializers.CharField(help_text=f"{help_text} (a decimal string)", allow_null=nullable)


class TcoOnPremSerializer(serializers.Serializer):
    depreciation = _amount("Capex ÷ depreciation years")
    energy = _amount("kW x PUE x hours x price per kWh")
    operations = _amount("Operations a year")
    total = _amount("On-prem a year, paid at any utilisation")


class TcoPerMillionSerializer(serializers.Serializer):
    on_prem = _amount("On-prem per 1M requests served")
    cloud_on_demand = _amount("Cloud on-demand per 1M requests")
    cloud_committed = _amount("Cloud committed per 1M requests", nullable=True)


class TcoResultsSerializer(serializers.Serializer):
    """One year of each option at the scenario's utilisation, rounded to the currency's minor
    unit; percentages to two decimals."""

    currency = serializers.CharField()
    utilisation_percent = _amount("Share of the year's hours used")
    hours_per_year = serializers.IntegerField()
    energy_kwh = _amount("Energy a year, PUE included")
    on_prem = TcoOnPremSerializer()
    cloud_on_demand_full = _amount("Cloud on-demand a year at full use")
    cloud_on_demand = _amount("Cloud on-demand a year at the utilisation")
    cloud_committed = _amount("Cloud committed a year, paid regardless", nullable=True)
    break_even_percent = _amount("Utilisation where on-prem and on-demand cost the same")
    committed_break_even_percent = _amount(
        "Utilisation above which committing beats on-demand", nullable=True
    )
    requests_per_second = _amount("Throughput costed", nullable=True)
    requests_per_year = _amount("Requests served a year at the utilisation", nullable=True)
    per_million_requests = TcoPerMillionSerializer(allow_null=True)
    cheapest = serializers.ChoiceField(choices=list(tco.OPTION_LABELS.items()))
    notes = serializers.ListField(child=serializers.CharField())
    throughput_source = serializers.CharField()
    computed_at = serializers.CharField(required=False)


# --- Inputs -----------------------------------------------------------------------------------


class ScopedIdField(serializers.PrimaryKeyRelatedField):
    """A related row chosen by id among those the caller may read (``scope(user)``)."""

    def __init__(self, *, scope, **kwargs) -> None:
        self.scope = scope
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        return self.scope(request.user if request else None)


def _benchmarks(user):
    return tco_services.tco_benchmark_choices(user=user)


def _assessments(user):
    return registry_selectors.assessment_list(user=user)


def _decisions(user):
    return decision_list(user=user).prefetch_related(None)


class UnitField(serializers.SlugRelatedField):
    """A business unit by code, among those the caller files scenarios for."""

    def get_queryset(self):
        request = self.context.get("request")
        return tco_services.tco_unit_choices(user=request.user if request else None)


class TcoInputFields(serializers.Serializer):
    """The inputs the calculator and a saved scenario share, checked by the calculator's own
    rules (PUE 1 or more, utilisation 0-100, ...) field by field."""

    currency = serializers.CharField(max_length=3, default="USD", help_text=CURRENCY_HELP)
    capex = serializers.DecimalField(max_digits=24, decimal_places=10)
    depreciation_years = serializers.IntegerField(min_value=1, max_value=30)
    power_kw = serializers.DecimalField(max_digits=10, decimal_places=3)
    pue = serializers.DecimalField(max_digits=5, decimal_places=3, help_text="1 or more")
    price_per_kwh = serializers.DecimalField(max_digits=10, decimal_places=5)
    operations_per_year = serializers.DecimalField(max_digits=24, decimal_places=10)
    utilisation_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, default=tco.HUNDRED, help_text="Above 0, at most 100"
    )
    hours_per_year = serializers.IntegerField(
        min_value=1, max_value=tco.MAX_HOURS_PER_YEAR, default=tco.HOURS_PER_YEAR
    )
    cloud_on_demand_hourly = serializers.DecimalField(max_digits=18, decimal_places=6)

    def validate_currency(self, value: str) -> str:
        code = currency_code_parse(value)
        if code is None:
            raise serializers.ValidationError(CURRENCY_HELP)
        return code

    def validate(self, attrs: dict) -> dict:
        current = {}
        if self.instance is not None:  # a change: the inputs it leaves keep their values
            current = {key: getattr(self.instance, key) for key in tco_services.INPUT_FIELDS}
        _check({**current, **attrs})
        return attrs


class TcoInputSerializer(TcoInputFields):
    """The workload's inputs; the throughput given wins over the benchmark's."""

    cloud_committed_hourly = serializers.DecimalField(
        max_digits=18, decimal_places=6, required=False, allow_null=True, default=None
    )
    requests_per_second = serializers.DecimalField(
        max_digits=14, decimal_places=4, required=False, allow_null=True, default=None
    )
    benchmark = ScopedIdField(
        scope=_benchmarks,
        queryset=EfficiencyBenchmark.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="An efficiency benchmark whose throughput gives the cost per 1M requests.",
    )


def _check(attrs: dict) -> None:
    """The calculator's own rules, field by field; a missing required input says so itself."""
    required = ("capex", "depreciation_years", "power_kw", "pue", "price_per_kwh")
    if any(attrs.get(key) is None for key in (*required, "operations_per_year")):
        return  # a required field is missing: its own error says so
    if attrs.get("cloud_on_demand_hourly") is None:
        return
    errors = tco.tco_validate(
        tco.TcoInputs(
            **{key: attrs[key] for key in required},
            operations_per_year=attrs["operations_per_year"],
            cloud_on_demand_hourly=attrs["cloud_on_demand_hourly"],
            cloud_committed_hourly=attrs.get("cloud_committed_hourly"),
            utilisation_percent=attrs.get("utilisation_percent", tco.HUNDRED),
            hours_per_year=attrs.get("hours_per_year", tco.HOURS_PER_YEAR),
            requests_per_second=attrs.get("requests_per_second"),
        )
    )
    if errors:
        raise serializers.ValidationError(errors)


class TcoScenarioSerializer(TcoInputFields, serializers.ModelSerializer):
    """A saved scenario: its inputs, what it is attached to, and its results (read-only)."""

    business_unit = UnitField(
        slug_field="code",
        queryset=BusinessUnit.objects.all(),
        required=False,
        allow_null=True,
        help_text="The unit whose workload it is (required unless you see every unit).",
    )
    benchmark = ScopedIdField(
        scope=_benchmarks,
        queryset=EfficiencyBenchmark.objects.all(),
        required=False,
        allow_null=True,
    )
    assessments = ScopedIdField(
        scope=_assessments, queryset=CapacityAssessment.objects.all(), many=True, required=False
    )
    decisions = ScopedIdField(
        scope=_decisions, queryset=Decision.objects.all(), many=True, required=False
    )
    cloud_committed_hourly = serializers.DecimalField(
        max_digits=18, decimal_places=6, required=False, allow_null=True
    )
    requests_per_second = serializers.DecimalField(
        max_digits=14, decimal_places=4, required=False, allow_null=True
    )
    results = TcoResultsSerializer(read_only=True)
    created_by = serializers.StringRelatedField(read_only=True)

    class Meta:
        model = TcoScenario
        fields = [
            "id",
            "name",
            "description",
            "business_unit",
            "currency",
            *tco_services.INPUT_FIELDS[:-1],
            "benchmark",
            "requests_per_second",
            "assessments",
            "decisions",
            "results",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "results", "created_by", "created_at", "updated_at"]


# --- Views ------------------------------------------------------------------------------------


class TcoAccess(BasePermission):
    """Wide roles and a unit's people; changes only to scenarios the caller may edit."""

    message = (
        "TCO scenarios are for finance, platform admins, the review board and the people of a "
        "business unit (for their unit's scenarios)."
    )

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and tco_services.tco_may_create(user=user))

    def has_object_permission(self, request, view, obj) -> bool:
        return request.method in SAFE_METHODS or tco_services.tco_may_edit(
            user=request.user, scenario=obj
        )


class TcoScenarioFilterSet(django_filters.FilterSet):
    business_unit = django_filters.CharFilter(
        field_name="business_unit__code", lookup_expr="iexact", label="Business unit code"
    )
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    assessment = IdFilter(field_name="assessments", label="Attached assessment")
    decision = IdFilter(field_name="decisions", label="Attached decision")

    class Meta:
        model = TcoScenario
        fields = []


class TcoScenarioViewSet(viewsets.ModelViewSet):
    """Saved TCO scenarios: on-prem against cloud for a workload, per year and per 1M requests.

    ``results`` is computed by the server on every save and cannot be written. A scenario
    attached to assessments or decisions shows on their pages.
    """

    serializer_class = TcoScenarioSerializer
    permission_classes = [TcoAccess]
    filterset_class = TcoScenarioFilterSet

    def get_queryset(self):
        return (
            tco_services.tco_scenario_list(user=self.request.user)
            .prefetch_related("assessments", "decisions")
            .distinct()
        )

    def _save(self, serializer: TcoScenarioSerializer, scenario: TcoScenario | None) -> None:
        data = dict(serializer.validated_data)
        assessments = data.pop("assessments", None)
        decisions = data.pop("decisions", None)
        if scenario is not None:
            current = {
                "name": scenario.name,
                "description": scenario.description,
                "business_unit": scenario.business_unit,
                "benchmark": scenario.benchmark,
                "currency": scenario.currency,
                **{key: getattr(scenario, key) for key in tco_services.INPUT_FIELDS},
            }
            data = {**current, **data}
        saved = tco_services.tco_scenario_save(scenario=scenario, by=self.request.user, **data)
        if assessments is not None or decisions is not None:
            tco_services.tco_scenario_attachments_set(
                scenario=saved, by=self.request.user, assessments=assessments, decisions=decisions
            )
        serializer.instance = self.get_queryset().get(pk=saved.pk)

    def perform_create(self, serializer) -> None:
        self._save(serializer, None)

    def perform_update(self, serializer) -> None:
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance: TcoScenario) -> None:
        tco_services.tco_scenario_delete(scenario=instance, by=self.request.user)


class TcoCalculateView(APIView):
    """Cost a workload without saving it: per year, per 1M requests, break-even utilisation."""

    permission_classes = [TcoAccess]

    @extend_schema(
        request=TcoInputSerializer,
        responses={200: TcoResultsSerializer, 400: ErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        data = TcoInputSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        calculation = tco_services.tco_calculate(**data.validated_data)
        return Response(TcoResultsSerializer(calculation.as_dict()).data, status=status.HTTP_200_OK)
