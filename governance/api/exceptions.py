"""Map domain errors to HTTP: 400 for bad input, 403 for a missing role, 409 for state."""

from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from governance.exceptions import DomainError


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response(exc.payload(), status=exc.http_status)
    return drf_exception_handler(exc, context)
