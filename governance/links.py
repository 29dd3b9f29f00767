"""Signed tokens for links sent by e-mail: one salt per purpose, so a token made for one
purpose is worthless for another.

A token says only *which* row and *what* action; whether it may still be used (expiry,
single use, revision) is the row's business, checked by the service that reads it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core import signing

APPROVAL_LINK_SALT = "capgov.governance.approval-link"
APPROVE = "approve"
REJECT = "reject"
ACTIONS = (APPROVE, REJECT)
_ACTION_CODES = {APPROVE: "a", REJECT: "r"}
_CODE_ACTIONS = {code: action for action, code in _ACTION_CODES.items()}


class LinkTamperedError(Exception):
    """The token was altered, truncated or made for another purpose."""


@dataclass(frozen=True)
class ApprovalLinkToken:
    link_id: uuid.UUID
    action: str

    @property
    def approve(self) -> bool:
        return self.action == APPROVE


def token_make(*, salt: str, payload: dict) -> str:
    return signing.dumps(payload, salt=salt, compress=False)


def token_read(*, salt: str, token: str) -> dict:
    try:
        payload = signing.loads(token, salt=salt)
    except signing.BadSignature as exc:
        raise LinkTamperedError(str(exc)) from exc
    if not isinstance(payload, dict):
        raise LinkTamperedError("The token does not carry a mapping.")
    return payload


def approval_token_make(*, link_id: uuid.UUID, action: str) -> str:
    """The URL-safe token for one action (approve or reject) of one e-mailed link."""
    if action not in _ACTION_CODES:
        raise ValueError(f"Unknown link action {action!r}; use approve or reject.")
    return token_make(
        salt=APPROVAL_LINK_SALT, payload={"l": str(link_id), "a": _ACTION_CODES[action]}
    )


def approval_token_read(token: str) -> ApprovalLinkToken:
    """The link and action a token names; ``LinkTamperedError`` if it is not genuine."""
    payload = token_read(salt=APPROVAL_LINK_SALT, token=token)
    link_id, code = payload.get("l"), payload.get("a")
    # A genuine signature over a payload of the wrong shape (another version's tokens, or a
    # key that leaked) is still not a link: only strings, a UUID and a known action code.
    if not isinstance(link_id, str) or not isinstance(code, str) or code not in _CODE_ACTIONS:
        raise LinkTamperedError("The token does not name a link and an action.")
    try:
        return ApprovalLinkToken(link_id=uuid.UUID(link_id), action=_CODE_ACTIONS[code])
    except ValueError as exc:
        raise LinkTamperedError("The token does not name a link and an action.") from exc
