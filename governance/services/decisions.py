"""Writes about decisions and deployment freezes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone

from governance.choices import DecisionKind, DecisionOutcome, FreezeOrigin, Role
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import BusinessUnit, Decision, DeploymentFreeze, User


def decision_record(
    *,
    subject: models.Model,
    kind: DecisionKind | str,
    outcome: DecisionOutcome | str,
    title: str,
    rationale: str,
    by: User | None,
    decided_as: str = "",
    alternatives: str = "",
    evidence: dict[str, Any] | None = None,
    business_unit: BusinessUnit | None = None,
    at: datetime | None = None,
) -> Decision:
    """Keep what was decided and why. Callers check who may decide; this checks the record."""
    rationale = rationale.strip()
    if not rationale:
        raise DomainError("A decision needs a rationale: say why, in a sentence or two.")
    if outcome not in DecisionOutcome.values:
        raise DomainError(f"Unknown decision outcome {outcome!r}.")
    return Decision.objects.create(
        kind=kind,
        outcome=outcome,
        title=title[:300],
        rationale=rationale,
        alternatives=alternatives.strip(),
        evidence=evidence or {},
        decided_by=by,
        decided_as=decided_as,
        decided_at=at or timezone.now(),
        business_unit=business_unit,
        subject_type=ContentType.objects.get_for_model(subject),
        subject_id=subject.pk,
    )


@transaction.atomic
def freeze_start(
    *,
    business_unit: BusinessUnit,
    reason: str,
    by: User | None = None,
    origin: FreezeOrigin | str = FreezeOrigin.PERSON,
) -> DeploymentFreeze:
    """Stop new deployments in a business unit until the freeze is lifted.

    ``by`` is None when the system freezes (a budget breach); a person needs to be a
    platform admin.
    """
    if by is not None and not by.has_role(Role.PLATFORM_ADMIN):
        raise PermissionDeniedError("Only a platform admin can freeze a business unit.")
    if not reason.strip():
        raise DomainError("A freeze needs a reason that the people it stops will read.")
    current = DeploymentFreeze.objects.filter(business_unit=business_unit, lifted_at=None)
    if current.exists():
        raise ConflictError(f"{business_unit.name} is already under a deployment freeze.")
    freeze = DeploymentFreeze.objects.create(
        business_unit=business_unit,
        reason=reason.strip(),
        origin=origin,
        started_at=timezone.now(),
        created_by=by,
    )
    # A person's freeze, or the system's (a budget rule): either way a Decision to trace.
    decision_record(
        subject=freeze,
        kind=DecisionKind.FREEZE,
        outcome=DecisionOutcome.APPROVED,
        title=f"Freeze deployments in {business_unit.name}",
        rationale=freeze.reason,
        by=by,
        decided_as=Role.PLATFORM_ADMIN if by is not None else "",
        business_unit=business_unit,
        at=freeze.started_at,
    )
    return freeze


@transaction.atomic
def freeze_lift(*, freeze: DeploymentFreeze, by: User | None, reason: str) -> DeploymentFreeze:
    """End a freeze; the record stays, with who lifted it and why.

    ``by`` is None when the system lifts it (an approved budget exception, whose request
    holds who approved); a person needs to be a platform admin.
    """
    if by is not None and not by.has_role(Role.PLATFORM_ADMIN):
        raise PermissionDeniedError("Only a platform admin can lift a deployment freeze.")
    if freeze.lifted_at is not None:
        raise ConflictError(
            f"This freeze was already lifted on {freeze.lifted_at:%Y-%m-%d %H:%M} UTC."
        )
    if not reason.strip():
        raise DomainError("Say why the freeze is lifted.")
    freeze.lifted_at = timezone.now()
    freeze.lifted_by = by
    freeze.lift_reason = reason.strip()
    freeze.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    if by is not None:
        # A person's lift is a decision others may later need to trace (post-mortems will).
        decision_record(
            subject=freeze,
            kind=DecisionKind.FREEZE,
            outcome=DecisionOutcome.APPROVED,
            title=f"Lift the deployment freeze on {freeze.business_unit.name}",
            rationale=freeze.lift_reason,
            by=by,
            decided_as=Role.PLATFORM_ADMIN,
            business_unit=freeze.business_unit,
            evidence={"freeze_reason": freeze.reason, "since": freeze.started_at.isoformat()},
            at=freeze.lifted_at,
        )
    return freeze
