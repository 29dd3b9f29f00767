"""Writes about the organisation: people, their roles and business-unit scope."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from governance.choices import Role
from governance.exceptions import DomainError
from governance.models import BusinessUnit, RoleAssignment, User


@transaction.atomic
def person_upsert(
    *,
    username: str,
    email: str,
    first_name: str = "",
    last_name: str = "",
    password: str | None = None,
    roles: Iterable[str] = (),
    business_units: Iterable[BusinessUnit] = (),
    is_staff: bool = False,
) -> User:
    """Create a person, or bring an existing one to exactly these roles and this scope.

    The password is set only when the person is created, so re-running a seed never
    resets a password someone changed.
    """
    roles = set(roles)
    unknown = roles - set(Role.values)
    if unknown:
        raise DomainError(f"Unknown role(s): {', '.join(sorted(unknown))}.")
    user, created = User.objects.get_or_create(
        username=username,
        defaults={
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "is_staff": is_staff,
            "is_superuser": is_staff,
        },
    )
    if created:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(update_fields=["password"])
    user.role_assignments.exclude(role__in=roles).delete()
    have = set(user.role_assignments.values_list("role", flat=True))
    RoleAssignment.objects.bulk_create(RoleAssignment(user=user, role=r) for r in roles - have)
    user.business_units.set(business_units)
    user.__dict__.pop("role_set", None)
    return user


def business_unit_owner_set(*, business_unit: BusinessUnit, owner: User | None) -> None:
    """The owner sees the unit's costs whether or not they are a member of it."""
    business_unit.owner = owner
    business_unit.save(update_fields=["owner"])
