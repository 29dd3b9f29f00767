"""Read queries about the organisation."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from governance.models import BusinessUnit, RoleAssignment, User


def person_list() -> QuerySet[User]:
    return User.objects.prefetch_related(
        Prefetch("role_assignments", queryset=RoleAssignment.objects.order_by("role")),
        "business_units",
    ).order_by("username")


def business_unit_get(*, code: str) -> BusinessUnit | None:
    return BusinessUnit.objects.filter(code=code.upper()).first()


def business_unit_list(*, user: User | None) -> QuerySet[BusinessUnit]:
    units = BusinessUnit.objects.select_related("owner")
    if user is None or user.sees_all_business_units:
        return units
    return units.filter(pk__in=user.scoped_business_unit_ids)
