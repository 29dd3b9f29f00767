"""Single sign-on against a real OpenID Connect provider (oidc-provider-mock) on a free port.

Each flow is the browser's: the sign-in page's SSO button, the redirect to the provider's
authorize endpoint, its form submitted as the test person, and back to Capgov's callback,
which exchanges the code, checks the signed ID token against the provider's JWKS and reads
userinfo, all over HTTP to the provider's thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.test import Client
from oidc_provider_mock import run_server_in_thread

from governance.auth_oidc import oidc_user_sync
from governance.choices import Role
from governance.models import BusinessUnit, RoleAssignment, User
from tests.factories import PASSWORD, BusinessUnitFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]
GROUP_ROLES = [("capgov-finance", Role.FINANCE), ("capgov-admins", Role.PLATFORM_ADMIN)]
GROUP_UNITS = [("capgov-research", "RES"), ("capgov-ads", "ADS")]


@pytest.fixture(scope="module")
def provider():
    """The provider's base URL (its issuer); plain HTTP is allowed for it on loopback."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
        with run_server_in_thread() as server:
            yield f"http://localhost:{server.server_port}"


@pytest.fixture
def sso(provider, settings, db):
    cache.clear()  # the discovery document is cached per issuer
    settings.CAPGOV_OIDC_ENABLED = True
    settings.CAPGOV_OIDC_ISSUER = provider
    settings.OIDC_RP_CLIENT_ID = "capgov"
    settings.OIDC_RP_CLIENT_SECRET = "capgov-secret"
    for name in ("AUTHORIZATION", "TOKEN", "USER", "JWKS"):
        setattr(settings, f"OIDC_OP_{name}_ENDPOINT", "")
    settings.CAPGOV_OIDC_GROUP_ROLES = GROUP_ROLES
    settings.CAPGOV_OIDC_GROUP_UNITS = GROUP_UNITS
    BusinessUnitFactory(code="RES", name="Research")
    BusinessUnitFactory(code="ADS", name="Ads Ranking")
    return provider


def person_at_provider(provider: str, sub: str, **claims) -> None:
    response = requests.put(f"{provider}/users/{sub}", json=claims, timeout=5)
    assert response.status_code == 204, response.text


def sso_sign_in(client: Client, provider: str, sub: str, *, next_url: str = "", deny=False):
    """Click "Sign in with SSO", pick ``sub`` on the provider's form, follow it back."""
    start = client.get("/oidc/authenticate/", {"next": next_url} if next_url else {})
    assert start.status_code == 302
    authorize = start.url
    assert authorize.startswith(f"{provider}/oauth2/authorize?")
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["http://testserver/oidc/callback/"]
    assert "groups" not in query["scope"][0]  # the groups come as a claim, not a scope
    form = requests.get(authorize, timeout=5)
    assert form.status_code == 200
    assert 'name="sub"' in form.text
    data = {"action": "deny"} if deny else {"sub": sub}
    back = requests.post(authorize, data=data, allow_redirects=False, timeout=5)
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["Location"])
    assert callback.path == "/oidc/callback/"
    return client.get(callback.path, parse_qs(callback.query))


def roles_of(user: User) -> set[str]:
    return set(RoleAssignment.objects.filter(user=user).values_list("role", flat=True))


def units_of(user: User) -> set[str]:
    return set(user.business_units.values_list("code", flat=True))


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_sso_button_appears_only_when_sso_is_configured(sso, settings):
    page = Client().get("/login/?next=/costs/chargeback/").content.decode()
    assert "Sign in with SSO" in page
    assert 'href="/oidc/authenticate/?next=%2Fcosts%2Fchargeback%2F"' in page
    settings.CAPGOV_OIDC_ENABLED = False
    assert "Sign in with SSO" not in Client().get("/login/").content.decode()
    assert Client().get("/oidc/authenticate/").status_code == 404
    assert Client().get("/oidc/callback/?code=x&state=y").status_code == 404


