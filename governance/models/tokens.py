"""API tokens: how integrations (CI, deploy tools, BI) call the REST API as a person."""

from __future__ import annotations

from django.db import models

from governance.models.organisation import User


class TokenScope(models.TextChoices):
    """What a token may do: read (safe methods only) or also write."""

    READ = "read", "Read only"
    WRITE = "write", "Read and write"


class ApiToken(models.Model):
    """A key that acts as its owner through ``Authorization: Token <key>``, within its scope.

    Only a SHA-256 hash of the key is stored (the key is shown once, when the token is made);
    ``prefix`` is its first characters, so a person can tell their tokens apart. A token
    stops working when it expires or is revoked; the row stays as history.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'CI deploy'.")
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=TokenScope.choices, default=TokenScope.READ)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "revoked_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.scope})"

    @property
    def writes(self) -> bool:
        return self.scope == TokenScope.WRITE
