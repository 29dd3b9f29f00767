"""API tokens: a hash kept, the key shown once, scopes enforced on every endpoint, expiry and
revocation answered with a clear 401, the page, the API and the command."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import ApiToken, AuditEntry
from governance.tokens import (
    LAST_USED_EVERY,
    api_token_authenticate,
    api_token_create,
    api_token_key_hash,
    api_token_revoke,
)
from tests.factories import PASSWORD, OrgFactory, UserFactory

NOW = dt.datetime(2026, 10, 5, 9, 0, tzinfo=dt.UTC)
UNITS = "/api/v1/business-units/"
REQUESTS = "/api/v1/approval-requests/"
IMPORTS = "/api/v1/imports/"
PAGE = "/account/tokens/"


@pytest.fixture
def org(db, time_machine):
    time_machine.move_to(NOW, tick=False)
    return OrgFactory.build_org()


def api_with(key: str, **extra) -> APIClient:
    client = APIClient(**extra)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def issue(user, scope: str = "read", days: int = 30, name: str = "CI deploy gate"):
    return api_token_create(user=user, name=name, scope=scope, days=days, by=user)


# --- the model and the service -------------------------------------------------------------


def test_api_token_create_keeps_only_a_hash_and_a_prefix(org):
    token, key = issue(org.researcher)
    assert key.startswith("cg_")
    assert len(key) == 43
    assert token.key_hash == api_token_key_hash(key) != key
    assert token.prefix == key[:10]
    assert key not in repr(list(ApiToken.objects.values()))
    assert (token.scope, token.expires_at, token.last_used_at) == (
        "read",
        NOW + dt.timedelta(days=30),
        None,
    )
    assert str(token) == f"CI deploy gate ({token.prefix}…, read)"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "  "}, "Name the token after what will use it"),
        ({"name": "x" * 101}, "at most 100 characters"),
        ({"scope": "admin"}, "Unknown scope 'admin'; choose read or write."),
        ({"days": 0}, "from 1 to 730 days; 0 is outside that"),
        ({"days": 731}, "from 1 to 730 days; 731 is outside that"),
    ],
)
def test_api_token_create_refuses_bad_input(org, fields, message):
    values = {"name": "BI export", "scope": "read", "days": 30, **fields}
    with pytest.raises(DomainError, match=message):
        api_token_create(user=org.finance, by=org.finance, **values)
    assert not ApiToken.objects.exists()


def test_api_token_create_is_for_oneself_only(org):
    with pytest.raises(PermissionDeniedError, match="for yourself only"):
        api_token_create(user=org.finance, name="x", scope="read", days=1, by=org.admin)


def test_api_token_revoke_by_the_owner_or_a_platform_admin_only(org):
    token, _ = issue(org.researcher)
    with pytest.raises(PermissionDeniedError, match="owner or a platform admin"):
        api_token_revoke(token=token, by=org.ads_engineer)
    revoked = api_token_revoke(token=token, by=org.admin)
    assert (revoked.revoked_at, revoked.revoked_by) == (NOW, org.admin)
    with pytest.raises(ConflictError, match="already revoked on 2026-10-05 09:00 UTC"):
        api_token_revoke(token=token, by=org.researcher)


def test_last_use_is_written_at_most_every_few_minutes(org, time_machine):
    token, key = issue(org.researcher)
    api_token_authenticate(key=key, ip="198.51.100.4")
    token.refresh_from_db()
    assert (token.last_used_at, token.last_used_ip) == (NOW, "198.51.100.4")
    time_machine.move_to(NOW + LAST_USED_EVERY / 2, tick=False)
    api_token_authenticate(key=key, ip="198.51.100.5")
    token.refresh_from_db()
    assert token.last_used_at == NOW, "a second use within the interval writes nothing"
    time_machine.move_to(NOW + LAST_USED_EVERY, tick=False)
    api_token_authenticate(key=key, ip="198.51.100.6")
    token.refresh_from_db()
    assert (token.last_used_at, token.last_used_ip) == (NOW + LAST_USED_EVERY, "198.51.100.6")


# --- the API: authentication and scope ------------------------------------------------------


def test_a_token_acts_as_its_owner_and_records_where_from(org):
    token, key = issue(org.researcher)
    response = api_with(key, REMOTE_ADDR="203.0.113.9").get(UNITS)
    assert response.status_code == 200
    assert [u["code"] for u in response.json()["results"]] == ["RES"], "the owner's scope"
    token.refresh_from_db()
    assert (token.last_used_at, token.last_used_ip) == (NOW, "203.0.113.9")


def test_an_unknown_key_is_a_401_that_says_what_to_do(org):
    response = api_with("cg_not-a-real-key").get(UNITS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["detail"] == (
        "Invalid token: no API token has this key. Check that the whole key was copied (it "
        "starts with cg_), or create one at /account/tokens/."
    )


def test_a_malformed_header_is_a_401(org):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token two parts")
    response = client.get(UNITS)
    assert response.status_code == 401
    assert "the key without spaces" in response.json()["detail"]


def test_a_revoked_token_is_a_401_naming_when(org):
    token, key = issue(org.researcher)
    api_token_revoke(token=token, by=org.researcher)
    response = api_with(key).get(UNITS)
    assert response.status_code == 401
    assert response.json()["detail"] == (
        f"This API token ({token.prefix}…) was revoked on 2026-10-05 09:00 UTC; create a new "
        "one at /account/tokens/."
    )


def test_an_expired_token_is_a_401_naming_when(org, time_machine):
    token, key = issue(org.researcher, days=1)
    assert api_with(key).get(UNITS).status_code == 200
    time_machine.move_to(NOW + dt.timedelta(days=1), tick=False)
    response = api_with(key).get(UNITS)
    assert response.status_code == 401
    assert response.json()["detail"] == (
        f"This API token ({token.prefix}…) expired on 2026-10-06 09:00 UTC; create a new one "
        "at /account/tokens/."
    )


def test_a_deactivated_owners_token_stops_working(org):
    _, key = issue(org.researcher)
    org.researcher.is_active = False
    org.researcher.save(update_fields=["is_active"])
    response = api_with(key).get(UNITS)
    assert response.status_code == 401
    assert "is deactivated" in response.json()["detail"]


def test_a_read_token_reads_but_never_writes(org):
    _, key = issue(org.researcher, scope="read")
    client = api_with(key)
    assert client.get(REQUESTS).status_code == 200
    assert client.options(REQUESTS).status_code == 200
    response = client.post(REQUESTS, {"title": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"].startswith("This token has the read scope")


def test_a_read_token_cannot_write_through_views_with_their_own_permissions(org, tmp_path):
    # /imports/ names its own permission classes (finance and admins); the scope still holds.
    _, read_key = issue(org.finance, scope="read")
    upload = tmp_path / "bill.csv"
    upload.write_text("BilledCost\n1\n")
    with upload.open("rb") as fh:
        response = api_with(read_key).post(IMPORTS, {"file": fh}, format="multipart")
    assert response.status_code == 403
    assert "read scope" in response.json()["detail"]
    assert api_with(read_key).get(IMPORTS).status_code == 200


def test_a_write_token_writes(org):
    _, key = issue(org.researcher, scope="write")
    response = api_with(key).post(
        REQUESTS,
        {
            "kind": "fine_tuning",
            "title": "Fine-tune ranker-7b",
            "business_unit": "RES",
            "estimated_cost": "2300.00",
            "currency": "USD",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()


def test_the_old_authtoken_app_is_gone():
    assert "rest_framework.authtoken" not in settings.INSTALLED_APPS
    auth = settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]
    assert auth[0] == "governance.api.auth.ApiTokenAuthentication"
    assert not any("TokenAuthentication" in name and "governance" not in name for name in auth)


def test_the_token_api_lists_and_revokes_only_ones_own(org):
    mine, key = issue(org.researcher, scope="write")
    theirs, _ = issue(org.ads_engineer)
    client = api_with(key)
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert [t["prefix"] for t in listed] == [mine.prefix]
    assert "key_hash" not in listed[0]
    assert client.post(f"/api/v1/tokens/{theirs.pk}/revoke/").status_code == 404
    response = client.post(f"/api/v1/tokens/{mine.pk}/revoke/")
    assert response.status_code == 200
    assert response.json()["revoked_by"] == "rhea"
    assert client.get("/api/v1/tokens/").status_code == 401, "it revoked itself"


# --- the page --------------------------------------------------------------------------------


def test_the_page_creates_a_token_and_shows_its_key_once(org):
    client = signed_in(org.researcher)
    page = client.get(PAGE).content.decode()
    assert "No tokens yet" in page
    response = client.post(PAGE, {"name": "Nightly BI export", "scope": "read", "days": "30"})
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    token = ApiToken.objects.get()
    body = response.content.decode()
    key = body.split('id="key" type="text" value="')[1].split('"')[0]
    assert api_token_key_hash(key) == token.key_hash
    assert "Copy its key now: it is not shown again." in body
    again = client.get(PAGE).content.decode()
    assert key not in again
    assert f"{token.prefix}…" in again
    assert "Nightly BI export" in again


def test_the_page_refuses_a_bad_form_with_the_reason(org):
    response = signed_in(org.researcher).post(PAGE, {"name": "x", "scope": "read", "days": "0"})
    assert response.status_code == 400
    assert "Ensure this value is greater than or equal to 1." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_a_person_revokes_their_own_token_but_not_anothers(org):
    mine, _ = issue(org.researcher)
    theirs, _ = issue(org.ads_engineer)
    client = signed_in(org.researcher)
    assert client.post(f"{PAGE}{theirs.pk}/revoke/").status_code == 404
    response = client.post(f"{PAGE}{mine.pk}/revoke/", follow=True)
    assert "is revoked; it no longer works." in response.content.decode()
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.revoked_by, theirs.revoked_at) == (org.researcher, None)


def test_a_platform_admin_sees_and_revokes_anyones_working_token(org):
    theirs, _ = issue(org.researcher, name="Rhea's notebook")
    client = signed_in(org.admin)
    page = client.get(PAGE).content.decode()
    assert "Everyone else's working tokens" in page
    assert "Rhea&#x27;s notebook" in page
    response = client.post(f"{PAGE}{theirs.pk}/revoke/", follow=True)
    assert "of rhea is revoked" in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.revoked_by == org.admin
    assert "Everyone else" not in client.get(PAGE).content.decode(), "revoked ones drop off"


def test_the_user_menu_links_the_token_page(org):
    page = signed_in(org.researcher).get("/approvals/").content.decode()
    assert f'href="{PAGE}"' in page


def test_the_token_page_queries_do_not_grow_with_tokens(org, django_assert_max_num_queries):
    client = signed_in(org.admin)
    for n in range(3):
        issue(org.admin, name=f"mine {n}")
        issue(UserFactory(), name=f"theirs {n}")
    client.get(PAGE)
    with django_assert_max_num_queries(6):
        assert client.get(PAGE).status_code == 200
    for n in range(5):
        issue(org.admin, name=f"more {n}")
        issue(UserFactory(), name=f"more theirs {n}")
    with django_assert_max_num_queries(6):
        assert client.get(PAGE).status_code == 200


def test_the_page_needs_a_sign_in(org):
    response = Client().get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


# --- the command -----------------------------------------------------------------------------


def test_token_create_prints_a_working_key(org):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "token_create", user="fiona", scope="write", days=7, quiet=True, stdout=out, stderr=err
    )
    key = out.getvalue().strip()
    token = ApiToken.objects.get()
    assert (token.user, token.scope, token.expires_at) == (
        org.finance,
        "write",
        NOW + dt.timedelta(days=7),
    )
    assert token.name == "token_create (write)"
    assert err.getvalue() == ""
    assert api_with(key).get(UNITS).status_code == 200
    entry = AuditEntry.objects.get(kind="governance.apitoken.created")
    assert entry.actor is None
    assert entry.summary.endswith("(manage.py token_create)")


def test_token_create_says_what_is_wrong(org):
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("token_create", user="nobody", scope="read")
    with pytest.raises(CommandError, match="from 1 to 730 days"):
        call_command("token_create", user="fiona", scope="read", days=9999)


def test_a_platform_admin_revokes_tokens_in_the_admin_and_never_sees_a_hash(org):
    token, _ = issue(org.researcher)
    org.admin.is_staff = True
    org.admin.save(update_fields=["is_staff"])
    client = signed_in(org.admin)
    detail = client.get(f"/admin/governance/apitoken/{token.pk}/change/")
    assert detail.status_code == 200
    assert token.key_hash not in detail.content.decode()
    response = client.post(
        "/admin/governance/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
        follow=True,
    )
    assert "1 token(s) revoked." in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_by == org.admin
