"""What happened, by whom, from where: the audit log, and the count of e-mails sent."""

from __future__ import annotations

from typing import Any

from auditlog.models import AbstractLogEntry, LogEntryManager
from django.db import models

from governance.models.organisation import BusinessUnit


def _describe(
    entry: dict[str, Any], instance: models.Model, action: int | None, changes: dict | None
) -> None:
    """Fill in the entry's kind, sentence and unit, unless the caller gave them."""
    from governance.audit import audit_describe

    kind, summary, unit_id = audit_describe(instance=instance, action=action, changes=changes)
    entry.setdefault("kind", kind)
    entry.setdefault("summary", summary)
    entry.setdefault("business_unit_id", unit_id)


class AuditEntryManager(LogEntryManager):
    """django-auditlog writes model changes through ``log_create``; each entry also gets a
    kind, a sentence and the business unit it concerns, so the log reads (and filters)
    without decoding the changes."""

    def log_create(self, instance: models.Model, force_log: bool = False, **kwargs: Any):
        _describe(kwargs, instance, kwargs.get("action"), kwargs.get("changes"))
        return super().log_create(instance, force_log=force_log, **kwargs)

    def log_m2m_changes(self, changed_queryset, instance, operation, field_name, **kwargs):
        changes = {
            field_name: {
                "type": "m2m",
                "operation": operation,
                "objects": [str(related) for related in changed_queryset],
            }
        }
        _describe(kwargs, instance, AbstractLogEntry.Action.UPDATE, changes)
        return super().log_m2m_changes(changed_queryset, instance, operation, field_name, **kwargs)


class AuditEntry(AbstractLogEntry):
    """One thing that happened: a change to a tracked row (written by django-auditlog), or a
    domain event Capgov records itself (a token issued, the audit log exported).

    ``actor`` and ``remote_addr`` come from the request that caused it (empty when Capgov did
    it on its own, from a schedule or a command); ``cid`` is the request id, also carried by
    the Celery tasks that request enqueued. ``kind`` is ``<app>.<model>.<what>`` for changes
    (``costs.chargebackperiod.published``) or a domain event's (``governance.apitoken.created``).
    """

    kind = models.CharField(max_length=100, db_index=True)
    summary = models.TextField(blank=True)
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = AuditEntryManager()

    class Meta(AbstractLogEntry.Meta):
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        ordering = ["-timestamp", "-pk"]
        indexes = [
            models.Index(fields=["actor", "timestamp"], name="audit_actor_time"),
            models.Index(fields=["content_type", "timestamp"], name="audit_model_time"),
            models.Index(fields=["business_unit", "timestamp"], name="audit_unit_time"),
        ]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M} {self.kind}: {self.summary}"


class MailOutcome(models.TextChoices):
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class MailCount(models.Model):
    """How many e-mails were handed to the mail server (or refused) on one day.

    Kept by the e-mail backend wrapper (``governance.mail_backend``) whichever process sends,
    so ``/metrics`` reads the same totals from every web and worker process.
    """

    day = models.DateField()
    outcome = models.CharField(max_length=8, choices=MailOutcome.choices)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-day", "outcome"]
        constraints = [
            models.UniqueConstraint(fields=["day", "outcome"], name="one_mail_count_per_day")
        ]

    def __str__(self) -> str:
        return f"{self.day}: {self.count} {self.outcome}"
