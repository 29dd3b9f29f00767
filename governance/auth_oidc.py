"""Single sign-on through OpenID Connect (mozilla-django-oidc) and the sign-in page.

Off unless ``CAPGOV_OIDC_ENABLED`` (a client id and secret with the issuer or the endpoints).
With only the issuer, the endpoints come from its discovery document, read when first needed
and kept in the cache for an hour.

A person is found by username: the ``preferred_username`` claim, else the e-mail address.
Groups in the ``CAPGOV_OIDC_GROUPS_CLAIM`` claim (of the userinfo answer or the ID token) grant
roles and business units through ``CAPGOV_OIDC_GROUP_ROLES`` / ``CAPGOV_OIDC_GROUP_UNITS``.
What single sign-on granted is marked with an auth group named ``sso-role:<role>`` or
``sso-unit:<code>`` (RoleAssignment has no field for where a role came from), so each sign-in
adds what the groups now give and removes only what an earlier sign-in added; a role or unit
an admin granted by hand is never removed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import urlencode
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from governance.models import BusinessUnit, RoleAssignment, User

logger = logging.getLogger(__name__)

DISCOVERY_SECONDS = 3600
ROLE_MARK = "sso-role:"
UNIT_MARK = "sso-unit:"
USERNAME_MAX = 150


class SsoError(Exception):
    """Single sign-on could not go ahead; the message is shown on the sign-in page."""


# --- configuration --------------------------------------------------------------------------


def oidc_endpoints() -> dict[str, str]:
    """The provider's four endpoints: from settings where given, else from discovery."""
    given = {
        "authorization_endpoint": settings.OIDC_OP_AUTHORIZATION_ENDPOINT,
        "token_endpoint": settings.OIDC_OP_TOKEN_ENDPOINT,
        "userinfo_endpoint": settings.OIDC_OP_USER_ENDPOINT,
        "jwks_uri": settings.OIDC_OP_JWKS_ENDPOINT,
    }
    if all(given.values()):
        return given
    document = _discovery(settings.CAPGOV_OIDC_ISSUER)
    endpoints = {name: value or document.get(name, "") for name, value in given.items()}
    missing = [name for name, value in endpoints.items() if not value]
    if missing:
        raise SsoError(
            f"The sign-in service's discovery document lacks {', '.join(missing)}; set "
            "the CAPGOV_OIDC_..._ENDPOINT variables for them."
        )
    return endpoints


def _discovery(issuer: str) -> dict[str, Any]:
    key = f"oidc-discovery:{issuer}"
    try:
        document = cache.get(key)
    except Exception:  # a stopped cache only costs a fetch
        document = None
    if document is not None:
        return document
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SsoError(f"The sign-in service did not answer at {url} ({exc}).") from exc
    if not isinstance(document, dict):
        raise SsoError(f"{url} did not answer with a discovery document.")
    if str(document.get("issuer", "")).rstrip("/") != issuer:
        raise SsoError(
            f"{url} describes another issuer ({document.get('issuer')!r}, not {issuer!r}); "
            "check CAPGOV_OIDC_ISSUER."
        )
    try:
        cache.set(key, document, DISCOVERY_SECONDS)
    except Exception:
        logger.warning("OIDC discovery document not cached: the cache did not answer")
    return document


def login_context(request: HttpRequest) -> dict[str, Any]:
    """What the sign-in page needs to offer single sign-on (``sso`` is None when it is off)."""
    if not settings.CAPGOV_OIDC_ENABLED:
        return {"sso": None}
    url = reverse("oidc_authentication_init")
    next_url = request.POST.get("next") or request.GET.get("next")
    if next_url:
        url = f"{url}?{urlencode({'next': next_url})}"
    return {"sso": {"label": settings.CAPGOV_OIDC_LABEL, "url": url}}


# --- claims -> person, roles and units -------------------------------------------------------


def oidc_username(claims: dict[str, Any]) -> str:
    """``preferred_username``, else the e-mail address; empty when the claims have neither."""
    return str(claims.get("preferred_username") or claims.get("email") or "").strip()


