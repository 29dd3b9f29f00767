"""Journey 4 end to end: a costly job is filed in the browser, the approver's mail arrives at a
real SMTP server, the approve link is opened in headless Chromium on a phone-sized screen and
confirmed, and opening it again changes nothing."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from governance.choices import RequestStatus, Role
from governance.models import ApprovalEvent, ApprovalRequest, ApprovalVote
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def org(transactional_db):
    from governance.models import ApprovalPolicy, PolicyStep
    from tests.factories import OrgFactory, UserFactory

    org = OrgFactory.build_org()
    approver = UserFactory(
        username="alex",
        first_name="Alex",
        last_name="Chen",
        email="alex@capgov.example",
        roles=[Role.APPROVER],
    )
    policy = ApprovalPolicy.objects.create(
        name="Large GPU jobs", min_cost=Decimal("20000.00"), currency="USD"
    )
    PolicyStep.objects.create(policy=policy, order=1, role=Role.APPROVER, wait_hours=24)
    return org, approver


def test_an_approver_approves_from_the_mailed_link_on_a_phone(
    chromium, page, live_server, smtp, org, settings
):
    org, approver = org
    settings.CAPGOV_BASE_URL = live_server.url

    # The requester files the job in the browser and submits it.
    page.goto(f"{live_server.url}/approvals/new/")
    page.get_by_label("Username").fill(org.researcher.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="File an approval request").wait_for()
    page.get_by_label("Kind").select_option("fine_tuning")
    page.get_by_label("Title").fill("Fine-tune ranker-7b on October clicks")
    page.get_by_label("Estimated cost").fill("23000")
    page.get_by_label("Accelerator", exact=True).fill("H100")
    page.get_by_label("Accelerators").fill("64")
    page.get_by_label("Duration (hours)").fill("72")
    page.get_by_role("button", name="Submit for approval").click()
    page.get_by_text("Submitted. The approvers of the first step have been e-mailed.").wait_for()
    request = ApprovalRequest.objects.get()
    assert request.status == RequestStatus.PENDING

    # The mail went through SMTP, with a text and an HTML part.
    message = smtp.wait_for(approver.email)
    summary = "Fine-tuning job: 64 \u00d7 H100 for 72 h, est. $23,000.00, Research BU"
    assert summary in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert summary in text
    approve_url = re.search(r"^Approve:\s+(\S+)\s*$", text, flags=re.M).group(1)
    assert approve_url.startswith(f"{live_server.url}/approvals/link/")
    assert approve_url in html

    # The approver opens it on their phone, signed out: a confirmation page, nothing decided.
    phone = chromium.new_context(viewport=PHONE)
    try:
        mobile = phone.new_page()
        mobile.goto(approve_url)
        mobile.get_by_role("heading", name="Approve this request?").wait_for()
        assert mobile.get_by_text(summary).is_visible()
        assert not ApprovalVote.objects.exists()
        # Laid out for the phone: nothing wider than the screen.
        assert mobile.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        confirm = mobile.get_by_role("button", name="Confirm approval")
        assert confirm.bounding_box()["width"] <= PHONE["width"]
        mobile.get_by_label("Comment (optional)").fill("Worth it for the October data.")
        confirm.click()
        mobile.get_by_role("heading", name="Approved — thank you").wait_for()

        request.refresh_from_db()
        assert request.status == RequestStatus.APPROVED
        assert request.decision.evidence["estimated_cost"] == "23000.00"
        vote = ApprovalVote.objects.get()
        assert (vote.approver, vote.via, vote.comment) == (
            approver,
            "email",
            "Worth it for the October data.",
        )
        events = ApprovalEvent.objects.count()

        # The same link again: already used, and nothing changes.
        response = mobile.goto(approve_url)
        assert response.status == 409
        mobile.get_by_role("heading", name="This link was already used").wait_for()
        assert mobile.get_by_text(
            re.compile(r"Already approved by you \(Alex Chen\) on ")
        ).is_visible()
        assert mobile.get_by_role("button", name="Confirm approval").count() == 0
    finally:
        phone.close()
    assert ApprovalVote.objects.count() == 1
    assert ApprovalEvent.objects.count() == events
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
