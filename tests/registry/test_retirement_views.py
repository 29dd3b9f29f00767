"""Retirement pages, e-mailed links and API: who sees which case, what each answer does, and
that a link's GET never changes anything."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from governance.models import User
from registry import extensions
from registry import retirement_services as services
from registry.models import (
    CaseKind,
    CaseStatus,
    Endpoint,
    EndpointUsage,
    HardwarePrice,
    HardwareProfile,
    RetirementCase,
    RetirementExemption,
    RetirementLink,
    RetirementPolicy,
    RetirementStep,
)
from tests.factories import PASSWORD, BusinessUnitFactory, Org, OrgFactory, UserFactory

NOW = dt.datetime(2026, 10, 5, 9, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
WINDOW = 14
CSRF = "k" * 32  # a CSRF secret; Django accepts it as the form token too


@dataclass
class World:
    org: Org
    policy: RetirementPolicy
    canary: Endpoint
    busy: Endpoint
    gap: Endpoint
    case: RetirementCase
    links: dict[str, str]  # action -> token, from the owner's e-mail


def endpoint_make(name: str, unit, *, per_day: int = 0, missing: tuple[int, ...] = ()) -> Endpoint:
    """An endpoint two months old with ``per_day`` requests on each of the last 14 days,
    except the days ``missing`` (counted back from yesterday = 1), which have no data."""
    endpoint = Endpoint.objects.create(
        provider="aws",
        account_id="111122223333",
        region="eu-west-1",
        name=name,
        resource_id=f"arn:aws:sagemaker:eu-west-1:111122223333:endpoint/{name}",
        status="InService",
        instance_type="ml.g5.2xlarge",
        instance_count=2,
        config_name=f"{name}-config",
        business_unit=unit,
        created_in_cloud_at=NOW - dt.timedelta(days=60),
    )
    EndpointUsage.objects.bulk_create(
        EndpointUsage(endpoint=endpoint, day=TODAY - dt.timedelta(days=n), invocations=per_day)
        for n in range(1, WINDOW + 1)
        if n not in missing
    )
    return endpoint


def tokens_in(message) -> dict[str, str]:
    """The keep and retire links of a retirement mail's text part, by action."""
    tokens = re.findall(r"/registry/retirement/link/([^/\s]+)/", message.body)
    return {services.link_read(token).action: token for token in tokens}


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def world(db, clock, committed, mailoutbox) -> World:
    """Research's idle ``recsys-canary`` ($2,190 a month) and busy ``search-prod``; Ads'
    ``ads-shadow`` is quiet but its usage has a gap. One evaluation: one case, one mail."""
    org = OrgFactory.build_org()
    org.research.owner = org.researcher
    org.research.save()
    org.ads.owner = org.ads_engineer
    org.ads.save()
    profile = HardwareProfile.objects.create(
        name="1 x A10G", accelerator="NVIDIA A10G", accelerator_count=1
    )
    HardwarePrice.objects.create(
        hardware_profile=profile,
        provider="aws",
        instance_type="ml.g5.2xlarge",
        hourly_price=Decimal("1.50"),
        effective_from=NOW - dt.timedelta(days=365),
    )
    policy = RetirementPolicy.objects.create(
        name="Idle endpoints",
        window_days=WINDOW,
        max_daily_invocations=1,
        min_monthly_cost=Decimal("100"),
        grace_days=7,
        action="delete",
    )
    canary = endpoint_make("recsys-canary", org.research)
    busy = endpoint_make("search-prod", org.research, per_day=5000)
    gap = endpoint_make("ads-shadow", org.ads, missing=(3,))
    with committed():
        result = services.retirement_evaluate(now=NOW)
    assert [c.endpoint for c in result.opened] == [canary]
    (message,) = mailoutbox
    assert message.to == [org.researcher.email]
    return World(org, policy, canary, busy, gap, result.opened[0], tokens_in(message))


@pytest.fixture
def signed_in():
    def sign_in(user: User, **kwargs) -> Client:
        client = Client(**kwargs)
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return sign_in


