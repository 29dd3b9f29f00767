"""Filters shared by the registry's pages and API."""

from __future__ import annotations

import django_filters
from django.db.models import Q

from registry.choices import (
    AssessmentStatus,
    LifecycleState,
    ModelSource,
    Precision,
    RiskTier,
    Task,
)
from registry.models import CapacityAssessment, EfficiencyBenchmark, ModelVersion, RegisteredModel


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
    model = django_filters.NumberFilter(field_name="model_id")
    business_unit = django_filters.CharFilter(
        field_name="model__business_unit__code", lookup_expr="iexact"
    )
    state = django_filters.MultipleChoiceFilter(choices=LifecycleState.choices)
    precision = django_filters.ChoiceFilter(choices=Precision.choices)

    class Meta:
        model = ModelVersion
        fields = ["model", "business_unit", "state", "precision"]


class BenchmarkFilterSet(django_filters.FilterSet):
    version = django_filters.NumberFilter(field_name="version_id")
    model = django_filters.NumberFilter(field_name="version__model_id")
    tool = django_filters.CharFilter()
    protocol = django_filters.NumberFilter(field_name="protocol_id")

    class Meta:
        model = EfficiencyBenchmark
        fields = ["version", "model", "tool", "protocol"]


class AssessmentFilterSet(django_filters.FilterSet):
    version = django_filters.NumberFilter(field_name="version_id")
    status = django_filters.ChoiceFilter(choices=AssessmentStatus.choices)
    business_unit = django_filters.CharFilter(
        field_name="version__model__business_unit__code", lookup_expr="iexact"
    )

    class Meta:
        model = CapacityAssessment
        fields = ["version", "status", "business_unit"]