def test_sso_code_flow_creates_the_person_with_roles_and_units(sso):
    person_at_provider(
        sso,
        "f-01",
        preferred_username="fiona",
        email="fiona@example.com",
        given_name="Fiona",
        family_name="Byrne",
        groups=["capgov-finance", "capgov-research", "unrelated"],
    )
    client = Client()
    response = sso_sign_in(client, sso, "f-01", next_url="/costs/chargeback/")
    assert response.status_code == 302
    assert response.url == "/costs/chargeback/"
    fiona = User.objects.get(username="fiona")
    assert (fiona.email, fiona.first_name, fiona.last_name) == (
        "fiona@example.com",
        "Fiona",
        "Byrne",
    )
    assert not fiona.has_usable_password()
    assert roles_of(fiona) == {Role.FINANCE}
    assert units_of(fiona) == {"RES"}
    assert int(client.session["_auth_user_id"]) == fiona.pk
    assert client.get("/costs/chargeback/").status_code == 200


def test_sso_username_falls_back_to_the_email_and_the_name_is_split(sso):
    person_at_provider(sso, "g-02", email="gil@example.com", name="Gil Ortega Ruiz", groups=[])
    assert sso_sign_in(Client(), sso, "g-02").url == "/"
    gil = User.objects.get(username="gil@example.com")
    assert (gil.first_name, gil.last_name) == ("Gil", "Ortega Ruiz")
    assert roles_of(gil) == set()


def test_sso_updates_its_roles_at_each_sign_in_and_never_touches_hand_granted_ones(sso):
    pat = UserFactory(username="pat", roles=[Role.APPROVER, Role.FINANCE])
    pat.business_units.add(BusinessUnit.objects.get(code="ADS"))
    person_at_provider(
        sso,
        "p-03",
        preferred_username="pat",
        email="pat@example.com",
        groups=["capgov-finance", "capgov-admins", "capgov-research", "capgov-ads"],
    )
    sso_sign_in(Client(), sso, "p-03")
    assert roles_of(pat) == {Role.APPROVER, Role.FINANCE, Role.PLATFORM_ADMIN}
    assert units_of(pat) == {"ADS", "RES"}
    assert set(pat.groups.values_list("name", flat=True)) == {
        "sso-role:platform_admin",
        "sso-unit:RES",
    }

    person_at_provider(sso, "p-03", preferred_username="pat", email="pat@example.com", groups=[])
    sso_sign_in(Client(), sso, "p-03")
    # What SSO granted went with the groups; what an admin granted stayed.
    assert roles_of(pat) == {Role.APPROVER, Role.FINANCE}
    assert units_of(pat) == {"ADS"}
    assert not pat.groups.exists()


def test_sso_links_an_existing_account_by_username_and_keeps_its_password(sso):
    rhea = UserFactory(username="rhea", email="old@example.com")
    person_at_provider(sso, "r-04", preferred_username="Rhea", email="rhea@example.com")
    sso_sign_in(Client(), sso, "r-04")
    rhea.refresh_from_db()
    assert User.objects.filter(username__iexact="rhea").count() == 1
    assert rhea.email == "rhea@example.com"
    assert rhea.check_password(PASSWORD)


def test_sso_refuses_claims_without_a_username_and_says_why(sso):
    person_at_provider(sso, "nobody", groups=["capgov-admins"])
    client = Client()
    response = sso_sign_in(client, sso, "nobody")
    assert response.status_code == 302
    assert response.url == "/login/"
    [message] = messages_of(response)
    assert "Single sign-on did not sign you in" in message
    assert "neither a username nor an e-mail address" in message
    assert "_auth_user_id" not in client.session
    assert not User.objects.exists()


def test_sso_denied_at_the_provider_says_so(sso):
    response = sso_sign_in(Client(), sso, "", deny=True)
    assert response.url == "/login/"
    assert "denied the request" in messages_of(response)[0]


def test_sso_refuses_a_deactivated_account(sso):
    UserFactory(username="gone", is_active=False)
    person_at_provider(sso, "x-05", preferred_username="gone", email="gone@example.com")
    client = Client()
    response = sso_sign_in(client, sso, "x-05")
    assert "your Capgov account is deactivated" in messages_of(response)[0]
    assert "_auth_user_id" not in client.session


