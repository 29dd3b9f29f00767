"""Celery tasks for the registry: thin wrappers that take ids and call one service."""

from __future__ import annotations

import smtplib
from datetime import date, timedelta

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from registry import services

# A database busy or restarting for a moment: try the derivation again a little later.
DB_RETRY = {
    "autoretry_for": (OperationalError,),
    "max_retries": 3,
    "retry_backoff": 60,
    "retry_jitter": True,
}


@shared_task(
    acks_late=True,
    autoretry_for=(smtplib.SMTPException, OSError),
    max_retries=5,
    retry_backoff=30,
    retry_jitter=True,
)
def deployment_approvers_mail_task(version_id: int, roles: list[str], asked_by_id: int) -> int:
    """E-mail the holders of the roles a deployment's cost tier asks for."""
    return services.deployment_approvers_mail(
        version_id=version_id, roles=roles, asked_by_id=asked_by_id
    )


def _last_days(days_back: int) -> list[date]:
    # The full UTC days before today: a day's usage is complete once it is over, and going
    # back a few days picks up usage that the sync read late.
    today = timezone.now().date()
    return [today - timedelta(days=n) for n in range(days_back, 0, -1)]


@shared_task(acks_late=True, **DB_RETRY)
def slo_measurements_from_usage_task(days_back: int = 3) -> int:
    """Daily (beat): availability measurements from the last days' endpoint usage."""
    return services.slo_measurements_from_usage(days=_last_days(days_back))


@shared_task(acks_late=True, **DB_RETRY)
def pool_usage_from_endpoints_task(days_back: int = 3) -> int:
    """Daily (beat): GPU-hours per pool and business unit from the last days' endpoints."""
    return services.pool_usage_from_endpoints(days=_last_days(days_back))


@shared_task(acks_late=True, **DB_RETRY)
def retirement_evaluate_task() -> int:
    """Beat, daily: score every endpoint against the retirement policies; open new cases."""
    from registry.retirement_services import retirement_evaluate

    return len(retirement_evaluate().opened)


@shared_task(acks_late=True, **DB_RETRY)
def retirement_cases_due_task() -> int:
    """Beat, hourly: remind owners before the grace period ends, then run the actions."""
    from registry.retirement_services import retirement_cases_due

    due = retirement_cases_due()
    return len(due.reminded) + len(due.acted)


@shared_task(
    acks_late=True,
    autoretry_for=(smtplib.SMTPException, OSError),
    max_retries=5,
    retry_backoff=30,
    retry_jitter=True,
)
def retirement_notify_task(case_id: int, what: str) -> int:
    """E-mail a retirement case's owner: it opened (with keep / retire links), or a reminder."""
    from registry.retirement_services import retirement_notify

    return retirement_notify(case_id=case_id, what=what)
