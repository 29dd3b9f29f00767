"""Map domain errors to HTTP: 400 for bad input, 403 for a missing role, 409 for state."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from governance.exceptions import DomainError


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response(exc.payload(), status=exc.http_status)
    return drf_exception_handler(exc, context)


class ErrorSerializer(serializers.Serializer):
    """A refused request: ``detail`` says what is wrong and how to fix it. When fields of the
    request are wrong, each one is named instead with its messages, e.g.
    ``{"owner": ["Object with username=x does not exist."]}``."""

    detail = serializers.CharField(required=False)
