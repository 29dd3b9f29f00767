"""The one exception family for domain rules. The API maps each kind to an HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    """A request that breaks a business rule; the message is shown to the user as is."""

    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def payload(self) -> dict:
        """The API body: ``detail`` plus whatever a subclass adds for machines to read."""
        return {"detail": self.message}


class PermissionDeniedError(DomainError):
    http_status = 403


class ConflictError(DomainError):
    """The request is valid but the current state does not allow it."""

    http_status = 409
