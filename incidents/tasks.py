"""Celery tasks for incidents: thin wrappers that call one service."""

from __future__ import annotations

from celery import shared_task

from incidents.actions import RemindersFailedError, actions_remind


@shared_task(
    acks_late=True,
    autoretry_for=(RemindersFailedError,),
    max_retries=5,
    retry_backoff=60,
    retry_jitter=True,
)
def action_items_remind_task() -> dict[str, list[int]]:
    """Beat, daily: remind owners of action items due soon or overdue (each at most once)."""
    result = actions_remind()
    if result["failed"]:
        # Those were not marked: a retry sends them, and only them.
        raise RemindersFailedError(f"Reminders not sent for action items {result['failed']}.")
    return result
