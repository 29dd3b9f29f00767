"""E-mailed approval links: signed, expiring, single use, bound to approver, step and revision.
A GET (or any method but a CSRF-checked POST) changes nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal as D
from urllib.parse import quote

import pytest
from django.core import signing
from django.test import Client

from governance import links, services
from governance.choices import RequestStatus, Role, StepStatus
from governance.exceptions import PermissionDeniedError
from governance.models import ApprovalEvent, ApprovalLink, ApprovalRequest, ApprovalVote
from tests.factories import PASSWORD
from tests.governance.test_approvals import (
    NOW,
    SUMMARY,
    approvals_org,
    links_in,
    mails_to,
    policy_make,
    request_make,
    step_of,
    token_of,
)


@pytest.fixture
def people(db):
    return approvals_org()


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


@pytest.fixture
def pending(people, committed, clock):
    """The journey's job, waiting for an approver, then finance."""
    policy_make(steps=((Role.APPROVER, 1, 24), (Role.FINANCE, 1, 24)))
    request = request_make(people)
    with committed():
        return services.approval_request_submit(request=request, by=people.rhea)


@pytest.fixture
def alex_links(people, pending):
    return {action: token_of(url) for action, url in links_in(mails_to(people.alex)[0]).items()}


def url(token: str) -> str:
    return f"/approvals/link/{token}/"


def snapshot() -> tuple:
    """Everything a link could change."""
    return (
        ApprovalVote.objects.count(),
        ApprovalEvent.objects.count(),
        sorted(ApprovalLink.objects.values_list("pk", "used_at", "superseded_at")),
        sorted(ApprovalRequest.objects.values_list("pk", "status", "revision", "decision")),
        sorted((s.pk, s.status) for r in ApprovalRequest.objects.all() for s in r.steps.all()),
    )


CSRF = "k" * 32  # a CSRF secret; Django accepts it as the form token too


def confirm(client: Client, token: str, comment: str = ""):
    """Post the confirmation form with a CSRF cookie and token, as the page's form does."""
    client.cookies["csrftoken"] = CSRF
    return client.post(url(token), {"comment": comment, "csrfmiddlewaretoken": CSRF})


@pytest.fixture
def browser():
    return Client(enforce_csrf_checks=True)


# --- tokens -------------------------------------------------------------------------------


def test_a_token_names_one_link_and_one_action():
    link_id = uuid.uuid4()
    token = links.approval_token_make(link_id=link_id, action="reject")
    assert links.approval_token_read(token) == links.ApprovalLinkToken(link_id, "reject")
    assert "/" not in token


def test_a_token_made_for_another_purpose_is_not_genuine():
    other = signing.dumps({"l": str(uuid.uuid4()), "a": "a"}, salt="capgov.other-purpose")
    with pytest.raises(links.LinkTamperedError):
        links.approval_token_read(other)


# --- GET and friends change nothing -------------------------------------------------------


