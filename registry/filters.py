"""Filters shared by the registry's pages and API."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from governance.filters import IdFilter
from governance.models import BusinessUnit
from governance.selectors import business_unit_list
from registry.choices import (
    AssessmentStatus,
    LifecycleState,
    ModelSource,
    Precision,
    Provider,
    RiskTier,
    Task,
)
from registry.models import (
    CapacityAssessment,
    CaseKind,
    CaseStatus,
    EfficiencyBenchmark,
    Endpoint,
    ModelVersion,
    RegisteredModel,
    RetirementCase,
    RetirementPolicy,
)


class RegisteredModelFilterSet(django_filters.FilterSet):
    business_unit = django_filters.CharFilter(
        field_name="business_unit__code", lookup_expr="iexact", label="Business unit code"
    )
    task = django_filters.ChoiceFilter(choices=Task.choices)
    source = django_filters.ChoiceFilter(choices=ModelSource.choices)
    risk_tier = django_filters.ChoiceFilter(choices=RiskTier.choices)
    q = django_filters.CharFilter(method="search", label="Name contains")

    class Meta:
        model = RegisteredModel
        fields = ["business_unit", "task", "source", "risk_tier", "q"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(vendor__icontains=value))


class ModelVersionFilterSet(django_filters.FilterSet):
    model = IdFilter(field_name="model_id")
    business_unit = django_filters.CharFilter(
        field_name="model__business_unit__code", lookup_expr="iexact"
    )
    state = django_filters.MultipleChoiceFilter(choices=LifecycleState.choices)
    precision = django_filters.ChoiceFilter(choices=Precision.choices)

    class Meta:
        model = ModelVersion
        fields = ["model", "business_unit", "state", "precision"]


class BenchmarkFilterSet(django_filters.FilterSet):
    version = IdFilter(field_name="version_id")
    model = IdFilter(field_name="version__model_id")
    tool = django_filters.CharFilter()
    protocol = IdFilter(field_name="protocol_id")

    class Meta:
        model = EfficiencyBenchmark
        fields = ["version", "model", "tool", "protocol"]


class AssessmentFilterSet(django_filters.FilterSet):
    version = IdFilter(field_name="version_id")
    status = django_filters.ChoiceFilter(choices=AssessmentStatus.choices)
    business_unit = django_filters.CharFilter(
        field_name="version__model__business_unit__code", lookup_expr="iexact"
    )

    class Meta:
        model = CapacityAssessment
        fields = ["version", "status", "business_unit"]


# --- Retirement ------------------------------------------------------------------------------


def _units(request) -> QuerySet[BusinessUnit]:
    return business_unit_list(user=getattr(request, "user", None)).order_by("code")


class RetirementCaseFilterSet(django_filters.FilterSet):
    """Cases by status, kind, business unit (code) and policy; the page and the API share it."""

    status = django_filters.ChoiceFilter(choices=CaseStatus.choices, empty_label="Any")
    kind = django_filters.ChoiceFilter(choices=CaseKind.choices, empty_label="Any")
    business_unit = django_filters.ModelChoiceFilter(
        field_name="business_unit",
        queryset=_units,
        to_field_name="code",
        label="Business unit",
        empty_label="Any",
    )
    policy = django_filters.ModelChoiceFilter(
        queryset=RetirementPolicy.objects.order_by("name"), label="Policy", empty_label="Any"
    )

    class Meta:
        model = RetirementCase
        fields = ["status", "kind", "business_unit", "policy"]


VERDICTS = [("idle", "Flagged idle"), ("not_idle", "Not flagged"), ("none", "Not evaluated")]


class EndpointFilterSet(django_filters.FilterSet):
    """Endpoints by unit, provider, last verdict and name."""

    business_unit = django_filters.ModelChoiceFilter(
        field_name="business_unit",
        queryset=_units,
        to_field_name="code",
        label="Business unit",
        empty_label="Any",
    )
    provider = django_filters.ChoiceFilter(choices=Provider.choices, empty_label="Any")
    verdict = django_filters.ChoiceFilter(
        choices=VERDICTS, method="filter_verdict", label="Last verdict", empty_label="Any"
    )
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name")

    class Meta:
        model = Endpoint
        fields = ["business_unit", "provider", "verdict", "q"]

    def filter_verdict(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "none":
            return queryset.filter(retirement_verdict={})
        return queryset.filter(retirement_verdict__idle=(value == "idle"))
