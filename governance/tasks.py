"""Celery tasks for governance: thin wrappers that take ids and call one service each."""

from __future__ import annotations

import smtplib

from celery import shared_task

from governance import services

# A mail server that is down or refuses for a while: try again with growing pauses.
MAIL_RETRY = {
    "autoretry_for": (smtplib.SMTPException, OSError),
    "max_retries": 5,
    "retry_backoff": 30,
    "retry_backoff_max": 30 * 60,
    "retry_jitter": True,
}


@shared_task(acks_late=True, **MAIL_RETRY)
def approval_link_mail_task(link_id: str) -> bool:
    """E-mail one approver their links. Idempotent: a used or superseded link is not sent."""
    return services.approval_link_mail(link_id=link_id)


@shared_task(acks_late=True, **MAIL_RETRY)
def approval_request_outcome_mail_task(request_id: int) -> bool:
    """Tell the requester how their request ended."""
    return services.approval_request_outcome_mail(request_id=request_id)


@shared_task(acks_late=True)
def approval_steps_escalate() -> int:
    """Every 15 minutes (beat): escalate steps that waited past their due time."""
    return services.approval_steps_escalate()


@shared_task(acks_late=True)
def approval_requests_expire() -> int:
    """Beat: pending requests past 'needed by' expire."""
    return services.approval_requests_expire()


@shared_task(acks_late=True, **MAIL_RETRY)
def conflict_notify_task(conflict_id: int, target: str) -> int:
    """E-mail one escalation level of a capacity conflict."""
    from governance.services.conflicts import conflict_notify

    return len(conflict_notify(conflict_id=conflict_id, target=target))


@shared_task(acks_late=True)
def conflicts_escalate_task() -> int:
    """Beat: capacity conflicts undecided past their due time go one level up their path."""
    from governance.services.conflicts import conflicts_escalate

    return conflicts_escalate()