def page(name: str, *args) -> str:
    return reverse(f"registry:{name}", args=args)


def link_url(token: str) -> str:
    return page("retirement-link", token)


def snapshot() -> tuple:
    """Everything a link or a refused answer could change."""
    return (
        sorted(RetirementCase.objects.values_list("pk", "status", "decision", "decided_by")),
        RetirementStep.objects.count(),
        RetirementExemption.objects.count(),
        sorted(RetirementLink.objects.values_list("action", "used_at")),
        sorted(Endpoint.objects.values_list("name", "status", "instance_count")),
        len(mail.outbox),
    )


def confirm(client: Client, token: str, **data):
    """Post the confirmation form with a CSRF cookie and token, as the page's form does."""
    client.cookies["csrftoken"] = CSRF
    return client.post(link_url(token), {**data, "csrfmiddlewaretoken": CSRF})


@pytest.fixture
def browser() -> Client:
    return Client(enforce_csrf_checks=True)


class FakeSageMaker(extensions.EndpointActuator):
    """Stands in for SageMaker: answers like it, records what it was asked."""

    provider = "aws"
    calls: list[str] = []

    def plan(self, endpoint, action, *, min_instances=1):
        return {"call": "DeleteEndpoint", "params": {"EndpointName": endpoint.name}}

    def delete(self, endpoint):
        self.calls.append(f"delete {endpoint.name}")
        return {"deleted": endpoint.name, "kept": endpoint.config_name}

    def scale_min(self, endpoint, *, min_instances):
        self.calls.append(f"scale {endpoint.name}")
        return {}

    def restore(self, endpoint, *, evidence):
        self.calls.append(f"restore {endpoint.name}")
        return {"EndpointArn": endpoint.resource_id}


@pytest.fixture
def sagemaker(monkeypatch):
    FakeSageMaker.calls = []
    monkeypatch.setitem(extensions._actuators, "aws", FakeSageMaker)
    return FakeSageMaker


# --- Who sees what ----------------------------------------------------------------------------


def test_every_retirement_page_needs_sign_in(world):
    anonymous = Client()
    for path in (
        page("retirement-cases"),
        page("retirement-case", world.case.pk),
        page("retirement-endpoints"),
    ):
        response = anonymous.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    before = snapshot()
    for action in ("keep", "retire", "wait", "act", "restore", "close"):
        response = anonymous.post(page(f"retirement-case-{action}", world.case.pk), {})
        assert response.status_code == 302
    assert snapshot() == before


def test_the_owner_sees_the_case_with_its_evidence_and_choices(world, signed_in):
    rhea = signed_in(world.org.researcher)
    listing = rhea.get(page("retirement-cases")).content.decode()
    assert "recsys-canary" in listing
    assert "2,190.00 USD" in listing
    assert "search-prod" not in listing

    body = rhea.get(page("retirement-case", world.case.pk)).content.decode()
    assert "recsys-canary had 0 requests in 14 days and costs $2,190.00 a month" in body
    assert "Idle: 0 requests in 14 days" in body
    assert "estimated: 2 x ml.g5.2xlarge at 1.50 USD/h x 730 h" in body
    assert "Delete (keep the configuration to restore)" in body
    assert "Yes — nothing is changed in the cloud" in body
    assert "Latest evaluation: why it is or is not flagged" in body
    assert 'data-chart="case-' in body
    for button in ("Keep the endpoint", "Retire now", "Let the grace period run"):
        assert button in body
    assert "Run the action now" not in body
    assert "Restore the endpoint" not in body


def test_a_member_of_another_unit_sees_no_case_and_gets_404(world, signed_in):
    adam = signed_in(world.org.ads_engineer)
    listing = adam.get(page("retirement-cases"))
    assert listing.status_code == 200
    assert "recsys-canary" not in listing.content.decode()
    assert "No retirement cases yet" in listing.content.decode()
    before = snapshot()
    assert adam.get(page("retirement-case", world.case.pk)).status_code == 404
    data = {"reason": "mine now", "until": (TODAY + dt.timedelta(days=30)).isoformat()}
    for action in ("keep", "retire", "wait", "act", "close"):
        assert adam.post(page(f"retirement-case-{action}", world.case.pk), data).status_code == 404
    assert snapshot() == before


