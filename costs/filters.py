"""One FilterSet per list, shared by the HTML pages and the API."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from costs.allocation import normalise_key, normalise_value
from costs.forecasts import ORGANISATION
from costs.models import (
    AnomalyDirection,
    Budget,
    BudgetBasis,
    BusinessEvent,
    CapacityPlan,
    ChargeCategory,
    CommitmentKind,
    CommitmentRecommendation,
    CostAnomaly,
    CostRow,
    CycleStatus,
    EventKind,
    Forecast,
    ForecastExclusion,
    LineStatus,
    Measure,
    PlanLine,
    PlanningCycle,
    PlanStatus,
    RecommendationStatus,
    SubjectKind,
    TagSet,
)
from costs.selectors import BASES, GROUPINGS, UNALLOCATED, month_parse
from governance.filters import IdFilter


def _valid_month(value: str) -> None:
    try:
        month_parse(value)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from exc


class CostRowFilterSet(django_filters.FilterSet):
    """Filter stored costs by usage day, business unit, service, account, region, tag, kind."""

    date_from = django_filters.DateFilter(
        field_name="usage_date",
        lookup_expr="gte",
        label="From (usage day)",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    date_to = django_filters.DateFilter(
        field_name="usage_date",
        lookup_expr="lte",
        label="To (usage day)",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    month = django_filters.CharFilter(
        method="filter_month", label="Billing month (YYYY-MM)", validators=[_valid_month]
    )
    business_unit = django_filters.CharFilter(
        method="filter_business_unit",
        label="Business unit",
        help_text="A code such as RES, or UNALLOCATED",
    )
    service = django_filters.CharFilter(field_name="service_name", lookup_expr="iexact")
    account = django_filters.CharFilter(method="filter_account", label="Account or project")
    region = django_filters.CharFilter(field_name="region", lookup_expr="iexact")
    provider = django_filters.CharFilter(field_name="provider", lookup_expr="iexact")
    charge_category = django_filters.ChoiceFilter(choices=ChargeCategory.choices, empty_label="Any")
    currency = django_filters.CharFilter(field_name="currency", lookup_expr="iexact")
    tag = django_filters.CharFilter(method="filter_tag", label="Tag (key or key=value)")
    resource = django_filters.CharFilter(field_name="resource_id", lookup_expr="icontains")

    class Meta:
        model = CostRow
        fields = []

    def filter_month(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(billing_period=month_parse(value))

    def filter_business_unit(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value.strip().upper() == UNALLOCATED:
            return queryset.filter(tag_set__business_unit__isnull=True)
        return queryset.filter(tag_set__business_unit__code__iexact=value.strip())

    def filter_account(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        return queryset.filter(
            Q(sub_account_id=value)
            | Q(billing_account_id=value)
            | Q(sub_account_name__iexact=value)
        )

    def filter_tag(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # Tag sets are few; match them in Python with the rules' own key normalisation.
        key, _, wanted = value.partition("=")
        key, wanted = normalise_key(key), normalise_value(wanted)
        ids = [
            ts.pk
            for ts in TagSet.objects.only("pk", "tags")
            if any(
                normalise_key(k) == key and (not wanted or normalise_value(v) == wanted)
                for k, v in ts.tags.items()
            )
        ]
        return queryset.filter(tag_set__in=ids)


class BudgetFilterSet(django_filters.FilterSet):
    """Filter budgets by business unit, currency, basis and whether a project tag narrows them."""

    business_unit = django_filters.CharFilter(
        field_name="business_unit__code", lookup_expr="iexact", label="Business unit"
    )
    currency = django_filters.CharFilter(field_name="currency", lookup_expr="iexact")
    basis = django_filters.ChoiceFilter(choices=BudgetBasis.choices, empty_label="Any")
    tagged = django_filters.BooleanFilter(
        method="filter_tagged",
        label="Scope",
        widget=forms.Select(
            choices=[("", "Any"), ("false", "Whole unit"), ("true", "A project tag")]
        ),
    )

    class Meta:
        model = Budget
        fields = []

    def filter_tagged(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.exclude(tag_key="") if value else queryset.filter(tag_key="")


class _SubjectFilters(django_filters.FilterSet):
    """Filters by subject shared by forecasts, anomalies, events and exclusions."""

    business_unit = django_filters.CharFilter(
        method="filter_business_unit", label="Business unit", help_text="A code such as RES"
    )
    pool = django_filters.CharFilter(method="filter_pool", label="Pool", help_text="Its code")
    endpoint = IdFilter(method="filter_endpoint", label="Endpoint id")

    subject_prefix = ""

    def filter_business_unit(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(
            **{f"{self.subject_prefix}business_unit__code__iexact": value.strip()}
        )

    def filter_pool(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(**{f"{self.subject_prefix}pool__code__iexact": value.strip()})

    def filter_endpoint(self, queryset: QuerySet, name: str, value) -> QuerySet:
        return queryset.filter(**{f"{self.subject_prefix}endpoint_id": value})


class ForecastFilterSet(_SubjectFilters):
    """Filter forecasts by what they forecast: kind of subject, measure, currency, subject."""

    kind = django_filters.ChoiceFilter(choices=SubjectKind.choices, empty_label="Any subject")
    measure = django_filters.ChoiceFilter(choices=Measure.choices, empty_label="Any measure")
    currency = django_filters.CharFilter(field_name="currency", lookup_expr="iexact")

    class Meta:
        model = Forecast
        fields = []


class CostAnomalyFilterSet(_SubjectFilters):
    """Filter anomalies by day, direction, and their forecast's subject and measure."""

    subject_prefix = "forecast__"
    kind = django_filters.ChoiceFilter(
        field_name="forecast__kind", choices=SubjectKind.choices, empty_label="Any subject"
    )
    measure = django_filters.ChoiceFilter(
        field_name="forecast__measure", choices=Measure.choices, empty_label="Any measure"
    )
    direction = django_filters.ChoiceFilter(
        choices=AnomalyDirection.choices, empty_label="Either side"
    )
    forecast = IdFilter(field_name="forecast_id", label="Forecast id")
    date_from = django_filters.DateFilter(
        field_name="day",
        lookup_expr="gte",
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    date_to = django_filters.DateFilter(
        field_name="day",
        lookup_expr="lte",
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    class Meta:
        model = CostAnomaly
        fields = []


class _DaysFilters(_SubjectFilters):
    organisation = django_filters.BooleanFilter(
        method="filter_organisation",
        label="Scope",
        widget=forms.Select(
            choices=[("", "Any"), ("true", "Whole organisation"), ("false", "One subject")]
        ),
    )
    active_on = django_filters.DateFilter(
        method="filter_active_on",
        label="Covers the day",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def filter_organisation(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.filter(ORGANISATION) if value else queryset.exclude(ORGANISATION)

    def filter_active_on(self, queryset: QuerySet, name: str, value) -> QuerySet:
        return queryset.filter(starts_on__lte=value, ends_on__gte=value)


class BusinessEventFilterSet(_DaysFilters):
    """Filter business events by kind, subject and the day they cover."""

    kind = django_filters.ChoiceFilter(choices=EventKind.choices, empty_label="Any kind")

    class Meta:
        model = BusinessEvent
        fields = []


class ForecastExclusionFilterSet(_DaysFilters):
    """Filter left-out days by subject, source and the day they cover."""

    source = django_filters.CharFilter(field_name="source", lookup_expr="iexact")

    class Meta:
        model = ForecastExclusion
        fields = []


class PlanningCycleFilterSet(django_filters.FilterSet):
    """Planning cycles by status and fiscal year."""

    status = django_filters.ChoiceFilter(choices=CycleStatus.choices, empty_label="Any")
    fiscal_year = django_filters.NumberFilter(
        field_name="fiscal_year", min_value=1970, max_value=2199, decimal_places=0
    )

    class Meta:
        model = PlanningCycle
        fields = []


class CapacityPlanFilterSet(django_filters.FilterSet):
    """Capacity plans by cycle, business unit (code) and status."""

    cycle = IdFilter(field_name="cycle_id", label="Cycle (id)")
    business_unit = django_filters.CharFilter(
        field_name="business_unit__code", lookup_expr="iexact", label="Business unit"
    )
    status = django_filters.ChoiceFilter(choices=PlanStatus.choices, empty_label="Any")

    class Meta:
        model = CapacityPlan
        fields = []


class PlanLineFilterSet(django_filters.FilterSet):
    """Plan lines by cycle, plan, business unit, pool (code), month and the board's answer."""

    cycle = IdFilter(field_name="plan__cycle_id", label="Cycle (id)")
    plan = IdFilter(field_name="plan_id", label="Plan (id)")
    business_unit = django_filters.CharFilter(
        field_name="plan__business_unit__code", lookup_expr="iexact", label="Business unit"
    )
    pool = django_filters.CharFilter(field_name="pool__code", lookup_expr="iexact", label="Pool")
    month = django_filters.CharFilter(
        method="filter_month", label="Month (YYYY-MM)", validators=[_valid_month]
    )
    status = django_filters.ChoiceFilter(choices=LineStatus.choices, empty_label="Any")

    class Meta:
        model = PlanLine
        fields = []

    def filter_month(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(month=month_parse(value))


class CommitmentRecommendationFilterSet(django_filters.FilterSet):
    """Commitment recommendations by pool (code), status, term and kind."""

    pool = django_filters.CharFilter(field_name="pool__code", lookup_expr="iexact", label="Pool")
    status = django_filters.ChoiceFilter(choices=RecommendationStatus.choices, empty_label="Any")
    term_years = django_filters.ChoiceFilter(
        choices=[(1, "1 year"), (3, "3 years")], empty_label="Any"
    )
    kind = django_filters.ChoiceFilter(choices=CommitmentKind.choices, empty_label="Any")

    class Meta:
        model = CommitmentRecommendation
        fields = []


GROUP_CHOICES = [(key, key.replace("_", " ").capitalize()) for key in GROUPINGS]
BASIS_CHOICES = [(key, key.capitalize()) for key in BASES]