def test_sso_refuses_an_id_token_from_another_issuer(sso, settings):
    # Endpoints given explicitly (no discovery), but the issuer named differently from the
    # one that signs the tokens.
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{sso}/oauth2/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{sso}/oauth2/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{sso}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{sso}/jwks"
    settings.CAPGOV_OIDC_ISSUER = "http://idp.example.com"
    person_at_provider(sso, "m-06", preferred_username="mallory", email="m@example.com")
    client = Client()
    response = sso_sign_in(client, sso, "m-06")
    assert "could not be checked" in messages_of(response)[0]
    assert not User.objects.filter(username="mallory").exists()


def test_sso_without_an_answering_provider_says_so(sso, settings):
    settings.CAPGOV_OIDC_ISSUER = "http://127.0.0.1:9"  # the discard port: nothing listens
    response = Client().get("/oidc/authenticate/")
    assert response.url == "/login/"
    assert "The sign-in service did not answer" in messages_of(response)[0]


def test_sso_callback_with_a_foreign_state_is_refused(sso):
    client = Client()
    client.get("/oidc/authenticate/")
    response = client.get("/oidc/callback/", {"code": "c", "state": "not-ours"})
    assert response.url == "/login/"
    assert "could not be checked" in messages_of(response)[0]


def test_password_sign_in_still_works_with_sso_on(sso):
    UserFactory(username="fred")
    response = Client().post("/login/", {"username": "fred", "password": PASSWORD})
    assert response.status_code == 302


def test_sync_leaves_unknown_units_out(sso, settings, caplog):
    settings.CAPGOV_OIDC_GROUP_UNITS = [("capgov-ghosts", "GHOST")]
    user = UserFactory(username="una")
    changes = oidc_user_sync(user=user, claims={"groups": "capgov-ghosts"})
    assert not changes
    assert units_of(user) == set()
    assert "business unit GHOST, which does not exist" in caplog.text


# --- configuration --------------------------------------------------------------------------


def settings_error(**env: str) -> str:
    """The error importing the settings with these variables, or '' if they load."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAPGOV_OIDC_")}
    result = subprocess.run(
        [sys.executable, "-c", "import governance.settings"],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stderr.strip().splitlines()[-1] if result.returncode else ""


def test_settings_refuse_half_configured_sso():
    error = settings_error(CAPGOV_OIDC_ISSUER="https://idp.example.com")
    assert "Single sign-on is half configured" in error
    assert "CAPGOV_OIDC_CLIENT_ID, CAPGOV_OIDC_CLIENT_SECRET" in error
    error = settings_error(CAPGOV_OIDC_CLIENT_ID="capgov", CAPGOV_OIDC_CLIENT_SECRET="s")
    assert "CAPGOV_OIDC_AUTHORIZATION_ENDPOINT" in error
    assert "(or CAPGOV_OIDC_ISSUER instead of the endpoints)" in error


def test_settings_refuse_an_unknown_role_in_the_group_mapping():
    error = settings_error(
        CAPGOV_OIDC_ISSUER="https://idp.example.com",
        CAPGOV_OIDC_CLIENT_ID="capgov",
        CAPGOV_OIDC_CLIENT_SECRET="s",
        CAPGOV_OIDC_GROUP_ROLES="capgov-finance=finance,capgov-root=root",
    )
    assert "CAPGOV_OIDC_GROUP_ROLES names unknown roles root" in error
    assert settings_error(CAPGOV_OIDC_GROUP_ROLES="no-equals-sign").endswith(
        "'no-equals-sign' is not key=value (e.g. group=role)."
    )


def test_settings_with_sso_configured_load():
    assert (
        settings_error(
            CAPGOV_OIDC_ISSUER="https://idp.example.com/",
            CAPGOV_OIDC_CLIENT_ID="capgov",
            CAPGOV_OIDC_CLIENT_SECRET="s",
            CAPGOV_OIDC_GROUP_ROLES="capgov-finance=finance",
            CAPGOV_OIDC_GROUP_UNITS="capgov-research=RES",
        )
        == ""
    )