def test_the_list_filters_by_status_kind_unit_and_policy(world, signed_in):
    admin = signed_in(world.org.admin)
    for query, shown in (
        ("status=open", True),
        ("status=kept", False),
        ("kind=idle", True),
        ("kind=consolidation", False),
        ("business_unit=RES", True),
        ("business_unit=ADS", False),
        (f"policy={world.policy.pk}", True),
    ):
        body = admin.get(f"{page('retirement-cases')}?{query}").content.decode()
        assert ("recsys-canary" in body) is shown, query
    body = admin.get(f"{page('retirement-cases')}?status=kept").content.decode()
    assert "No cases match these filters" in body
    bad = admin.get(f"{page('retirement-cases')}?business_unit=NOPE").content.decode()
    assert "These filters cannot be applied" in bad
    assert "recsys-canary" not in bad


# --- Answers from the page --------------------------------------------------------------------


def test_the_owner_keeps_from_the_page(world, signed_in):
    rhea = signed_in(world.org.researcher)
    until = TODAY + dt.timedelta(days=90)
    form = rhea.get(page("retirement-case", world.case.pk)).content.decode()
    assert f'value="{until:%Y-%m-%d}"' in form  # the default: 90 days from today
    response = rhea.post(
        page("retirement-case-keep", world.case.pk),
        {"reason": "Needed for the December re-training.", "until": until.isoformat()},
        follow=True,
    )
    assert response.status_code == 200
    assert "Kept until 03 Jan 2027" in response.content.decode()
    exemption = RetirementExemption.objects.get()
    assert (exemption.endpoint, exemption.until, exemption.granted_by) == (
        world.canary,
        until,
        world.org.researcher,
    )
    world.case.refresh_from_db()
    assert (world.case.status, world.case.decision) == (CaseStatus.KEPT, "keep")
    assert services.retirement_evaluate(now=NOW + dt.timedelta(days=1)).opened == []


def test_keeping_needs_a_reason_and_a_date_after_today(world, signed_in):
    rhea = signed_in(world.org.researcher)
    before = snapshot()
    missing = rhea.post(page("retirement-case-keep", world.case.pk), {"until": "2026-12-01"})
    assert missing.status_code == 400
    assert "This field is required." in missing.content.decode()
    past = rhea.post(
        page("retirement-case-keep", world.case.pk), {"reason": "still needed", "until": TODAY}
    )
    assert past.status_code == 400
    assert "Keep it until a date after today." in past.content.decode()
    assert snapshot() == before


def test_the_owner_lets_the_grace_period_run_or_retires_now(world, signed_in):
    rhea = signed_in(world.org.researcher)
    waited = rhea.post(page("retirement-case-wait", world.case.pk), follow=True)
    assert "the policy&#x27;s action runs when the grace period ends on 12 Oct 2026" in (
        waited.content.decode()
    )
    retired = rhea.post(page("retirement-case-retire", world.case.pk), follow=True)
    assert "Dry run recorded: nothing was changed in the cloud" in retired.content.decode()
    world.case.refresh_from_db()
    assert (world.case.status, world.case.decision) == (CaseStatus.DRY_RUN, "retire")
    step = world.case.steps.get(kind="delete")
    assert step.dry_run
    assert step.request["call"] == "DeleteEndpoint"
    again = rhea.post(page("retirement-case-retire", world.case.pk))
    assert again.status_code == 409
    assert "The case is dry run done" in again.content.decode()


def test_admin_only_buttons_are_refused_to_others(world, signed_in, sagemaker):
    rhea = signed_in(world.org.researcher)
    before = snapshot()
    acted = rhea.post(page("retirement-case-act", world.case.pk))
    assert acted.status_code == 403
    assert "Only platform admins run retirement actions by hand." in acted.content.decode()
    world.case.status = CaseStatus.RETIRED
    world.case.save(update_fields=["status"])
    before = snapshot()
    restored = rhea.post(page("retirement-case-restore", world.case.pk))
    assert restored.status_code == 403
    assert "Only platform admins restore endpoints." in restored.content.decode()
    assert snapshot() == before
    assert sagemaker.calls == []


