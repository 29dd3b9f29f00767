"""Read queries about the organisation."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from governance.models import BusinessUnit, Decision, DeploymentFreeze, User


def visible_unit_ids(user: User | AnonymousUser | None) -> frozenset[int] | None:
    """Business units whose costs ``user`` may read; None means all of them.

    ``None`` as the user is the system itself (commands, tasks); an anonymous visitor sees
    nothing.
    """
    if user is None:
        return None
    if not user.is_authenticated:
        return frozenset()
    if user.sees_all_business_units:
        return None
    return user.scoped_business_unit_ids


def manages_costs(user: User | AnonymousUser | None) -> bool:
    """May import billing data and edit rules; ``None`` is the system itself."""
    return user is None or (user.is_authenticated and user.manages_costs)


def business_unit_list(*, user: User | AnonymousUser | None) -> QuerySet[BusinessUnit]:
    units = BusinessUnit.objects.select_related("owner")
    visible = visible_unit_ids(user)
    return units if visible is None else units.filter(pk__in=visible)


def freezes_in_force(*, business_unit_ids: Iterable[int]) -> dict[int, DeploymentFreeze]:
    """The freeze that stops deployments in each of these business units now, if any."""
    freezes = (
        DeploymentFreeze.objects.filter(
            business_unit_id__in=list(business_unit_ids), lifted_at=None
        )
        .select_related("business_unit")
        .order_by("-started_at")
    )
    return {f.business_unit_id: f for f in freezes}


def decision_list_for(*, subject_type_id: int, subject_ids: list[int]) -> QuerySet[Decision]:
    """Decisions about these subjects, newest first, with their deciders."""
    return Decision.objects.filter(
        subject_type_id=subject_type_id, subject_id__in=subject_ids
    ).select_related("decided_by")
