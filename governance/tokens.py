"""API tokens: issue, revoke, and check a key presented to the API.

A key is ``cg_`` and 40 random URL-safe characters; only its SHA-256 is stored (a key has 240
random bits, so a fast hash is enough: nothing to brute-force). It is shown once, when made.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from governance.audit import audit_record
from governance.choices import Role
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import ApiToken, AuditEntry, TokenScope, User

KEY_START = "cg_"
PREFIX_LENGTH = 10  # "cg_" and 7 characters: enough to tell a person's tokens apart
MAX_DAYS = 730
NAME_MAX = 100
# last_used_at is rewritten at most this often, so a busy integration costs no extra writes.
LAST_USED_EVERY = timedelta(minutes=5)
TOKENS_PAGE = "/account/tokens/"


class TokenRefusedError(DomainError):
    """A key the API does not accept (unknown, revoked, expired); the API answers 401."""

    http_status = 401


def api_token_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _may_manage(*, token_user: User, by: User) -> bool:
    return by.pk == token_user.pk or by.has_role(Role.PLATFORM_ADMIN)


@transaction.atomic
def api_token_create(
    *, user: User, name: str, scope: str, days: int, by: User | None
) -> tuple[ApiToken, str]:
    """Issue a token acting as ``user``; returns it and its key (the only time it is seen).

    ``by`` is the person asking, who may only make their own; None is an operator at the
    command line (``manage.py token_create``), who may make one for anybody.
    """
    if by is not None and by.pk != user.pk:
        raise PermissionDeniedError("You can create API tokens for yourself only.")
    if not user.is_active:
        raise DomainError(f"{user.username} is deactivated; an API token would not work.")
    name = " ".join(str(name).split())
    if not name:
        raise DomainError("Name the token after what will use it, e.g. 'CI deploy gate'.")
    if len(name) > NAME_MAX:
        raise DomainError(f"A token name has at most {NAME_MAX} characters.")
    if scope not in TokenScope.values:
        raise DomainError(f"Unknown scope {scope!r}; choose read or write.")
    if not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise DomainError(f"A token lasts from 1 to {MAX_DAYS} days; {days!r} is outside that.")
    now = timezone.now()
    key = KEY_START + secrets.token_urlsafe(30)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=key[:PREFIX_LENGTH],
        key_hash=api_token_key_hash(key),
        scope=scope,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    issued = f"Issued API token “{name}” ({token.prefix}…, {scope} scope) to {user.username}"
    audit_record(
        kind="governance.apitoken.created",
        summary=f"{issued}; it expires {_when(token.expires_at)}"
        + ("" if by is not None else " (manage.py token_create)"),
        subject=token,
        actor=by,
        action=AuditEntry.Action.CREATE,
        data={
            "user": user.username,
            "prefix": token.prefix,
            "scope": scope,
            "expires_at": token.expires_at.isoformat(),
        },
    )
    return token, key


@transaction.atomic
def api_token_revoke(*, token: ApiToken, by: User) -> ApiToken:
    """Stop a token working at once: its owner, or any platform admin."""
    if not _may_manage(token_user=token.user, by=by):
        raise PermissionDeniedError("Only the token's owner or a platform admin can revoke it.")
    token = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
    if token.revoked_at is not None:
        raise ConflictError(f"This token was already revoked on {_when(token.revoked_at)}.")
    token.revoked_at = timezone.now()
    token.revoked_by = by
    token.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(
        kind="governance.apitoken.revoked",
        summary=f"Revoked API token “{token.name}” ({token.prefix}…) of {token.user.username}",
        subject=token,
        actor=by,
        data={"user": token.user.username, "prefix": token.prefix},
    )
    return token


def api_token_authenticate(*, key: str, ip: str | None = None) -> ApiToken:
    """The token a presented key belongs to, if it still works; records when it was used.

    Raises ``TokenRefusedError`` saying why not, and what to do about it.
    """
    try:
        token = ApiToken.objects.select_related("user").get(key_hash=api_token_key_hash(key))
    except ApiToken.DoesNotExist as exc:
        raise TokenRefusedError(
            "Invalid token: no API token has this key. Check that the whole key was copied "
            f"(it starts with {KEY_START}), or create one at {TOKENS_PAGE}."
        ) from exc
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRefusedError(
            f"This API token ({token.prefix}…) was revoked on {_when(token.revoked_at)}; "
            f"create a new one at {TOKENS_PAGE}."
        )
    if token.expires_at <= now:
        raise TokenRefusedError(
            f"This API token ({token.prefix}…) expired on {_when(token.expires_at)}; "
            f"create a new one at {TOKENS_PAGE}."
        )
    if not token.user.is_active:
        raise TokenRefusedError(f"The owner of this API token ({token.prefix}…) is deactivated.")
    if token.last_used_at is None or token.last_used_at <= now - LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
        token.last_used_at, token.last_used_ip = now, ip
    return token


def api_token_list(*, user: User) -> QuerySet[ApiToken]:
    """A person's own tokens, newest first, revoked and expired ones included."""
    return ApiToken.objects.filter(user=user).select_related("revoked_by")


def api_token_list_revocable(*, user: User) -> QuerySet[ApiToken]:
    """The tokens ``user`` may revoke (``api_token_revoke``): their own, or any for a platform
    admin."""
    tokens = ApiToken.objects.select_related("user")
    return tokens if user.has_role(Role.PLATFORM_ADMIN) else tokens.filter(user=user)


def api_token_list_all(*, user: User) -> QuerySet[ApiToken]:
    """Every person's tokens that still work, for a platform admin (nothing for others)."""
    if not user.has_role(Role.PLATFORM_ADMIN):
        return ApiToken.objects.none()
    return (
        ApiToken.objects.filter(revoked_at=None, expires_at__gt=timezone.now())
        .exclude(user=user)
        .select_related("user")
        .order_by("user__username", "-created_at")
    )