def oidc_groups(claims: dict[str, Any]) -> set[str]:
    """The group names in the configured claim (a list, or one name as a string)."""
    value = claims.get(settings.CAPGOV_OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        return {value}
    if isinstance(value, list | tuple):
        return {str(group) for group in value}
    return set()


def _names(claims: dict[str, Any]) -> tuple[str, str]:
    first, last = claims.get("given_name"), claims.get("family_name")
    if first or last:
        return str(first or "")[:150], str(last or "")[:150]
    full = str(claims.get("name") or "").strip()
    first, _, last = full.partition(" ")
    return first[:150], last.strip()[:150]


@dataclass
class SsoChanges:
    """What one sign-in changed in a person's roles and business units."""

    roles_granted: list[str] = field(default_factory=list)
    roles_removed: list[str] = field(default_factory=list)
    units_joined: list[str] = field(default_factory=list)
    units_left: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.roles_granted, self.roles_removed, self.units_joined, self.units_left))


def _mark(name: str) -> Group:
    return Group.objects.get_or_create(name=name)[0]


@transaction.atomic
def oidc_user_sync(*, user: User, claims: dict[str, Any]) -> SsoChanges:
    """Bring the person's SSO-granted roles and units in line with their groups now.

    Only what an earlier sign-in granted (marked ``sso-role:``/``sso-unit:``) is removed; a
    role or unit the person already held by hand is left unmarked, so it stays when the
    group goes.
    """
    groups = oidc_groups(claims)
    changes = SsoChanges()
    marked = set(user.groups.filter(name__startswith="sso-").values_list("name", flat=True))

    wanted_roles = {role for group, role in settings.CAPGOV_OIDC_GROUP_ROLES if group in groups}
    managed_roles = {name.removeprefix(ROLE_MARK) for name in marked if name.startswith(ROLE_MARK)}
    held_roles = set(user.role_assignments.values_list("role", flat=True))
    for role in sorted(wanted_roles - held_roles):
        RoleAssignment.objects.create(user=user, role=role)
        user.groups.add(_mark(ROLE_MARK + role))
        changes.roles_granted.append(role)
    for role in sorted(managed_roles - wanted_roles):
        user.role_assignments.filter(role=role).delete()
        user.groups.remove(_mark(ROLE_MARK + role))
        changes.roles_removed.append(role)

    wanted_codes = {
        code.upper() for group, code in settings.CAPGOV_OIDC_GROUP_UNITS if group in groups
    }
    units = {unit.code: unit for unit in BusinessUnit.objects.filter(code__in=wanted_codes)}
    for code in sorted(wanted_codes - units.keys()):
        logger.warning("SSO group maps to business unit %s, which does not exist", code)
    managed_codes = {name.removeprefix(UNIT_MARK) for name in marked if name.startswith(UNIT_MARK)}
    held_codes = set(user.business_units.values_list("code", flat=True))
    for code in sorted(units.keys() - held_codes):
        user.business_units.add(units[code])
        user.groups.add(_mark(UNIT_MARK + code))
        changes.units_joined.append(code)
    for code in sorted(managed_codes - units.keys()):
        user.business_units.remove(*BusinessUnit.objects.filter(code=code))
        user.groups.remove(_mark(UNIT_MARK + code))
        changes.units_left.append(code)

    for cached in ("role_set", "scoped_business_unit_ids"):
        user.__dict__.pop(cached, None)
    if changes:
        logger.info("SSO sign-in of %s changed roles and units: %s", user.username, changes)
    return changes


# --- mozilla-django-oidc, adapted ------------------------------------------------------------


