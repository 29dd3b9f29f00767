"""E-mail: one template pair (text and HTML) per message, sent through Django's backend."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def absolute_url(path: str) -> str:
    """A link for a mail: the site's public address (``CAPGOV_BASE_URL``) plus ``path``."""
    return f"{settings.CAPGOV_BASE_URL.rstrip('/')}/{path.lstrip('/')}"


SUBJECT_MAX = 200
# Unicode categories that must never reach a header: control characters (CR, LF, NUL, ...),
# format characters (bidi overrides that disguise a subject), unpaired surrogates, private
# use and unassigned code points, and the line and paragraph separators.
_SUBJECT_DROP = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def subject_clean(subject: str) -> str:
    """One line of printable text for a Subject header, at most ``SUBJECT_MAX`` characters.

    Every control or separator character becomes a space and runs of spaces collapse, so a
    title or accelerator with a CR or LF in it can neither inject a header nor make Django
    refuse the message (``BadHeaderError``): the mail still goes out.
    """
    text = "".join(" " if unicodedata.category(c) in _SUBJECT_DROP else c for c in str(subject))
    text = re.sub(r"\s+", " ", text).strip()
    return text[:SUBJECT_MAX].rstrip()


def mail_send(*, to: list[str], subject: str, template: str, context: dict[str, Any]) -> int:
    """Render ``governance/email/<template>.txt`` and ``.html`` and send both parts.

    Raises what the backend raises (``smtplib.SMTPException``, ``OSError``), so a Celery
    task can retry.
    """
    context = {"base_url": settings.CAPGOV_BASE_URL.rstrip("/"), **context}
    text = render_to_string(f"governance/email/{template}.txt", context)
    html = render_to_string(f"governance/email/{template}.html", context)
    message = EmailMultiAlternatives(
        subject=subject_clean(subject),
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
    )
    message.attach_alternative(html, "text/html")
    return message.send()
