"""The e-mail backend in front of the real one: it counts what was sent and what failed.

Every mail Capgov sends (approvals, outcomes, conflicts, budgets, statements, retirement and
action-item reminders) goes through Django's backend, so this one place sees them all, in
whichever web or worker process they leave from. The counts live in the database
(``MailCount``, one row per day and outcome) for ``/metrics`` to read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from governance.models import MailCount, MailOutcome

logger = logging.getLogger(__name__)


def mail_count_add(*, outcome: MailOutcome | str, count: int) -> None:
    """Add ``count`` messages to today's total for ``outcome``; never fails the send.

    Inside a savepoint, so a failed write cannot break the caller's transaction.
    """
    if count <= 0:
        return
    day = timezone.now().date()
    try:
        with transaction.atomic():
            rows = MailCount.objects.filter(day=day, outcome=outcome)
            if rows.update(count=F("count") + count):
                return
            try:
                with transaction.atomic():
                    MailCount.objects.create(day=day, outcome=outcome, count=count)
            except IntegrityError:  # another process made today's row first
                rows.update(count=F("count") + count)
    except DatabaseError:
        logger.warning("could not count %s %s e-mail(s)", count, outcome, exc_info=True)


class CountingEmailBackend(BaseEmailBackend):
    """Sends through ``settings.CAPGOV_EMAIL_BACKEND`` and counts each message's outcome."""

    def __init__(self, fail_silently: bool = False, **kwargs) -> None:
        super().__init__(fail_silently=fail_silently)
        self.inner = get_connection(
            settings.CAPGOV_EMAIL_BACKEND, fail_silently=fail_silently, **kwargs
        )

    def open(self):
        return self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        messages = list(email_messages)
        try:
            sent = self.inner.send_messages(messages) or 0
        except Exception:
            mail_count_add(outcome=MailOutcome.FAILED, count=len(messages))
            raise
        mail_count_add(outcome=MailOutcome.SENT, count=sent)
        mail_count_add(outcome=MailOutcome.FAILED, count=len(messages) - sent)
        return sent
