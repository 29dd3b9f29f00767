"""One FilterSet per governance list, shared by the HTML pages and the API."""

from __future__ import annotations

import django_filters
from django import forms
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet

from governance.choices import DecisionKind, DecisionOutcome, RequestKind, RequestStatus
from governance.models import ApprovalRequest, BusinessUnit, Decision, DeploymentFreeze
from governance.selectors import approval_steps_waiting_for, approval_unit_list


class IdFilter(django_filters.NumberFilter):
    """A record's id: a whole number that a database key can hold. Anything else is a 400
    that says so, never a query that overflows the database's integer."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("min_value", -(2**63))
        kwargs.setdefault("max_value", 2**63 - 1)
        kwargs.setdefault("decimal_places", 0)
        super().__init__(**kwargs)


def _units(request) -> QuerySet[BusinessUnit]:
    return approval_unit_list(user=getattr(request, "user", None))


def _business_unit_filter(field_name: str) -> django_filters.ModelChoiceFilter:
    return django_filters.ModelChoiceFilter(
        field_name=field_name,
        queryset=_units,
        to_field_name="code",
        label="Business unit",
        empty_label="Any",
    )


class ApprovalRequestFilterSet(django_filters.FilterSet):
    """Requests by status, kind and unit; ``mine`` and ``waiting`` (for my vote) need a user."""

    status = django_filters.ChoiceFilter(choices=RequestStatus.choices, empty_label="Any")
    kind = django_filters.ChoiceFilter(choices=RequestKind.choices, empty_label="Any")
    business_unit = _business_unit_filter("business_unit")
    q = django_filters.CharFilter(field_name="title", lookup_expr="icontains", label="Title")
    mine = django_filters.BooleanFilter(
        method="filter_mine", label="Filed by me", widget=forms.CheckboxInput
    )
    waiting = django_filters.BooleanFilter(
        method="filter_waiting", label="Waiting for me", widget=forms.CheckboxInput
    )

    class Meta:
        model = ApprovalRequest
        fields = ["status", "kind", "business_unit", "q", "mine", "waiting"]

    def _user(self):
        user = getattr(self.request, "user", None)
        return user if user is not None and user.is_authenticated else None

    def filter_mine(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        if not value:
            return queryset
        user = self._user()
        return queryset.filter(requested_by=user) if user else queryset.none()

    def filter_waiting(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        if not value:
            return queryset
        user = self._user()
        if user is None:
            return queryset.none()
        return queryset.filter(pk__in=approval_steps_waiting_for(user=user).values("request_id"))


def _subject_type(value: str) -> ContentType | None:
    app_label, _, model = value.strip().lower().partition(".")
    return ContentType.objects.filter(app_label=app_label, model=model).first()


class DecisionFilterSet(django_filters.FilterSet):
    """Decisions by kind, outcome, unit, subject (``registry.modelversion`` + id) and date."""

    kind = django_filters.ChoiceFilter(choices=DecisionKind.choices, empty_label="Any")
    outcome = django_filters.ChoiceFilter(choices=DecisionOutcome.choices, empty_label="Any")
    business_unit = _business_unit_filter("business_unit")
    subject_type = django_filters.CharFilter(
        method="filter_subject_type",
        label="Subject type",
        help_text="app_label.model, e.g. registry.modelversion or governance.approvalrequest",
    )
    subject_id = IdFilter(field_name="subject_id", label="Subject id")
    decided_from = django_filters.DateFilter(
        field_name="decided_at",
        lookup_expr="date__gte",
        label="Decided from",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    decided_to = django_filters.DateFilter(
        field_name="decided_at",
        lookup_expr="date__lte",
        label="Decided up to",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    class Meta:
        model = Decision
        fields = [
            "kind",
            "outcome",
            "business_unit",
            "subject_type",
            "subject_id",
            "decided_from",
            "decided_to",
        ]

    def filter_subject_type(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        content_type = _subject_type(value)
        return queryset.filter(subject_type=content_type) if content_type else queryset.none()


class DeploymentFreezeFilterSet(django_filters.FilterSet):
    """Freezes by unit, in force or lifted."""

    business_unit = _business_unit_filter("business_unit")
    in_force = django_filters.BooleanFilter(
        field_name="lifted_at",
        lookup_expr="isnull",
        label="In force",
        widget=forms.Select(choices=[("", "Any"), ("true", "In force"), ("false", "Lifted")]),
    )

    class Meta:
        model = DeploymentFreeze
        fields = ["business_unit", "in_force"]