def test_opening_a_link_shows_the_confirmation_and_changes_nothing(people, alex_links, browser):
    before = snapshot()
    page = browser.get(url(alex_links["approve"]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Approve this request?" in body
    assert SUMMARY in body
    assert 'name="comment"' in body
    assert "Confirm approval" in body
    assert 'name="viewport"' in body  # laid out for a phone
    assert browser.head(url(alex_links["approve"])).status_code == 200
    assert browser.options(url(alex_links["approve"])).status_code == 405
    for method in ("put", "patch", "delete"):
        # Refused by the CSRF check, or by the view if a token came along: never applied.
        assert getattr(browser, method)(url(alex_links["approve"])).status_code in (403, 405)
        browser.cookies["csrftoken"] = CSRF
        response = getattr(browser, method)(url(alex_links["approve"]), HTTP_X_CSRFTOKEN=CSRF)
        assert response.status_code == 405
    assert snapshot() == before


def test_a_post_without_the_csrf_token_changes_nothing(people, alex_links, browser):
    before = snapshot()
    assert browser.post(url(alex_links["approve"]), {"comment": "ok"}).status_code == 403
    assert snapshot() == before


def test_confirming_records_the_vote_without_a_password(people, alex_links, browser, committed):
    with committed():
        done = confirm(browser, alex_links["approve"], comment="Worth it.")
    assert done.status_code == 200
    assert "Approved — thank you" in done.content.decode()
    vote = ApprovalVote.objects.get()
    assert (vote.approver, vote.approve, vote.via, vote.comment) == (
        people.alex,
        True,
        "email",
        "Worth it.",
    )
    assert vote.link.used_at == NOW
    request = ApprovalRequest.objects.get()
    assert step_of(request, 1).status == StepStatus.APPROVED
    assert mails_to(people.fiona), "the next step's approver is e-mailed"


def test_a_used_link_says_who_decided_and_when_and_changes_nothing(
    people, alex_links, browser, committed, clock
):
    with committed():
        confirm(browser, alex_links["approve"])
    clock.move_to(NOW + timedelta(days=1))
    before = snapshot()
    for token in alex_links.values():
        again = browser.get(url(token))
        assert again.status_code == 409
        assert "This link was already used" in again.content.decode()
        assert "Already approved by you (Alex Chen) on 05 Oct 2026 09:00 UTC" in (
            again.content.decode()
        )
    assert browser.post(url(alex_links["approve"]), {"comment": "again"}).status_code in (403, 409)
    assert confirm(browser, alex_links["approve"]).status_code == 409
    assert snapshot() == before


def test_a_reject_link_needs_a_reason(people, alex_links, browser, committed):
    refused = confirm(browser, alex_links["reject"])
    assert refused.status_code == 400
    assert ApprovalVote.objects.count() == 0
    with committed():
        confirm(browser, alex_links["reject"], comment="Too early: wait for the new data.")
    request = ApprovalRequest.objects.get()
    assert request.status == RequestStatus.REJECTED
    assert request.decision.outcome == "rejected"


# --- invalid links ------------------------------------------------------------------------


def test_a_tampered_link_is_refused_and_says_so(people, alex_links, browser):
    before = snapshot()
    token = alex_links["approve"]
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (forged, "not-a-token", alex_links["approve"].replace(":", "")):
        page = browser.get(url(bad))
        assert page.status_code == 400
        assert "This link is not genuine" in page.content.decode()
    assert browser.post(url(forged), {}).status_code == 403  # no CSRF token: refused first
    client = Client()
    assert client.post(url(forged), {"comment": ""}).status_code == 400
    assert snapshot() == before


def test_an_expired_link_is_refused_after_72_hours(people, alex_links, browser, clock):
    clock.move_to(NOW + timedelta(hours=71, minutes=59))
    assert browser.get(url(alex_links["approve"])).status_code == 200
    clock.move_to(NOW + timedelta(hours=72))
    before = snapshot()
    page = browser.get(url(alex_links["approve"]))
    assert page.status_code == 410
    assert "This link has expired" in page.content.decode()
    assert "It worked until 08 Oct 2026 09:00 UTC" in page.content.decode()
    assert Client().post(url(alex_links["approve"]), {"comment": ""}).status_code == 410
    assert snapshot() == before


def test_the_link_expiry_is_a_setting(people, settings, committed, clock):
    settings.CAPGOV_APPROVAL_LINK_HOURS = 2
    policy_make()
    with committed():
        services.approval_request_submit(request=request_make(people), by=people.rhea)
    assert ApprovalLink.objects.first().expires_at == NOW + timedelta(hours=2)


def test_a_link_votes_only_as_its_approver(people, alex_links, committed):
    """Signed in as someone else, the link is refused; signed out, the vote is Alex's."""
    bea = Client(enforce_csrf_checks=True)
    bea.login(username="bea", password=PASSWORD)
    before = snapshot()
    page = bea.get(url(alex_links["approve"]))
    assert "This link was sent to Alex Chen, but you are signed in as Bea Kahn" in (
        page.content.decode()
    )
    refused = confirm(bea, alex_links["approve"])
    assert refused.status_code == 403
    assert snapshot() == before
    with committed():
        confirm(Client(enforce_csrf_checks=True), alex_links["approve"])
    assert ApprovalVote.objects.get().approver == people.alex


def test_a_link_cannot_vote_on_another_step_or_request(people, pending, committed):
    link = ApprovalLink.objects.get(approver=people.alex)
    other = request_make(people, title="Another job")
    with committed():
        services.approval_request_submit(request=other, by=people.rhea)
    for step in (step_of(pending, 2), step_of(other, 1)):
        with pytest.raises(PermissionDeniedError, match="another person, step or revision"):
            services.approval_vote_cast(
                step=step, by=people.alex, approve=True, via="email", link=link
            )
    with pytest.raises(PermissionDeniedError, match="another person"):
        services.approval_vote_cast(
            step=step_of(pending, 1), by=people.bea, approve=True, via="email", link=link
        )
    assert ApprovalVote.objects.count() == 0


def test_a_step_decided_by_someone_else_supersedes_the_link(people, alex_links, browser, committed):
    bea_token = token_of(links_in(mails_to(people.bea)[0])["approve"])
    with committed():
        confirm(Client(enforce_csrf_checks=True), bea_token, comment="Fine.")
    before = snapshot()
    page = browser.get(url(alex_links["approve"]))
    assert page.status_code == 409
    body = page.content.decode()
    assert "Someone else already decided this step" in body
    assert "Step 1 (Approver) was already approved by Bea Kahn on 05 Oct 2026 09:00 UTC" in body
    assert confirm(browser, alex_links["approve"]).status_code == 409
    assert snapshot() == before


def test_editing_the_request_supersedes_the_links_already_sent(
    people, pending, alex_links, browser, committed
):
    with committed():
        services.approval_request_update(request=pending, by=people.rhea, duration_hours=D(96))
    before = snapshot()
    page = browser.get(url(alex_links["approve"]))
    assert page.status_code == 409
    body = page.content.decode()
    assert "This link was superseded" in body
    assert "The request was edited on 05 Oct 2026 09:00 UTC after this link was sent" in body
    assert "revision 1; it is now at revision 2" in body
    assert confirm(browser, alex_links["approve"]).status_code == 409
    assert snapshot() == before
    # The new mail's link works.
    fresh = token_of(links_in(mails_to(people.alex)[-1])["approve"])
    assert SUMMARY.replace("72 h", "96 h") in mails_to(people.alex)[-1].body
    with committed():
        assert confirm(browser, fresh).status_code == 200


def test_a_link_for_a_request_no_longer_pending_says_what_happened(
    people, pending, alex_links, browser
):
    services.approval_request_withdraw(request=pending, by=people.rhea)
    page = browser.get(url(alex_links["approve"]))
    assert page.status_code == 409
    body = page.content.decode()
    assert "This request is no longer pending" in body
    assert f"withdrawn on 05 Oct 2026 09:00 UTC by {people.rhea}, who filed it" in body


def test_a_link_whose_row_is_gone_leads_nowhere(people, browser):
    token = links.approval_token_make(link_id=uuid.uuid4(), action="approve")
    page = browser.get(url(token))
    assert page.status_code == 404
    assert "no longer leads anywhere" in page.content.decode()


# --- sign-in threshold --------------------------------------------------------------------


def test_above_the_threshold_the_approver_signs_in_to_confirm(
    people, alex_links, browser, settings, committed
):
    settings.CAPGOV_APPROVAL_SIGNIN_ABOVE = D("20000.00")
    before = snapshot()
    page = browser.get(url(alex_links["approve"]))
    assert page.status_code == 200
    assert "Sign in to confirm" in page.content.decode()
    assert 'name="comment"' not in page.content.decode()
    response = confirm(browser, alex_links["approve"])
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={quote(url(alex_links['approve']))}"
    assert snapshot() == before
    with pytest.raises(services.approvals.SignInRequiredError):
        services.approval_link_confirm(token=alex_links["approve"])

    browser.login(username="alex", password=PASSWORD)
    with committed():
        done = confirm(browser, alex_links["approve"], comment="Signed in.")
    assert done.status_code == 200
    assert ApprovalVote.objects.get().approver == people.alex


def test_at_or_below_the_threshold_the_link_alone_is_enough(
    people, alex_links, browser, settings, committed
):
    settings.CAPGOV_APPROVAL_SIGNIN_ABOVE = D("23000.00")
    with committed():
        assert confirm(browser, alex_links["approve"]).status_code == 200
    assert ApprovalVote.objects.count() == 1