def test_a_platform_admin_runs_the_action_and_restores(world, signed_in, sagemaker):
    world.policy.dry_run = False
    world.policy.save()
    pat = signed_in(world.org.admin)
    body = pat.get(page("retirement-case", world.case.pk)).content.decode()
    assert "Run the action now" in body
    acted = pat.post(page("retirement-case-act", world.case.pk), follow=True)
    assert "Retired; it saves 2,190.00 USD a month." in acted.content.decode()
    assert sagemaker.calls == ["delete recsys-canary"]
    body = acted.content.decode()
    assert "Restore the endpoint" in body
    assert "&quot;kept&quot;: &quot;recsys-canary-config&quot;" in body  # the response, kept
    restored = pat.post(page("retirement-case-restore", world.case.pk), follow=True)
    assert "is being recreated from its kept configuration" in restored.content.decode()
    world.case.refresh_from_db()
    world.canary.refresh_from_db()
    assert world.case.status == CaseStatus.RESTORED
    assert world.canary.status == "Creating (restored)"
    assert sagemaker.calls == ["delete recsys-canary", "restore recsys-canary"]


def test_closing_needs_a_reason(world, signed_in):
    pat = signed_in(world.org.admin)
    refused = pat.post(page("retirement-case-close", world.case.pk), {"reason": ""})
    assert refused.status_code == 400
    closed = pat.post(
        page("retirement-case-close", world.case.pk), {"reason": "Moved to the new pool."}
    )
    assert closed.status_code == 302
    world.case.refresh_from_db()
    assert world.case.status == CaseStatus.CLOSED
    again = pat.post(page("retirement-case-close", world.case.pk), {"reason": "again"})
    assert again.status_code == 409


# --- The e-mailed links -----------------------------------------------------------------------


def test_opening_a_link_shows_the_confirmation_and_changes_nothing(world, browser):
    before = snapshot()
    keep = browser.get(link_url(world.links["keep"]))
    assert keep.status_code == 200
    body = keep.content.decode()
    assert "Keep recsys-canary?" in body
    assert "costs $2,190.00 a month" in body
    assert 'name="reason"' in body
    assert 'name="until"' in body
    assert "You are deciding as" in body
    assert 'name="viewport"' in body  # laid out for a phone
    retire = browser.get(link_url(world.links["retire"]))
    assert "Retire recsys-canary now?" in retire.content.decode()
    assert "its configuration and model are kept" in retire.content.decode()
    for token in world.links.values():
        assert browser.head(link_url(token)).status_code == 200
        assert browser.options(link_url(token)).status_code == 405
        browser.cookies["csrftoken"] = CSRF
        assert browser.put(link_url(token), HTTP_X_CSRFTOKEN=CSRF).status_code == 405
        assert browser.delete(link_url(token), HTTP_X_CSRFTOKEN=CSRF).status_code == 405
    assert Client(enforce_csrf_checks=True).post(link_url(world.links["retire"])).status_code == (
        403
    )
    assert snapshot() == before


def test_the_keep_link_keeps_without_a_password(world, browser):
    until = TODAY + dt.timedelta(days=60)
    done = confirm(browser, world.links["keep"], reason="Demo for the board.", until=until)
    assert done.status_code == 200
    assert "Kept — thank you" in done.content.decode()
    exemption = RetirementExemption.objects.get()
    assert (exemption.until, exemption.reason, exemption.granted_by) == (
        until,
        "Demo for the board.",
        world.org.researcher,
    )
    world.case.refresh_from_db()
    assert world.case.status == CaseStatus.KEPT
    assert world.case.decided_by == world.org.researcher
    used = dict(RetirementLink.objects.values_list("action", "used_at"))
    assert used == {"keep": NOW, "retire": None}  # the retire link is refused: case decided


