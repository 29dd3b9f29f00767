"""Rate limits: sign-in lockouts, e-mailed links and API clients that fail to authenticate.

Each limit refuses the request after it with 429, a clear message and Retry-After; the next
window lets it through again; a limit on one person or address never stops another.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client

from governance import services
from governance.choices import Role
from governance.models import ApprovalVote
from tests.factories import PASSWORD, UserFactory
from tests.governance.test_approvals import (
    NOW,
    approvals_org,
    links_in,
    mails_to,
    policy_make,
    request_make,
    token_of,
)

HOME = "10.0.0.1"
ELSEWHERE = "10.0.0.2"


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


def sign_in(username: str, password: str, address: str = HOME):
    return Client(REMOTE_ADDR=address).post("/login/", {"username": username, "password": password})


# --- sign-in lockout ------------------------------------------------------------------------


@pytest.fixture
def fiona(db):
    return UserFactory(username="fiona", roles=[Role.FINANCE])


def fail(times: int, username: str = "fiona", address: str = HOME):
    return [sign_in(username, "wrong-password", address).status_code for _ in range(times)]


def test_login_lockout_refuses_the_attempt_after_the_limit_with_429(fiona, clock, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    assert fail(4) == [200, 200, 200, 200]
    assert sign_in("fiona", "wrong-password").status_code == 429  # the fifth locks
    refused = sign_in("fiona", PASSWORD)  # the right password, one attempt too many
    assert refused.status_code == 429
    assert refused["Retry-After"] == str(15 * 60)
    page = refused.content.decode()
    assert "Sign-in is paused for “fiona” from your address" in page
    assert "after 5 failed attempts" in page
    assert "Try again in 15 minutes, after" in page
    assert "05 Oct 2026 09:15 UTC" in page
    assert "axes_reset_username" in page
    assert "_auth_user_id" not in refused.client.session


def test_login_lockout_ends_when_the_wait_is_over(fiona, clock):
    fail(5)
    assert sign_in("fiona", PASSWORD).status_code == 429
    clock.shift(timedelta(minutes=14))
    assert sign_in("fiona", PASSWORD).status_code == 429  # and the wait starts again
    clock.shift(timedelta(minutes=16))
    response = sign_in("fiona", PASSWORD)
    assert response.status_code == 302
    assert response.url == "/"


def test_login_lockout_does_not_stop_another_person_or_another_address(fiona, clock):
    UserFactory(username="pat", roles=[Role.PLATFORM_ADMIN])
    fail(5)
    assert sign_in("fiona", PASSWORD).status_code == 429
    assert sign_in("pat", PASSWORD).status_code == 302
    assert sign_in("fiona", PASSWORD, address=ELSEWHERE).status_code == 302


def test_login_success_clears_the_failure_count(fiona, clock):
    assert fail(4) == [200] * 4
    assert sign_in("fiona", PASSWORD).status_code == 302
    assert fail(4) == [200] * 4
    assert sign_in("fiona", "wrong-password").status_code == 429


def test_axes_reset_lifts_every_lockout(fiona, clock):
    fail(5)
    assert sign_in("fiona", PASSWORD).status_code == 429
    call_command("axes_reset")
    assert sign_in("fiona", PASSWORD).status_code == 302


def test_login_lockout_limits_come_from_settings(fiona, clock, settings):
    settings.AXES_FAILURE_LIMIT = 2
    assert fail(2) == [200, 429]


# --- e-mailed links -------------------------------------------------------------------------


@pytest.fixture
def alex_link(db, clock, django_capture_on_commit_callbacks):
    """An approval link e-mailed to Alex, still good."""
    people = approvals_org()
    policy_make(steps=((Role.APPROVER, 1, 24),))
    with django_capture_on_commit_callbacks(execute=True):
        services.approval_request_submit(request=request_make(people), by=people.rhea)
    return token_of(links_in(mails_to(people.alex)[0])["approve"])


def open_link(path: str, address: str = HOME, method: str = "get", data=None):
    client = Client(REMOTE_ADDR=address)
    return getattr(client, method)(path, data or {})


def test_link_throttle_refuses_the_request_after_the_limit(alex_link, settings):
    settings.CAPGOV_LINK_RATE = (3, 600)
    path = f"/approvals/link/{alex_link}/"
    assert [open_link(path).status_code for _ in range(3)] == [200, 200, 200]
    refused = open_link(path)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "600"
    page = refused.content.decode()
    assert "Too many link requests" in page
    assert "more than 3 e-mailed links in 10 minutes" in page
    assert "The link itself is untouched" in page
    assert "Try again in 10 minutes, after" in page
    assert "no-cache" in refused["Cache-Control"]


def test_link_throttle_neither_uses_nor_reveals_the_link(alex_link, settings):
    settings.CAPGOV_LINK_RATE = (1, 600)
    path = f"/approvals/link/{alex_link}/"
    assert open_link(path).status_code == 200
    refused = open_link(path, method="post", data={"comment": "fine"})
    forged = open_link("/approvals/link/not-a-token/")
    assert refused.status_code == forged.status_code == 429
    assert refused.content == forged.content  # the same answer, whatever the token
    assert b"Alex" not in refused.content
    assert b"GPU" not in refused.content
    assert ApprovalVote.objects.count() == 0
    assert services.approval_link_check(token=alex_link).valid


def test_link_throttle_lets_the_link_work_in_the_next_window(alex_link, settings, clock):
    settings.CAPGOV_LINK_RATE = (2, 600)
    path = f"/approvals/link/{alex_link}/"
    assert [open_link(path).status_code for _ in range(3)] == [200, 200, 429]
    clock.shift(timedelta(minutes=10))
    assert open_link(path).status_code == 200


def test_link_throttle_counts_each_address_alone(alex_link, settings):
    settings.CAPGOV_LINK_RATE = (1, 600)
    path = f"/approvals/link/{alex_link}/"
    assert open_link(path).status_code == 200
    assert open_link(path).status_code == 429
    assert open_link(path, address=ELSEWHERE).status_code == 200


def test_link_throttle_guards_the_retirement_links_too(db, settings, clock):
    settings.CAPGOV_LINK_RATE = (2, 600)
    path = "/registry/retirement/link/forged-token/"
    assert [open_link(path).status_code for _ in range(3)] == [400, 400, 429]
    assert "Too many link requests" in open_link(path).content.decode()


def test_link_throttle_shares_one_count_across_link_kinds(alex_link, settings):
    settings.CAPGOV_LINK_RATE = (1, 600)
    assert open_link(f"/approvals/link/{alex_link}/").status_code == 200
    assert open_link("/registry/retirement/link/forged-token/").status_code == 429


def test_link_throttle_can_be_turned_off(alex_link, settings):
    settings.CAPGOV_LINK_RATE = None
    path = f"/approvals/link/{alex_link}/"
    assert {open_link(path).status_code for _ in range(40)} == {200}


def test_link_throttle_lets_requests_through_when_the_cache_fails(alex_link, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "add", broken)
    path = f"/approvals/link/{alex_link}/"
    assert {open_link(path).status_code for _ in range(35)} == {200}


# --- the API --------------------------------------------------------------------------------


def api_get(token: str | None = None, address: str = HOME, user=None):
    client = Client(REMOTE_ADDR=address)
    if user is not None:  # signed in: however the API's tokens work, this authenticates
        client.force_login(user)
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
    return client.get("/api/v1/business-units/", **headers)


def test_api_refuses_an_address_after_too_many_failed_authentications(db, settings, clock):
    settings.CAPGOV_API_AUTH_FAILURE_RATE = (3, 600)
    ci = UserFactory(username="ci", roles=[Role.ML_ENGINEER])
    assert [api_get("0" * 40).status_code for _ in range(2)] == [401, 401]
    assert api_get(user=ci).status_code == 200  # successes are not counted
    assert api_get().status_code == 401  # the third failure
    refused = api_get(user=ci)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "600"
    detail = refused.json()["detail"]
    assert "More than 3 requests from your address failed to authenticate" in detail
    assert "Authorization: Token <key>" in detail
    assert api_get(user=ci, address=ELSEWHERE).status_code == 200
    clock.shift(timedelta(minutes=10))
    assert api_get(user=ci).status_code == 200


def test_api_failure_throttle_leaves_pages_alone(db, settings):
    settings.CAPGOV_API_AUTH_FAILURE_RATE = (1, 600)
    assert api_get("0" * 40).status_code == 401
    assert api_get("0" * 40).status_code == 429
    assert Client(REMOTE_ADDR=HOME).get("/login/").status_code == 200
