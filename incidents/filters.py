"""The incidents app's filter sets: the incident, factor and action-item lists of the API, and
the all-items page (its form shows only active people and reads an unticked box as "any").

``IncidentFilterSet`` hands its values to ``incidents.services.incident_list``, the one place
that knows how an incident is matched (a model through its endpoints, a month in UTC).
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from costs.selectors import month_parse
from governance.api.rows import MONTH
from governance.filters import IdFilter
from governance.models import BusinessUnit, User
from incidents import services
from incidents.models import (
    ActionItem,
    ActionKind,
    ActionStatus,
    ContributingFactor,
    FactorStatus,
    Incident,
    IncidentStatus,
    IncidentType,
    Severity,
)
from registry.models import CapacityPool, Endpoint, RegisteredModel


@extend_schema_field(OpenApiTypes.INT)
class _RecordFilter(django_filters.ModelChoiceFilter):
    """A record by its id (an unknown id is a 400)."""


@extend_schema_field(OpenApiTypes.STR)
class _UnitFilter(django_filters.ModelChoiceFilter):
    """A business unit by its code."""


class IncidentFilterSet(django_filters.FilterSet):
    """The list's filters; ``incidents.services.incident_list`` applies them."""

    status = django_filters.ChoiceFilter(choices=IncidentStatus.choices)
    severity = django_filters.ChoiceFilter(choices=Severity.choices)
    incident_type = django_filters.ChoiceFilter(choices=IncidentType.choices)
    business_unit = _UnitFilter(
        queryset=BusinessUnit.objects.all(), to_field_name="code", label="Business unit code"
    )
    month = django_filters.CharFilter(validators=[MONTH], label="Started in month (YYYY-MM, UTC)")
    model = _RecordFilter(
        queryset=RegisteredModel.objects.all(),
        label="Affected model id (also its versions' endpoints)",
    )
    pool = _RecordFilter(queryset=CapacityPool.objects.all(), label="Affected shared pool id")
    endpoint = _RecordFilter(queryset=Endpoint.objects.all(), label="Affected endpoint id")
    q = django_filters.CharFilter(label="Words in the title")

    class Meta:
        model = Incident
        fields = [
            "status",
            "severity",
            "incident_type",
            "business_unit",
            "month",
            "model",
            "pool",
            "endpoint",
            "q",
        ]

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        wanted = {k: v for k, v in self.form.cleaned_data.items() if v not in (None, "")}
        if "month" in wanted:
            wanted["month"] = month_parse(wanted["month"])
        return services.incident_list(user=self.request.user, **wanted)


class ContributingFactorFilterSet(django_filters.FilterSet):
    """The API's list of every post-mortem's factors."""

    postmortem = IdFilter(field_name="postmortem_id", label="Post-mortem id")
    status = django_filters.ChoiceFilter(choices=FactorStatus.choices)
    kind = django_filters.CharFilter(label="deployment, decision, waiver, freeze, …")

    class Meta:
        model = ContributingFactor
        fields = ["postmortem", "status", "kind"]


class ActionItemFilterSet(django_filters.FilterSet):
    """The API's action-item list (``overdue=false``: the items that are not overdue)."""

    status = django_filters.ChoiceFilter(choices=ActionStatus.choices)
    kind = django_filters.ChoiceFilter(choices=ActionKind.choices)
    owner = django_filters.CharFilter(field_name="owner__username", label="Owner (username)")
    postmortem = IdFilter(field_name="postmortem_id", label="Post-mortem id")
    overdue = django_filters.BooleanFilter(
        field_name="is_overdue", label="Open and past the due date (UTC)"
    )

    class Meta:
        model = ActionItem
        fields = ["status", "kind", "owner", "postmortem", "overdue"]


class ActionItemPageFilterSet(django_filters.FilterSet):
    """The all-items page: an unticked "overdue only" box filters nothing (the API's
    ``overdue=false`` asks for the items that are not overdue)."""

    status = django_filters.ChoiceFilter(choices=ActionStatus.choices)
    kind = django_filters.ChoiceFilter(choices=ActionKind.choices)
    owner = django_filters.ModelChoiceFilter(
        queryset=User.objects.filter(is_active=True).order_by("username"),
        to_field_name="username",
    )
    overdue = django_filters.BooleanFilter(
        method="only_overdue", widget=forms.CheckboxInput, label="Overdue only"
    )

    class Meta:
        model = ActionItem
        fields = ["status", "kind", "owner", "overdue"]

    def only_overdue(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        return queryset.filter(is_overdue=True) if value else queryset