def test_the_keep_link_needs_a_reason_and_a_valid_date(world, browser):
    before = snapshot()
    missing = confirm(browser, world.links["keep"], reason="", until=TODAY + dt.timedelta(days=9))
    assert missing.status_code == 400
    too_long = confirm(
        browser, world.links["keep"], reason="forever", until=TODAY + dt.timedelta(days=400)
    )
    assert too_long.status_code == 400
    assert "An exemption lasts at most 366 days" in too_long.content.decode()
    assert snapshot() == before


def test_the_retire_link_runs_the_policy_action_as_a_dry_run(world, browser, sagemaker):
    done = confirm(browser, world.links["retire"])
    assert done.status_code == 200
    body = done.content.decode()
    assert "Dry run recorded — thank you" in body
    assert "would have called DeleteEndpoint on recsys-canary" in body
    world.case.refresh_from_db()
    assert (world.case.status, world.case.decision) == (CaseStatus.DRY_RUN, "retire")
    assert sagemaker.calls == []  # a dry run calls nothing that changes the cloud


def test_a_tampered_link_is_refused_with_400(world, browser):
    before = snapshot()
    token = world.links["keep"]
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (forged, "not-a-token", token.replace(":", "")):
        response = browser.get(link_url(bad))
        assert response.status_code == 400
        assert "This link is not genuine" in response.content.decode()
    assert Client().post(link_url(forged), {"reason": "x", "until": "2026-12-01"}).status_code == (
        400
    )
    assert snapshot() == before


def test_a_used_link_says_so_and_changes_nothing(world, browser, clock):
    confirm(browser, world.links["keep"], reason="Still needed.", until=TODAY + dt.timedelta(1))
    clock.move_to(NOW + dt.timedelta(hours=5))
    before = snapshot()
    messages = {
        "keep": "This link was already used on 2026-10-05 09:00 UTC.",
        # The other link was never used: it says the case is decided.
        "retire": "The case is already kept by the owner; there is nothing left to decide.",
    }
    for action, token in world.links.items():
        again = browser.get(link_url(token))
        assert again.status_code == 409
        assert messages[action] in again.content.decode()
        assert confirm(browser, token, reason="again", until="2026-12-01").status_code == 409
    assert snapshot() == before


def test_an_expired_link_says_so(world, browser, clock):
    link = RetirementLink.objects.get(action="retire")
    clock.move_to(link.expires_at - dt.timedelta(minutes=1))
    assert browser.get(link_url(world.links["retire"])).status_code == 200
    clock.move_to(link.expires_at)
    before = snapshot()
    expired = browser.get(link_url(world.links["retire"]))
    assert expired.status_code == 410
    assert "This link has expired; open the case in Capgov instead." in expired.content.decode()
    assert confirm(browser, world.links["retire"]).status_code == 410
    assert snapshot() == before


def test_a_link_to_a_case_no_longer_open_says_there_is_nothing_to_decide(world, browser):
    services.case_close(case=world.case, by=world.org.admin, reason="Migrated.")
    before = snapshot()
    response = browser.get(link_url(world.links["keep"]))
    assert response.status_code == 409
    assert "There is nothing left to decide" in response.content.decode()
    assert "The case is already closed; there is nothing left to decide." in (
        response.content.decode()
    )
    assert confirm(browser, world.links["retire"]).status_code == 409
    assert snapshot() == before


def test_a_link_decides_only_for_its_person(world, signed_in):
    adam = signed_in(world.org.ads_engineer, enforce_csrf_checks=True)
    before = snapshot()
    shown = adam.get(link_url(world.links["retire"])).content.decode()
    assert "but you are signed in as" in shown
    assert confirm(adam, world.links["retire"]).status_code == 403
    assert snapshot() == before


# --- Endpoints --------------------------------------------------------------------------------