class OidcBackend(OIDCAuthenticationBackend):
    """Answers only the SSO callback (which passes a nonce), and only when SSO is on."""

    def authenticate(self, request, **kwargs):
        if not settings.CAPGOV_OIDC_ENABLED or request is None or "nonce" not in kwargs:
            return None
        endpoints = oidc_endpoints()
        self.OIDC_OP_TOKEN_ENDPOINT = endpoints["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = endpoints["userinfo_endpoint"]
        self.OIDC_OP_JWKS_ENDPOINT = endpoints["jwks_uri"]
        return super().authenticate(request, **kwargs)

    def retrieve_matching_jwk(self, token):
        if "kid" in jwt.get_unverified_header(token):
            return super().retrieve_matching_jwk(token)
        # The key id is optional in JOSE: a token without one matches only when the provider
        # publishes a single signing key for the algorithm.
        response = requests.get(
            self.OIDC_OP_JWKS_ENDPOINT,
            verify=self.get_settings("OIDC_VERIFY_SSL", True),
            timeout=settings.OIDC_TIMEOUT,
        )
        response.raise_for_status()
        keys = [
            key
            for key in response.json().get("keys", [])
            if key.get("use", "sig") == "sig"
            and key.get("alg", self.OIDC_RP_SIGN_ALGO) == self.OIDC_RP_SIGN_ALGO
        ]
        if len(keys) != 1:
            raise SuspiciousOperation("The ID token names no key and the provider has several.")
        return jwt.PyJWK(keys[0])

    def verify_token(self, token, **kwargs):
        payload = super().verify_token(token, **kwargs)
        if "nonce" in kwargs:  # the ID token: it must come from our issuer, for us
            issuer = settings.CAPGOV_OIDC_ISSUER
            if issuer and str(payload.get("iss", "")).rstrip("/") != issuer:
                raise SuspiciousOperation("The ID token was issued by another provider.")
            audience = payload.get("aud")
            audiences = audience if isinstance(audience, list) else [audience]
            if settings.OIDC_RP_CLIENT_ID not in audiences:
                raise SuspiciousOperation("The ID token was issued for another client.")
        return payload

    def get_userinfo(self, access_token, id_token, payload):
        """The userinfo claims over the ID token's (some providers put groups only there)."""
        info = super().get_userinfo(access_token, id_token, payload)
        if info.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("The userinfo answer is about someone else.")
        return {**payload, **info}

    def verify_claims(self, claims):
        username = oidc_username(claims)
        if not claims.get("sub") or not username:
            self._problem("the sign-in service sent neither a username nor an e-mail address")
            return False
        if len(username) > USERNAME_MAX:
            self._problem(f"the username is longer than {USERNAME_MAX} characters")
            return False
        return True

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(username__iexact=oidc_username(claims))

    def create_user(self, claims):
        user = self.UserModel(username=oidc_username(claims))
        user.set_unusable_password()
        return self._update(user, claims)

    def update_user(self, user, claims):
        return self._update(user, claims)

    def get_or_create_user(self, access_token, id_token, payload):
        user = super().get_or_create_user(access_token, id_token, payload)
        if user is None and not settings.OIDC_CREATE_USER:
            self._problem("there is no Capgov account with that username yet")
        return user

    @transaction.atomic
    def _update(self, user: User, claims: dict[str, Any]) -> User:
        user.email = str(claims.get("email") or user.email)[:254]
        first, last = _names(claims)
        user.first_name, user.last_name = first or user.first_name, last or user.last_name
        user.save()
        oidc_user_sync(user=user, claims=claims)
        return user

    def _problem(self, text: str) -> None:
        self.request.capgov_sso_problem = text


@method_decorator(login_not_required, name="dispatch")
class SsoStartView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider's sign-in page."""

    def get(self, request):
        if not settings.CAPGOV_OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = oidc_endpoints()["authorization_endpoint"]
        except SsoError as exc:
            return sso_failed(request, str(exc))
        return super().get(request)


@method_decorator(login_not_required, name="dispatch")
class SsoCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back; signs the person in or says why not."""

    def get(self, request):
        if not settings.CAPGOV_OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        try:
            return super().get(request)
        except SsoError as exc:
            return sso_failed(request, str(exc))
        except requests.RequestException as exc:
            logger.warning("SSO callback: the provider did not answer: %s", exc)
            return sso_failed(request, "the sign-in service did not answer")
        except SuspiciousOperation as exc:
            logger.warning("SSO callback refused: %s", exc)
            return sso_failed(
                request,
                "the answer from the sign-in service could not be checked (the sign-in may "
                "have been started in another browser, or taken too long)",
            )

    def login_failure(self):
        request = self.request
        reason = getattr(request, "capgov_sso_problem", "")
        if request.GET.get("error"):
            reason = request.GET.get("error_description") or request.GET["error"]
        user = getattr(self, "user", None)
        if user is not None and not user.is_active:
            reason = "your Capgov account is deactivated"
        return sso_failed(request, reason or "the sign-in service did not confirm who you are")


def sso_failed(request: HttpRequest, reason: str) -> HttpResponse:
    messages.error(
        request,
        f"Single sign-on did not sign you in: {reason}. Try again, or sign in with your "
        "Capgov password; if it keeps failing, ask a platform admin to check the SSO settings.",
    )
    return HttpResponseRedirect(reverse("login"))


class LoginView(auth_views.LoginView):
    """Django's sign-in page, offering single sign-on when it is configured."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(login_context(self.request))
        return context
