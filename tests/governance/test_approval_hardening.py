"""Approvals under attack: what a requester, a former approver or a crafted link must not be
able to do. Each test is the behaviour that closes one finding of the security review."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal as D
from urllib.parse import quote

import pytest
from django.core import mail, signing
from django.test import Client
from rest_framework.test import APIClient

from governance import emails, links, services
from governance.choices import RequestStatus, Role, StepMode, StepStatus
from governance.exceptions import DomainError
from governance.models import (
    ApprovalEvent,
    ApprovalLink,
    ApprovalRequest,
    ApprovalVote,
    DeploymentFreeze,
    RoleAssignment,
)
from governance.selectors import (
    approval_step_eligible,
    approval_steps_waiting_for,
    freezes_in_force,
)
from governance.services.approvals import SignInRequiredError
from governance.tokens import api_token_create
from tests.factories import PASSWORD, UserFactory
from tests.governance.test_approvals import (
    NOW,
    approvals_org,
    links_in,
    mails_to,
    policy_make,
    request_make,
    step_of,
    token_of,
)

CSRF = "k" * 32


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
def browser():
    return Client(enforce_csrf_checks=True)


def url(token: str) -> str:
    return f"/approvals/link/{token}/"


def confirm(client: Client, token: str, comment: str = ""):
    client.cookies["csrftoken"] = CSRF
    return client.post(url(token), {"comment": comment, "csrfmiddlewaretoken": CSRF})


def submit(people, committed, **fields) -> ApprovalRequest:
    request = request_make(people, **fields)
    with committed():
        return services.approval_request_submit(request=request, by=people.rhea)


def latest_token(user, action: str = "approve") -> str:
    return token_of(links_in(mails_to(user)[-1])[action])


def api(user) -> APIClient:
    client = APIClient()
    _, key = api_token_create(user=user, name="tests", scope="write", days=730, by=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


# --- 1. a currency other than the threshold's fails closed ----------------------------------


def test_a_request_in_another_currency_falls_under_the_cost_thresholded_policy(
    people, committed, clock
):
    policy = policy_make("Large", steps=((Role.FINANCE, 1, 24),), min_cost=D("20000"))
    for currency, cost in (("ZZZ", D("5000000")), ("EUR", D("1.00"))):
        request = submit(people, committed, estimated_cost=cost, currency=currency)
        assert request.status == RequestStatus.PENDING
        assert request.policy_id == policy.pk
        submitted = request.events.get(kind="submitted")
        assert f"The estimate is in {currency}" in submitted.text
        assert "counts as above the threshold" in submitted.text
        assert submitted.data["checks"][0]["outcome"] == "other_currency"


def test_below_the_threshold_in_its_currency_the_history_says_what_was_checked(
    people, committed, clock
):
    policy_make("Large", steps=((Role.FINANCE, 1, 24),), min_cost=D("20000"))
    policy_make("Long", steps=((Role.FINANCE, 1, 24),), min_gpu_hours=D("10000"))
    request = submit(people, committed, estimated_cost=D("5000.00"))  # 64 x 72 h = 4,608 h
    assert request.status == RequestStatus.APPROVED
    text = request.events.get(kind="approved").text
    assert "thresholds checked: " in text
    assert "Large: cost from $20,000.00, est. $5,000.00 is below" in text
    assert "Long: from 10000 GPU-hours, the request's 4608 are below" in text


def test_with_no_policy_at_all_the_history_says_so(people, committed, clock):
    request = submit(people, committed)
    assert request.status == RequestStatus.APPROVED
    assert "no active policy with a threshold covers a fine-tuning job for Research" in (
        request.events.get(kind="approved").text
    )


@pytest.mark.parametrize(
    "code", ["\u00c9\u00c9\u00c9", "12$", "US", "USDX", "u\u0131d", "\u00dfD", "U S", ""]
)
def test_a_currency_is_three_ascii_letters(people, code):
    with pytest.raises(DomainError, match="three-letter ISO 4217 code"):
        request_make(people, currency=code)
    response = api(people.rhea).post(
        "/api/v1/approval-requests/",
        {
            "kind": "fine_tuning",
            "title": "t",
            "business_unit": "RES",
            "estimated_cost": "1.00",
            "currency": code,
        },
        format="json",
    )
    assert response.status_code == 400
    assert "currency" in response.json()
    client = Client()
    client.force_login(people.rhea)
    page = client.post(
        "/approvals/new/",
        {
            "kind": "fine_tuning",
            "title": "t",
            "business_unit": people.research.pk,
            "estimated_cost": "1.00",
            "currency": code,
            "accelerator_count": "0",
            "duration_hours": "0",
        },
    )
    assert page.status_code == 200
    assert "currency" in page.context["form"].errors
    assert not ApprovalRequest.objects.exists()


def test_a_lower_case_code_is_the_same_currency(people):
    assert request_make(people, currency=" usd ").currency == "USD"


def test_the_signin_threshold_is_in_its_own_currency(people, committed, clock, settings, browser):
    settings.CAPGOV_APPROVAL_SIGNIN_ABOVE = D("20000")
    policy_make(steps=((Role.APPROVER, 1, 24),))
    # About $65,000 in dinars, under the number 20,000: the link alone must not do.
    request = submit(people, committed, estimated_cost=D("19999"), currency="KWD")
    token = latest_token(people.alex)
    assert "you will be asked to sign in" in mails_to(people.alex)[-1].body
    page = browser.get(url(token))
    assert "Sign in to confirm" in page.content.decode()
    assert "in KWD" in page.content.decode()
    response = confirm(browser, token)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={quote(url(token))}"
    with pytest.raises(SignInRequiredError):
        services.approval_link_confirm(token=token)
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING
    assert not ApprovalVote.objects.exists()
    # Where the threshold is set in dinars, the same request is under it.
    settings.CAPGOV_APPROVAL_SIGNIN_CURRENCY = "KWD"
    with committed():
        assert confirm(browser, token).status_code == 200
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED


def test_under_the_signin_threshold_in_its_currency_the_link_alone_is_enough(
    people, committed, clock, settings, browser
):
    settings.CAPGOV_APPROVAL_SIGNIN_ABOVE = D("20000")
    policy_make(steps=((Role.APPROVER, 1, 24),))
    submit(people, committed, estimated_cost=D("19999"))
    with committed():
        assert confirm(browser, latest_token(people.alex)).status_code == 200
    assert ApprovalVote.objects.count() == 1


# --- 2. a changed estimate discards the votes cast on the old one ---------------------------


def test_a_changed_estimate_after_a_vote_starts_sequential_approval_again(people, committed, clock):
    policy_make(steps=((Role.APPROVER, 1, 24), (Role.FINANCE, 1, 24)), min_cost=D("1000"))
    request = submit(people, committed)
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    assert step_of(request, 2).status == StepStatus.ACTIVE
    finance_token = latest_token(people.fiona)
    clock.move_to(NOW + timedelta(hours=1))
    mail.outbox.clear()
    with committed():
        services.approval_request_update(
            request=request, by=people.rhea, estimated_cost=D("9999999.00"), accelerator_count=4096
        )
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING
    assert [(s.order, s.status) for s in request.steps.order_by("order")] == [
        (1, StepStatus.ACTIVE),
        (2, StepStatus.WAITING),
    ]
    assert not ApprovalVote.objects.exists()
    reset = request.events.get(kind="votes_reset")
    assert reset.text.startswith("Votes reset because the estimate changed")
    assert "Alex Chen approved step 1" in reset.text
    assert reset.data["discarded"][0]["approver"] == "alex"
    # The history still holds the vote as it was cast.
    assert request.events.filter(kind="vote", actor=people.alex).exists()
    # The old links are dead; step 1's approvers get new ones for the new revision.
    assert services.approval_link_check(token=finance_token).state == "superseded"
    assert {m.to[0] for m in mail.outbox} == {people.alex.email, people.bea.email}
    fresh = latest_token(people.alex)
    assert services.approval_link_check(token=fresh).valid
    assert ApprovalLink.objects.get(pk=links.approval_token_read(fresh).link_id).revision == 2
    # Alex judges the new estimate afresh; only then does finance get asked again.
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    assert step_of(request, 2).status == StepStatus.ACTIVE
    with committed():
        services.approval_vote_cast(step=step_of(request, 2), by=people.fiona, approve=True)
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    assert request.decision.evidence["estimated_cost"] == "9999999.00"


def test_a_changed_estimate_after_a_vote_reopens_every_parallel_step(people, committed, clock):
    policy_make(steps=((Role.APPROVER, 1, 24), (Role.FINANCE, 1, 24)), mode=StepMode.PARALLEL)
    request = submit(people, committed)
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    assert step_of(request, 1).status == StepStatus.APPROVED
    mail.outbox.clear()
    with committed():
        services.approval_request_update(request=request, by=people.rhea, duration_hours=D(720))
    assert {s.status for s in request.steps.all()} == {StepStatus.ACTIVE}
    assert not ApprovalVote.objects.exists()
    assert "Approval starts again from every step" in request.events.get(kind="votes_reset").text
    assert {m.to[0] for m in mail.outbox} == {
        people.alex.email,
        people.bea.email,
        people.fiona.email,
    }
    with committed():
        services.approval_vote_cast(step=step_of(request, 2), by=people.fiona, approve=True)
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING  # step 1 must be approved again


def test_a_partly_approved_step_counts_only_votes_on_the_current_estimate(people, committed, clock):
    policy_make(steps=((Role.APPROVER, 2, 24),), min_cost=D("1000"))
    request = submit(people, committed)
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    with committed():
        services.approval_request_update(
            request=request, by=people.rhea, estimated_cost=D("9999999.00")
        )
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.bea, approve=True)
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING
    assert list(ApprovalVote.objects.values_list("approver__username", flat=True)) == ["bea"]


@pytest.mark.parametrize(
    "change",
    [
        {"currency": "EUR"},
        {"accelerator": "B200"},
        {"accelerator_count": 128},
        {"duration_hours": D(96)},
        {"estimated_cost": D("24000.00")},
    ],
)
def test_every_estimate_field_resets_the_votes(people, committed, clock, change):
    policy_make(steps=((Role.APPROVER, 1, 24), (Role.FINANCE, 1, 24)))
    request = submit(people, committed)
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    with committed():
        services.approval_request_update(request=request, by=people.rhea, **change)
    assert request.events.filter(kind="votes_reset").exists()
    assert not ApprovalVote.objects.exists()


def test_a_new_title_keeps_the_votes(people, committed, clock):
    policy_make(steps=((Role.APPROVER, 1, 24), (Role.FINANCE, 1, 24)))
    request = submit(people, committed)
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    with committed():
        services.approval_request_update(request=request, by=people.rhea, title="Clearer title")
    assert ApprovalVote.objects.count() == 1
    assert step_of(request, 1).status == StepStatus.APPROVED
    assert not request.events.filter(kind="votes_reset").exists()


# --- 3. deactivated people and people who lost the reason they were asked -------------------


def test_a_deactivated_approver_link_shows_a_dead_link_and_votes_nothing(
    people, committed, clock, browser
):
    policy_make(steps=((Role.APPROVER, 1, 24),))
    request = submit(people, committed)
    token = latest_token(people.alex)
    people.alex.is_active = False
    people.alex.save()
    page = browser.get(url(token))
    assert page.status_code == 403
    body = page.content.decode()
    assert "This link no longer works for its recipient" in body
    assert "deactivated" in body
    assert 'name="comment"' not in body
    with committed():
        assert confirm(browser, token, "offboarded").status_code == 403
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING
    assert not ApprovalVote.objects.exists()
    assert not approval_step_eligible(step=step_of(request, 1), user=people.alex)
    with pytest.raises(Exception, match="no longer works"):
        services.approval_link_confirm(token=token)


def test_an_approver_who_lost_the_role_has_a_dead_link(people, committed, clock, browser):
    policy_make(steps=((Role.APPROVER, 1, 24),))
    request = submit(people, committed)
    token = latest_token(people.alex)
    RoleAssignment.objects.filter(user=people.alex).delete()
    page = browser.get(url(token))
    assert page.status_code == 403
    assert "which they no longer hold" in page.content.decode()
    assert 'name="comment"' not in page.content.decode()
    with committed():
        assert confirm(browser, token).status_code == 403
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING


def escalate(people, committed, clock, **policy_fields):
    policy_make(steps=((Role.FINANCE, 1, 1),), **policy_fields)
    request = submit(people, committed)
    clock.move_to(NOW + timedelta(hours=2))
    with committed():
        assert services.approval_steps_escalate() == 1
    return request


def test_an_escalated_link_works_while_its_recipient_still_owns_the_unit(
    people, committed, clock, browser
):
    request = escalate(people, committed, clock)
    token = latest_token(people.olga)
    assert ApprovalLink.objects.get(approver=people.olga).escalated
    assert browser.get(url(token)).status_code == 200
    assert approval_steps_waiting_for(user=people.olga).exists()

    services.business_unit_owner_set(business_unit=people.research, owner=people.adam)
    page = browser.get(url(token))
    assert page.status_code == 403
    assert "no longer works for its recipient" in page.content.decode()
    assert "escalated to Research's owner" in services.approval_link_check(token=token).message
    assert 'name="comment"' not in page.content.decode()
    assert not approval_steps_waiting_for(user=people.olga).exists()
    with committed():
        assert confirm(browser, token).status_code == 403
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING
    assert not ApprovalVote.objects.exists()
    # Not on the page either.
    olga = Client()
    olga.force_login(people.olga)
    olga.post(
        f"/approvals/{request.pk}/vote/", {"step": step_of(request, 1).pk, "decision": "approve"}
    )
    assert not ApprovalVote.objects.exists()

    # Owner again: the reason holds again, and so does the link.
    services.business_unit_owner_set(business_unit=people.research, owner=people.olga)
    with committed():
        assert confirm(browser, token).status_code == 200
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED


def test_an_escalated_link_to_a_role_works_only_while_the_role_is_held(
    people, committed, clock, browser
):
    request = escalate(people, committed, clock, escalation_path=["role:platform_admin"])
    token = latest_token(people.pat)
    assert browser.get(url(token)).status_code == 200
    RoleAssignment.objects.filter(user=people.pat, role=Role.PLATFORM_ADMIN).delete()
    page = browser.get(url(token))
    assert page.status_code == 403
    assert "a holder of the Platform admin role" in page.content.decode()
    with committed():
        assert confirm(browser, token).status_code == 403
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING


def test_an_edit_resends_escalated_links_only_to_those_still_asked(people, committed, clock):
    request = escalate(people, committed, clock)
    services.business_unit_owner_set(business_unit=people.research, owner=people.adam)
    mail.outbox.clear()
    with committed():
        services.approval_request_update(request=request, by=people.rhea, title="Renamed")
    assert not mails_to(people.olga)
    assert mails_to(people.fiona)


# --- 5. a budget exception lifts only a budget's freeze ------------------------------------


def budget_exception(people, committed):
    policy_make("Exceptions", kinds=["budget_exception"], steps=((Role.FINANCE, 1, 24),))
    request = submit(
        people,
        committed,
        kind="budget_exception",
        title="Finish the evaluation",
        estimated_cost=D("100.00"),
        accelerator_count=0,
        duration_hours=D(0),
    )
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.fiona, approve=True)
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    return request


@pytest.mark.parametrize(
    ("by_admin", "reason"),
    [
        (True, "Security incident INC-42: no deploys"),
        (True, "Budget talk pending: frozen by hand"),
        (False, "Incident review (entered in the admin)"),
    ],
)
def test_a_budget_exception_leaves_a_freeze_a_person_imposed(
    people, committed, clock, by_admin, reason
):
    freeze = services.freeze_start(
        business_unit=people.research, reason=reason, by=people.pat if by_admin else None
    )
    request = budget_exception(people, committed)
    freeze.refresh_from_db()
    assert freeze.in_force
    assert freezes_in_force(business_unit_ids=[people.research.pk])
    kept = request.events.get(kind="freeze_kept")
    assert "a budget exception does not lift it" in kept.text
    assert not request.events.filter(kind="freeze_lifted").exists()


def test_a_budget_exception_lifts_the_freeze_a_budget_started(people, committed, clock):
    freeze = services.freeze_start(
        business_unit=people.research,
        reason="Budget Research GPU: 104 % of $20,000.00 spent in 2026-10",
        by=None,
        origin="budget",
    )
    request = budget_exception(people, committed)
    freeze.refresh_from_db()
    assert not freeze.in_force
    assert request.events.filter(kind="freeze_lifted").exists()
    assert DeploymentFreeze.objects.filter(lifted_at=None).count() == 0


# --- 6. above the threshold, a fresh sign-in ------------------------------------------------


@pytest.fixture
def above(people, committed, clock, settings):
    settings.CAPGOV_APPROVAL_SIGNIN_ABOVE = D("20000.00")
    policy_make(steps=((Role.APPROVER, 1, 24),))
    submit(people, committed)
    return latest_token(people.alex)


def test_a_sign_in_older_than_the_limit_is_asked_again(people, above, clock, browser, committed):
    browser.login(username="alex", password=PASSWORD)
    clock.move_to(NOW + timedelta(minutes=16))
    page = browser.get(url(above))
    assert page.status_code == 200
    assert "Sign in to confirm" in page.content.decode()
    assert "more than 15 minutes ago" in page.content.decode()
    assert 'name="comment"' not in page.content.decode()
    response = confirm(browser, above)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={quote(url(above))}"
    assert not ApprovalVote.objects.exists()
    # Signing in again makes it fresh.
    browser.login(username="alex", password=PASSWORD)
    with committed():
        assert confirm(browser, above, "Fresh.").status_code == 200
    assert ApprovalVote.objects.get().approver == people.alex


def test_a_sign_in_within_the_limit_confirms(people, above, clock, browser, committed):
    browser.login(username="alex", password=PASSWORD)
    clock.move_to(NOW + timedelta(minutes=14))
    with committed():
        assert confirm(browser, above).status_code == 200
    assert ApprovalVote.objects.count() == 1


def test_the_limit_is_a_setting(people, above, clock, browser, committed, settings):
    settings.CAPGOV_APPROVAL_SIGNIN_MAX_AGE_MINUTES = 60
    browser.login(username="alex", password=PASSWORD)
    clock.move_to(NOW + timedelta(minutes=45))
    with committed():
        assert confirm(browser, above).status_code == 200


def test_the_service_wants_the_time_of_the_sign_in(people, above, clock):
    with pytest.raises(SignInRequiredError, match="older than 15 minutes"):
        services.approval_link_confirm(token=above, signed_in=people.alex)
    with pytest.raises(SignInRequiredError):
        services.approval_link_confirm(
            token=above, signed_in=people.alex, signed_in_at=NOW - timedelta(minutes=20)
        )
    vote = services.approval_link_confirm(token=above, signed_in=people.alex, signed_in_at=NOW)
    assert vote.approver == people.alex


def test_a_session_without_a_noted_sign_in_is_not_fresh(people, above, clock, browser):
    browser.login(username="alex", password=PASSWORD)
    session = browser.session
    del session[services.approvals.SIGNED_IN_AT_SESSION_KEY]
    session.save()
    assert confirm(browser, above).status_code == 302
    assert not ApprovalVote.objects.exists()


# --- 9. no control character reaches a subject ---------------------------------------------


def test_a_carriage_return_in_the_accelerator_never_reaches_the_subject(people, committed, clock):
    policy_make(steps=((Role.APPROVER, 1, 24),))
    request = submit(people, committed, accelerator="H100\rBcc: evil@example.com")
    assert request.status == RequestStatus.PENDING
    sent = mails_to(people.alex)
    assert sent, "the mail must still go out"
    message = sent[0].message()  # what the backend puts on the wire
    assert "\r" not in sent[0].subject
    assert "\n" not in sent[0].subject
    assert message["Bcc"] is None
    assert "evil@example.com" not in (message.get_all("To") or [])
    assert "H100 Bcc: evil@example.com" in sent[0].subject
    # The outcome mail to the requester too.
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    outcome = mails_to(people.rhea)[-1]
    assert outcome.message()["Bcc"] is None


def test_a_line_break_in_the_title_never_reaches_a_subject(people, committed, clock):
    policy_make(steps=((Role.APPROVER, 1, 24),))
    submit(people, committed, title="Ranker\r\nX-Injected: yes")
    for message in mail.outbox:
        assert message.message()["X-Injected"] is None


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a\rb", "a b"),
        ("a\r\nb", "a b"),
        ("a\x00b\x0bc\x1fd", "a b c d"),
        ("a\u2028b\u2029c\x85d", "a b c d"),
        ("tab\there", "tab here"),
        ("rtl\u202eevil", "rtl evil"),
        ("x" * 300, "x" * 200),
    ],
)
def test_subjects_are_one_printable_line(raw, clean):
    assert emails.subject_clean(raw) == clean


# --- 10. bounds, comments, malformed tokens ------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("accelerator_count", 10**20),
        ("accelerator_count", 2**40),
        ("accelerator_count", 1_000_001),
        ("duration_hours", "100000.01"),
        ("duration_hours", "99999999.99"),
        ("estimated_cost", "1000000000000000.01"),
        ("estimated_cost", "1e400"),
    ],
)
def test_the_api_refuses_estimates_out_of_bounds(people, field, value):
    body = {
        "kind": "fine_tuning",
        "title": "t",
        "business_unit": "RES",
        "estimated_cost": "1.00",
        "accelerator_count": 1,
        "duration_hours": "1",
        field: value,
    }
    response = api(people.rhea).post(
        "/api/v1/approval-requests/", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400
    assert field in response.json()
    assert not ApprovalRequest.objects.exists()


def test_the_largest_estimate_is_accepted(people):
    body = {
        "kind": "fine_tuning",
        "title": "t",
        "business_unit": "RES",
        "estimated_cost": "1000000000000000.00",
        "accelerator_count": 1_000_000,
        "duration_hours": "100000",
    }
    response = api(people.rhea).post("/api/v1/approval-requests/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["gpu_hours"] == "100000000000.00"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("accelerator_count", 1_000_001, "at most 1,000,000"),
        ("duration_hours", D("100000.01"), "at most 100,000 hours"),
        ("estimated_cost", D("1000000000000000.01"), "at most 1,000,000,000,000,000"),
    ],
)
def test_the_service_refuses_estimates_out_of_bounds(people, field, value, message):
    with pytest.raises(DomainError, match=message):
        request_make(people, **{field: value})


def test_the_form_refuses_estimates_out_of_bounds(people):
    client = Client()
    client.force_login(people.rhea)
    page = client.post(
        "/approvals/new/",
        {
            "kind": "fine_tuning",
            "title": "t",
            "business_unit": people.research.pk,
            "estimated_cost": "1000000000000001",
            "currency": "USD",
            "accelerator_count": "1000001",
            "duration_hours": "100001",
        },
    )
    errors = page.context["form"].errors
    assert {"estimated_cost", "accelerator_count", "duration_hours"} <= set(errors)
    assert not ApprovalRequest.objects.exists()


def test_a_vote_comment_over_the_api_is_at_most_4000_characters(people, committed, clock):
    policy_make(steps=((Role.APPROVER, 1, 24),))
    request = submit(people, committed)
    alex = api(people.alex)
    path = f"/api/v1/approval-requests/{request.pk}/reject/"
    response = alex.post(path, {"comment": "x" * 4001}, format="json")
    assert response.status_code == 400
    assert "comment" in response.json()
    assert not ApprovalVote.objects.exists()
    with pytest.raises(DomainError, match="at most 4,000 characters"):
        services.approval_vote_cast(
            step=step_of(request, 1), by=people.alex, approve=False, comment="y" * 4001
        )
    with committed():
        assert alex.post(path, {"comment": "x" * 4000}, format="json").status_code == 200
    assert len(ApprovalVote.objects.get().comment) == 4000


@pytest.mark.parametrize(
    "payload",
    [
        {"l": 5, "a": "a"},
        {"l": ["x"], "a": "a"},
        {"l": {"x": 1}, "a": "a"},
        {"l": None, "a": "a"},
        {"l": "not-a-uuid", "a": "a"},
        {"l": "00000000-0000-0000-0000-000000000000", "a": ["a"]},
        {"l": "00000000-0000-0000-0000-000000000000", "a": "z"},
        {"a": "a"},
        [1],
        "text",
        5,
        None,
    ],
)
def test_a_genuinely_signed_token_of_the_wrong_shape_is_tampered(db, payload):
    token = signing.dumps(payload, salt=links.APPROVAL_LINK_SALT)
    with pytest.raises(links.LinkTamperedError):
        links.approval_token_read(token)
    page = Client(raise_request_exception=False).get(url(token))
    assert page.status_code == 400
    assert "This link is not genuine" in page.content.decode()
    assert not ApprovalEvent.objects.exists()


def test_a_user_inactive_is_never_waiting_for(people, committed, clock):
    policy_make(steps=((Role.APPROVER, 1, 24),))
    submit(people, committed)
    assert approval_steps_waiting_for(user=people.alex).exists()
    people.alex.is_active = False
    people.alex.save()
    assert not approval_steps_waiting_for(user=people.alex).exists()


def test_a_reset_forgets_the_escalation(people, committed, clock):
    request = escalate(people, committed, clock)
    olga_link = ApprovalLink.objects.get(approver=people.olga)
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.olga, approve=True)
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    assert olga_link.escalated
    # A second request: olga votes at level 1, then the estimate changes.
    policy_make("Two", priority=1, steps=((Role.FINANCE, 2, 1),))
    other_finance = UserFactory(username="fred", roles=[Role.FINANCE])
    second = submit(people, committed)
    clock.move_to(NOW + timedelta(hours=4))
    with committed():
        services.approval_steps_escalate()
    with committed():
        services.approval_vote_cast(step=step_of(second, 1), by=people.olga, approve=True)
    with committed():
        services.approval_request_update(
            request=second, by=people.rhea, estimated_cost=D("50000.00")
        )
    step = step_of(second, 1)
    assert (step.status, step.escalation_level) == (StepStatus.ACTIVE, 0)
    # The owner was asked by an escalation that no longer stands.
    assert not approval_step_eligible(step=step, user=people.olga)
    assert approval_step_eligible(step=step, user=other_finance)


def test_editing_the_estimate_on_the_page_says_the_votes_no_longer_count(people, committed, clock):
    policy_make(steps=((Role.APPROVER, 1, 24), (Role.FINANCE, 1, 24)))
    request = submit(people, committed)
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    rhea = Client()
    rhea.force_login(people.rhea)
    data = {
        "title": request.title,
        "estimated_cost": "46000.00",
        "currency": "USD",
        "accelerator": "H100",
        "accelerator_count": "128",
        "duration_hours": "72",
        "needed_by": "",
        "description": "",
    }
    with committed():
        response = rhea.post(f"/approvals/{request.pk}/edit/", data, follow=True)
    assert response.status_code == 200
    assert "the votes cast so far no longer count" in response.content.decode()
    assert step_of(request, 1).status == StepStatus.ACTIVE
    assert not ApprovalVote.objects.exists()