def test_the_endpoints_page_says_why_an_endpoint_was_not_flagged(world, signed_in):
    adam = signed_in(world.org.ads_engineer)
    body = adam.get(page("retirement-endpoints")).content.decode()
    assert "ads-shadow" in body
    assert "Usage is missing for 1 of the 14 days (first 2026-10-02)" in body
    assert "missing data is not zero traffic, so it is not flagged" in body
    assert "recsys-canary" not in body  # another unit's
    pat = signed_in(world.org.admin)
    body = pat.get(page("retirement-endpoints")).content.decode()
    assert "In use: up to 5,000 requests a day" in body
    assert f'href="{page("retirement-case", world.case.pk)}"' in body
    idle = pat.get(f"{page('retirement-endpoints')}?verdict=idle").content.decode()
    assert "recsys-canary" in idle
    assert "ads-shadow" not in idle


def test_a_new_endpoint_is_not_flagged_and_the_page_says_why(world, signed_in):
    young = endpoint_make("fresh-llm", world.org.research)
    young.created_in_cloud_at = NOW - dt.timedelta(days=3)
    young.save()
    services.retirement_evaluate(now=NOW)
    body = signed_in(world.org.researcher).get(page("retirement-endpoints")).content.decode()
    assert "Younger than the 14-day window (created 2026-10-02)" in body


# --- API --------------------------------------------------------------------------------------


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


CASES = "/api/v1/retirement-cases/"


def test_the_api_lists_only_the_cases_a_person_may_see(world):
    assert api(world.org.ads_engineer).get(CASES).json()["count"] == 0
    assert api(world.org.ads_engineer).get(f"{CASES}{world.case.pk}/").status_code == 404
    (row,) = api(world.org.researcher).get(CASES).json()["results"]
    assert (row["endpoint_name"], row["business_unit"], row["status"], row["monthly_cost"]) == (
        "recsys-canary",
        "RES",
        "open",
        "2190.0000000000",
    )
    assert api(world.org.finance).get(f"{CASES}?business_unit=RES").json()["count"] == 1
    assert api(world.org.admin).get(f"{CASES}?status=kept").json()["count"] == 0
    assert api(world.org.admin).get(f"{CASES}?business_unit=NOPE").status_code == 400
    steps = api(world.org.researcher).get(f"{CASES}{world.case.pk}/steps/").json()
    assert [s["kind"] for s in steps] == ["opened", "mailed"]
    assert APIClient().get(CASES).status_code in (401, 403)


def test_the_api_keeps_and_answers_409_on_a_second_answer(world):
    rhea = api(world.org.researcher)
    url = f"{CASES}{world.case.pk}/"
    assert rhea.post(f"{url}keep/", {"reason": "x"}, format="json").status_code == 400
    past = rhea.post(f"{url}keep/", {"reason": "x", "until": str(TODAY)}, format="json")
    assert past.status_code == 400
    assert past.json() == {"detail": "Keep it until a date after today."}
    kept = rhea.post(f"{url}keep/", {"reason": "Board demo.", "until": "2026-11-30"}, format="json")
    assert kept.status_code == 200
    assert (kept.json()["status"], kept.json()["decision"]) == ("kept", "keep")
    assert RetirementExemption.objects.get().until == dt.date(2026, 11, 30)
    for action in ("retire", "wait"):
        assert rhea.post(f"{url}{action}/").status_code == 409
    again = rhea.post(f"{url}keep/", {"reason": "y", "until": "2026-12-30"}, format="json")
    assert again.status_code == 409
    assert api(world.org.ads_engineer).post(f"{url}wait/").status_code == 404


def test_the_api_actions_and_their_status_codes(world, sagemaker):
    rhea, pat = api(world.org.researcher), api(world.org.admin)
    url = f"{CASES}{world.case.pk}/"
    assert rhea.post(f"{url}act/").status_code == 403
    assert pat.post(f"{url}restore/").status_code == 409  # not retired
    assert rhea.post(f"{url}wait/").json()["decision"] == "wait"
    assert rhea.post(f"{url}retire/").json()["status"] == "dry_run"
    world.policy.dry_run = False
    world.policy.save()
    acted = pat.post(f"{url}act/")
    assert acted.status_code == 200
    assert (acted.json()["status"], acted.json()["monthly_saving"]) == (
        "retired",
        "2190.0000000000",
    )
    assert rhea.post(f"{url}restore/").status_code == 403
    assert pat.post(f"{url}restore/").json()["status"] == "restored"
    assert sagemaker.calls == ["delete recsys-canary", "restore recsys-canary"]
    assert pat.post(f"{url}close/", {"reason": "done"}, format="json").status_code == 409


