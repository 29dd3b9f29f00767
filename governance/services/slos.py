"""SLO definitions in and out as OpenSLO YAML."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from governance import openslo
from governance.choices import Role
from governance.exceptions import DomainError, PermissionDeniedError
from governance.models import BusinessUnit, ServiceLevelObjective, User


@transaction.atomic
def slos_import(*, text: str, by: User | None = None) -> tuple[int, int]:
    """Create or update the SLOs of an OpenSLO file, all or none; returns (created, updated)."""
    if by is not None and not by.has_role(Role.PLATFORM_ADMIN):
        raise PermissionDeniedError("Only platform admins import SLO definitions.")
    try:
        specs = openslo.parse(text)
    except openslo.OpenSloError as exc:
        raise DomainError(str(exc)) from exc
    if not specs:
        raise DomainError("The file holds no OpenSLO document of kind SLO.")
    units = {u.code: u for u in BusinessUnit.objects.all()}
    created = updated = 0
    for spec in specs:
        if spec.provider and spec.provider not in units:
            raise DomainError(
                f"SLO {spec.name}: provider {spec.provider!r} is not a business unit code."
            )
        _, was_created = ServiceLevelObjective.objects.update_or_create(
            name=spec.name,
            defaults={
                "display_name": spec.display_name,
                "description": spec.description,
                "service": spec.service,
                "indicator": spec.indicator,
                "target": spec.target,
                "window_days": spec.window_days,
                "provider": units.get(spec.provider),
            },
        )
        created += was_created
        updated += not was_created
    return created, updated


def slos_export(slos: Iterable[ServiceLevelObjective]) -> str:
    return openslo.render(
        [
            openslo.SloSpec(
                name=s.name,
                display_name=s.display_name,
                description=s.description,
                service=s.service,
                indicator=s.indicator,
                target=s.target,
                window_days=s.window_days,
                provider=s.provider.code if s.provider else "",
            )
            for s in slos
        ]
    )
