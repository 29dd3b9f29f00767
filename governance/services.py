"""Writes about the organisation: business units, people and their roles."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from governance.choices import Role
from governance.exceptions import DomainError
from governance.models import BusinessUnit, RoleAssignment, User


def business_unit_create(
    *, code: str, name: str, cost_centre: str = "", owner: User | None = None
) -> BusinessUnit:
    code = code.strip().upper()
    if not code or not name.strip():
        raise DomainError("A business unit needs a code and a name.")
    if BusinessUnit.objects.filter(code=code).exists():
        raise DomainError(f"A business unit with code {code} already exists.")
    return BusinessUnit.objects.create(
        code=code, name=name.strip(), cost_centre=cost_centre, owner=owner
    )


@transaction.atomic
def person_create(
    *,
    username: str,
    email: str,
    password: str | None = None,
    first_name: str = "",
    last_name: str = "",
    roles: Iterable[str] = (),
    business_units: Iterable[BusinessUnit] = (),
) -> User:
    """Create a person with their roles and business-unit scope."""
    roles = list(roles)
    unknown = set(roles) - set(Role.values)
    if unknown:
        raise DomainError(f"Unknown role(s): {', '.join(sorted(unknown))}.")
    user = User.objects.create_user(
        username=username,
        email=email,
        password=password,
        first_name=first_name,
        last_name=last_name,
    )
    RoleAssignment.objects.bulk_create(RoleAssignment(user=user, role=r) for r in roles)
    user.business_units.set(business_units)
    return user


def person_roles_set(*, user: User, roles: Iterable[str]) -> None:
    roles = set(roles)
    unknown = roles - set(Role.values)
    if unknown:
        raise DomainError(f"Unknown role(s): {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        user.role_assignments.exclude(role__in=roles).delete()
        have = set(user.role_assignments.values_list("role", flat=True))
        RoleAssignment.objects.bulk_create(RoleAssignment(user=user, role=r) for r in roles - have)
    user.__dict__.pop("role_set", None)
