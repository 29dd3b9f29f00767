"""One FilterSet per list, shared by the HTML pages and the API."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from costs.allocation import normalise_key, normalise_value
from costs.models import Budget, BudgetBasis, ChargeCategory, CostRow, TagSet
from costs.selectors import BASES, GROUPINGS, UNALLOCATED, month_parse


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


GROUP_CHOICES = [(key, key.replace("_", " ").capitalize()) for key in GROUPINGS]
BASIS_CHOICES = [(key, key.capitalize()) for key in BASES]
