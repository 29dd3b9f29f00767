"""API authentication with Capgov's own tokens, and the scope they carry.

``Authorization: Token <key>`` with a key made at ``/account/tokens/`` (or by
``manage.py token_create``). An unknown, revoked or expired key is a 401 that says which; a
read-scope token may only read.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS

from governance.audit import audit_actor_set, client_address
from governance.tokens import TokenRefusedError, api_token_authenticate

READ_SCOPE_MESSAGE = (
    "This token has the read scope: it may only read (GET, HEAD, OPTIONS). "
    "Create a token with the write scope at /account/tokens/ to make changes."
)


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Token <key>``: the token's owner, with the token as ``request.auth``.

    The scope is checked here rather than by a permission class: views that name their own
    ``permission_classes`` (imports, syncs, statements) replace the default list, and a read
    token must not write through them either.
    """

    keyword = "Token"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:  # the keyword, then the key
            raise exceptions.AuthenticationFailed(
                "Invalid token header: send `Authorization: Token <key>`, the key without spaces."
            )
        try:
            key = parts[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed(
                "Invalid token header: the key has characters no Capgov key has."
            ) from exc
        try:
            token = api_token_authenticate(key=key, ip=client_address(request))
        except TokenRefusedError as exc:
            raise exceptions.AuthenticationFailed(exc.message) from exc
        if not token.writes and request.method not in SAFE_METHODS:
            raise exceptions.PermissionDenied(READ_SCOPE_MESSAGE)
        audit_actor_set(user=token.user)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes the token: ``Authorization: Token <key>``."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix=ApiTokenAuthentication.keyword
        )