def test_the_api_closes_with_a_reason(world):
    rhea = api(world.org.researcher)
    url = f"{CASES}{world.case.pk}/close/"
    assert rhea.post(url, {}, format="json").status_code == 400
    closed = rhea.post(url, {"reason": "Replaced by search-v2."}, format="json")
    assert closed.json()["status"] == "closed"


def test_the_policies_are_readable_by_anyone_signed_in_and_not_writable(world):
    adam = api(world.org.ads_engineer)
    (policy,) = adam.get("/api/v1/retirement-policies/").json()["results"]
    assert (policy["name"], policy["action"], policy["dry_run"]) == (
        "Idle endpoints",
        "delete",
        True,
    )
    assert adam.post("/api/v1/retirement-policies/", {"name": "x"}).status_code == 405
    detail = f"/api/v1/retirement-policies/{world.policy.pk}/"
    assert api(world.org.admin).patch(detail, {"dry_run": False}).status_code == 405


# --- Query counts -----------------------------------------------------------------------------


def _many_cases(world: World, count: int) -> None:
    """``count`` more cases over several units, each decided by someone, each with a step."""
    for n in range(count):
        unit = BusinessUnitFactory(code=f"U{n}", name=f"Unit {n}")
        unit.owner = UserFactory(username=f"owner-{n}", units=[unit])
        unit.save()
        endpoint = endpoint_make(f"endpoint-{n}", unit)
        case = RetirementCase.objects.create(
            kind=CaseKind.IDLE,
            endpoint=endpoint,
            policy=world.policy,
            business_unit=unit,
            status=CaseStatus.KEPT,
            opened_at=NOW,
            grace_ends_at=NOW + dt.timedelta(days=7),
            monthly_cost=Decimal("100.00"),
            currency="USD",
            owner=unit.owner,
            decision="keep",
            decided_by=unit.owner,
            decided_at=NOW,
            summary=f"endpoint-{n} is idle.",
        )
        RetirementStep.objects.create(case=case, kind="opened", at=NOW, text="Idle.")


def test_the_list_pages_and_api_do_not_grow_queries_with_rows(
    world, signed_in, django_assert_max_num_queries
):
    _many_cases(world, 12)
    pat = signed_in(world.org.admin)
    with django_assert_max_num_queries(12):
        body = pat.get(page("retirement-cases")).content.decode()
    assert body.count('href="/registry/retirement/cases/') >= 13
    with django_assert_max_num_queries(12):
        assert pat.get(page("retirement-endpoints")).status_code == 200
    with django_assert_max_num_queries(8):
        assert api(world.org.admin).get(CASES).json()["count"] == 13


# --- Admin ------------------------------------------------------------------------------------


def test_the_admin_edits_policies_and_only_lists_cases(world, signed_in):
    world.org.admin.is_staff = True
    world.org.admin.save()
    pat = signed_in(world.org.admin)
    for model in ("retirementpolicy", "retirementcase", "retirementstep", "retirementlink"):
        assert pat.get(reverse(f"admin:registry_{model}_changelist")).status_code == 200
    policy = pat.get(reverse("admin:registry_retirementpolicy_change", args=[world.policy.pk]))
    assert 'name="dry_run"' in policy.content.decode()
    case = pat.get(reverse("admin:registry_retirementcase_change", args=[world.case.pk]))
    assert case.status_code == 200
    assert 'name="status"' not in case.content.decode()  # read-only
    assert pat.get(reverse("admin:registry_retirementcase_add")).status_code == 403
    staff = UserFactory(username="sam", is_staff=True)
    refused = signed_in(staff).get(reverse("admin:registry_retirementpolicy_changelist"))
    assert refused.status_code == 403
