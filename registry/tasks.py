"""Celery tasks for the registry: thin wrappers that take ids and call one service."""

from __future__ import annotations

import smtplib

from celery import shared_task

from registry import services


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
