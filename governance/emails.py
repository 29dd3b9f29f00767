"""E-mail: one template pair (text and HTML) per message, sent through Django's backend."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def absolute_url(path: str) -> str:
    """A link for a mail: the site's public address (``CAPGOV_BASE_URL``) plus ``path``."""
    return f"{settings.CAPGOV_BASE_URL.rstrip('/')}/{path.lstrip('/')}"


def mail_send(*, to: list[str], subject: str, template: str, context: dict[str, Any]) -> int:
    """Render ``governance/email/<template>.txt`` and ``.html`` and send both parts.

    Raises what the backend raises (``smtplib.SMTPException``, ``OSError``), so a Celery
    task can retry.
    """
    context = {"base_url": settings.CAPGOV_BASE_URL.rstrip("/"), **context}
    text = render_to_string(f"governance/email/{template}.txt", context)
    html = render_to_string(f"governance/email/{template}.html", context)
    message = EmailMultiAlternatives(
        subject=subject.replace("\n", " ")[:200],
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
    )
    message.attach_alternative(html, "text/html")
    return message.send()
