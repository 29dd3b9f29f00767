"""Approval requests through their services: policies, steps, votes, mails, freezes, expiry,
escalation. The helpers at the top are shared by the link, page and API tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command

from governance import services
from governance.choices import (
    DecisionKind,
    DecisionOutcome,
    RequestStatus,
    Role,
    StepStatus,
)
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import (
    ApprovalEvent,
    ApprovalLink,
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalVote,
    BusinessUnit,
    Decision,
    DeploymentFreeze,
    PolicyStep,
    User,
)
from tests.factories import Org, OrgFactory, UserFactory

NOW = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
# The journey's summary line; \u00d7 is the multiplication sign of "64 x H100".
SUMMARY = "Fine-tuning job: 64 \u00d7 H100 for 72 h, est. $23,000.00, Research BU"
DEMO_POLICIES = (
    Path(__file__).resolve().parents[2] / "governance" / "demo" / "approval_policies.yaml"
)


# --- shared helpers -----------------------------------------------------------------------


@dataclass
class People:
    org: Org
    research: BusinessUnit
    ads: BusinessUnit
    rhea: User  # ML engineer in Research: files the requests
    adam: User  # ML engineer in Ads
    alex: User  # approver
    bea: User  # approver
    fiona: User  # finance
    pat: User  # platform admin
    olga: User  # owns Research, holds no approving role


def approvals_org() -> People:
    org = OrgFactory.build_org()
    olga = UserFactory(username="olga", first_name="Olga", last_name="Berg", roles=[])
    services.business_unit_owner_set(business_unit=org.research, owner=olga)
    return People(
        org=org,
        research=org.research,
        ads=org.ads,
        rhea=org.researcher,
        adam=org.ads_engineer,
        alex=UserFactory(
            username="alex", first_name="Alex", last_name="Chen", roles=[Role.APPROVER]
        ),
        bea=UserFactory(username="bea", first_name="Bea", last_name="Kahn", roles=[Role.APPROVER]),
        fiona=org.finance,
        pat=org.admin,
        olga=olga,
    )


def policy_make(
    name: str = "Large GPU jobs",
    *,
    steps=((Role.APPROVER, 1, 24),),
    units=(),
    **fields,
) -> ApprovalPolicy:
    """A policy with steps given as (role, required approvals, wait hours)."""
    policy = ApprovalPolicy.objects.create(name=name, **fields)
    for order, (role, required, wait) in enumerate(steps, start=1):
        PolicyStep.objects.create(
            policy=policy, order=order, role=role, required_approvals=required, wait_hours=wait
        )
    if units:
        policy.business_units.set(units)
    return policy


def request_make(people: People, *, by: User | None = None, **fields) -> ApprovalRequest:
    """A draft of the journey's job: 64 x H100 for 72 h, est. $23,000, Research."""
    values = {
        "kind": "fine_tuning",
        "title": "Fine-tune ranker-7b on October clicks",
        "business_unit": people.research,
        "estimated_cost": D("23000.00"),
        "accelerator": "H100",
        "accelerator_count": 64,
        "duration_hours": D(72),
    }
    return services.approval_request_create(by=by or people.rhea, **{**values, **fields})


def links_in(message) -> dict[str, str]:
    """The approve and reject links of an approval mail's text part."""
    found = dict(re.findall(r"^(Approve|Reject):\s+(\S+)$", message.body, flags=re.M))
    return {"approve": found["Approve"], "reject": found["Reject"]}


def token_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def mails_to(user: User) -> list:
    return [m for m in mail.outbox if user.email in m.to]


def step_of(request: ApprovalRequest, order: int):
    return request.steps.get(order=order)


@pytest.fixture
def people(db) -> People:
    return approvals_org()


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run what a block enqueues on commit (the mails), as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


@pytest.fixture
def two_steps(people):
    return policy_make(
        steps=((Role.APPROVER, 1, 24), (Role.FINANCE, 1, 48)),
        min_cost=D("20000.00"),
        kinds=["fine_tuning", "batch_inference"],
    )


def submitted(people, committed, **fields) -> ApprovalRequest:
    request = request_make(people, **fields)
    with committed():
        return services.approval_request_submit(request=request, by=people.rhea)


# --- submitting ---------------------------------------------------------------------------


def test_submit_copies_the_steps_and_mails_only_the_first_step(people, two_steps, committed, clock):
    request = submitted(people, committed)

    assert request.status == RequestStatus.PENDING
    assert request.policy == two_steps
    assert request.escalation_path == ["bu_owner", "role:platform_admin"]
    first, second = request.steps.order_by("order")
    assert (first.role, first.status, first.due_at) == (
        Role.APPROVER,
        StepStatus.ACTIVE,
        NOW + timedelta(hours=24),
    )
    assert (second.role, second.status, second.due_at) == (Role.FINANCE, StepStatus.WAITING, None)
    assert sorted(m.to[0] for m in mail.outbox) == [people.alex.email, people.bea.email]
    assert not mails_to(people.fiona)
    kinds = list(request.events.values_list("kind", flat=True))
    assert kinds[:3] == ["created", "submitted", "step_activated"]
    assert kinds.count("mailed") == 2


def test_second_step_refuses_votes_until_the_first_is_approved(people, two_steps, committed):
    request = submitted(people, committed)
    with pytest.raises(ConflictError, match="opens when the steps before it are approved"):
        services.approval_vote_cast(step=step_of(request, 2), by=people.fiona, approve=True)

    mail.outbox.clear()
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)

    assert step_of(request, 1).status == StepStatus.APPROVED
    assert step_of(request, 2).status == StepStatus.ACTIVE
    assert [m.to for m in mail.outbox] == [[people.fiona.email]]
    # Bea's link for step 1 is no longer needed.
    bea_link = ApprovalLink.objects.get(approver=people.bea)
    assert bea_link.superseded_at is not None


def test_all_steps_approved_is_a_decision_with_the_estimate(people, two_steps, committed):
    request = submitted(people, committed)
    with committed():
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
        services.approval_vote_cast(
            step=step_of(request, 2), by=people.fiona, approve=True, comment="In budget."
        )

    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    decision = request.decision
    assert (decision.kind, decision.outcome) == (
        DecisionKind.APPROVAL_REQUEST,
        DecisionOutcome.APPROVED,
    )
    assert decision.decided_by == people.fiona
    assert decision.decided_as == Role.FINANCE
    assert decision.subject == request
    assert decision.business_unit == people.research
    assert decision.evidence["estimated_cost"] == "23000.00"
    assert decision.evidence["gpu_hours"] == "4608.00"
    assert decision.evidence["summary"] == SUMMARY
    assert [len(s["votes"]) for s in decision.evidence["steps"]] == [1, 1]
    # The requester hears the outcome.
    assert mails_to(people.rhea)[-1].subject.startswith("Approved: ")


def test_parallel_policy_opens_every_step_at_once(people, committed):
    policy_make(steps=((Role.APPROVER, 1, 24), (Role.FINANCE, 1, 24)), mode="parallel")
    request = submitted(people, committed)
    assert set(request.steps.values_list("status", flat=True)) == {StepStatus.ACTIVE}
    assert {m.to[0] for m in mail.outbox} == {
        people.alex.email,
        people.bea.email,
        people.fiona.email,
    }
    services.approval_vote_cast(step=step_of(request, 2), by=people.fiona, approve=True)
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING
    services.approval_vote_cast(step=step_of(request, 1), by=people.bea, approve=True)
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED


def test_a_step_that_needs_two_approvals_waits_for_the_second(people, committed):
    policy_make(steps=((Role.APPROVER, 2, 24),))
    request = submitted(people, committed)
    services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    assert step_of(request, 1).status == StepStatus.ACTIVE
    services.approval_vote_cast(step=step_of(request, 1), by=people.bea, approve=True)
    request.refresh_from_db()
    assert step_of(request, 1).status == StepStatus.APPROVED
    assert request.status == RequestStatus.APPROVED


def test_a_rejection_ends_the_request_and_says_why(people, two_steps, committed):
    request = submitted(people, committed)
    with pytest.raises(DomainError, match="Say why"):
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=False)
    with committed():
        services.approval_vote_cast(
            step=step_of(request, 1),
            by=people.alex,
            approve=False,
            comment="Use the spot pool next week instead.",
        )
    request.refresh_from_db()
    assert request.status == RequestStatus.REJECTED
    assert list(request.steps.order_by("order").values_list("status", flat=True)) == [
        StepStatus.REJECTED,
        StepStatus.CANCELLED,
    ]
    assert request.decision.outcome == DecisionOutcome.REJECTED
    assert "Use the spot pool next week instead." in request.decision.rationale
    assert not ApprovalLink.objects.filter(used_at=None, superseded_at=None).exists()
    with pytest.raises(ConflictError, match="no more votes"):
        services.approval_vote_cast(step=step_of(request, 1), by=people.bea, approve=True)


def test_nobody_approves_their_own_request(people, committed):
    policy_make()
    people.rhea.role_assignments.create(role=Role.APPROVER)
    people.rhea.__dict__.pop("role_set", None)
    request = submitted(people, committed)
    assert not mails_to(people.rhea)
    with pytest.raises(PermissionDeniedError, match="Nobody approves their own request"):
        services.approval_vote_cast(step=step_of(request, 1), by=people.rhea, approve=True)
    assert not ApprovalVote.objects.exists()


def test_a_vote_needs_the_steps_role(people, two_steps, committed):
    request = submitted(people, committed)
    for outsider in (people.adam, people.fiona, people.olga):
        with pytest.raises(PermissionDeniedError, match="Approver role"):
            services.approval_vote_cast(step=step_of(request, 1), by=outsider, approve=True)
    assert not ApprovalVote.objects.exists()


def test_one_vote_per_person_per_step(people, committed):
    policy_make(steps=((Role.APPROVER, 2, 24),))
    request = submitted(people, committed)
    services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    with pytest.raises(ConflictError, match="You already approved step 1"):
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    assert ApprovalVote.objects.count() == 1


def test_no_policy_applies_and_the_request_is_approved_at_once(people, two_steps, committed):
    request = submitted(people, committed, estimated_cost=D("900.00"))
    assert request.status == RequestStatus.APPROVED
    assert not request.steps.exists()
    assert request.decision is None
    assert "No approval policy requires approval" in request.events.last().text
    assert not mail.outbox


def test_submit_is_for_the_requester_and_only_once(people, two_steps, committed):
    request = request_make(people)
    with pytest.raises(PermissionDeniedError):
        services.approval_request_submit(request=request, by=people.alex)
    submitted_request = services.approval_request_submit(request=request, by=people.rhea)
    with pytest.raises(ConflictError, match="already pending"):
        services.approval_request_submit(request=submitted_request, by=people.rhea)


def test_filing_is_for_members_of_the_unit(people):
    with pytest.raises(PermissionDeniedError, match="Research is not one of them"):
        request_make(people, by=people.adam)
    with pytest.raises(DomainError, match="three-letter"):
        request_make(people, currency="dollars")
    with pytest.raises(DomainError, match="for how many hours"):
        request_make(people, duration_hours=D(0))
    assert request_make(people, by=people.pat).requested_by == people.pat


# --- editing ------------------------------------------------------------------------------


def test_editing_a_pending_request_supersedes_every_link_and_sends_new_ones(
    people, two_steps, committed
):
    request = submitted(people, committed)
    old = set(ApprovalLink.objects.values_list("pk", flat=True))
    mail.outbox.clear()
    with committed():
        request = services.approval_request_update(
            request=request, by=people.rhea, estimated_cost=D("25000.00"), title="Bigger run"
        )
    assert request.revision == 2
    assert all(link.superseded_at for link in ApprovalLink.objects.filter(pk__in=old)), (
        "every link sent for revision 1 stops working"
    )
    fresh = ApprovalLink.objects.exclude(pk__in=old)
    assert {(link.approver.username, link.revision) for link in fresh} == {
        ("alex", 2),
        ("bea", 2),
    }
    assert sorted(m.to[0] for m in mail.outbox) == [people.alex.email, people.bea.email]
    assert "$25,000.00" in mail.outbox[0].body
    edited = request.events.get(kind="edited")
    assert edited.data["changes"]["estimated_cost"] == ["23000.00", "25000.00"]


def test_an_edit_without_changes_keeps_the_revision(people, two_steps, committed):
    request = submitted(people, committed)
    same = services.approval_request_update(request=request, by=people.rhea, title=request.title)
    assert same.revision == 1
    assert not ApprovalLink.objects.exclude(superseded_at=None).exists()


def test_an_edit_that_needs_another_policy_is_refused(people, two_steps, committed):
    policy_make("Huge jobs", priority=1, min_cost=D("100000.00"), steps=((Role.FINANCE, 2, 24),))
    request = submitted(people, committed)
    with pytest.raises(ConflictError, match="falls under Huge jobs instead of Large GPU jobs"):
        services.approval_request_update(
            request=request, by=people.rhea, estimated_cost=D("250000.00")
        )
    with pytest.raises(ConflictError, match="fixed"):
        services.approval_request_update(request=request, by=people.rhea, kind="new_endpoint")
    request.refresh_from_db()
    assert (request.revision, request.estimated_cost) == (1, D("23000.00"))


def test_only_the_requester_edits_and_only_while_open(people, committed):
    policy_make()
    request = submitted(people, committed)
    with pytest.raises(PermissionDeniedError, match="who filed it"):
        services.approval_request_update(request=request, by=people.alex, title="Mine now")
    services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    with pytest.raises(ConflictError, match="only drafts and pending"):
        services.approval_request_update(request=request, by=people.rhea, title="Later")


def test_withdrawing_cancels_the_steps_and_links(people, two_steps, committed):
    request = submitted(people, committed)
    with pytest.raises(PermissionDeniedError):
        services.approval_request_withdraw(request=request, by=people.alex)
    request = services.approval_request_withdraw(
        request=request, by=people.rhea, reason="Found a smaller model."
    )
    assert request.status == RequestStatus.WITHDRAWN
    assert set(request.steps.values_list("status", flat=True)) == {StepStatus.CANCELLED}
    assert not ApprovalLink.objects.filter(superseded_at=None).exists()
    assert "Found a smaller model." in request.events.last().text


# --- freezes ------------------------------------------------------------------------------


@pytest.fixture
def frozen(people, clock):
    clock.move_to(NOW - timedelta(days=2))
    # The system's freeze on a budget breach, as ``costs`` starts it.
    freeze = services.freeze_start(
        business_unit=people.research,
        reason="Budget Research GPU: 100 % of $20,000.00 spent in 2026-10",
        origin="budget",
    )
    clock.move_to(NOW)
    return freeze


def test_a_frozen_unit_cannot_submit_costly_requests(people, two_steps, frozen):
    request = request_make(people)
    with pytest.raises(ConflictError) as refused:
        services.approval_request_submit(request=request, by=people.rhea)
    assert refused.value.message.startswith(
        "Research is under a deployment freeze since 2026-10-03 09:00 UTC: "
        "Budget Research GPU: 100 % of $20,000.00 spent in 2026-10."
    )
    request.refresh_from_db()
    assert request.status == RequestStatus.DRAFT


def test_a_freeze_stops_approvals_of_pending_requests_but_not_rejections(
    people, two_steps, committed
):
    request = submitted(people, committed)
    services.freeze_start(business_unit=people.research, reason="Budget breached")
    with pytest.raises(ConflictError, match="under a deployment freeze"):
        services.approval_vote_cast(step=step_of(request, 1), by=people.alex, approve=True)
    services.approval_vote_cast(
        step=step_of(request, 1), by=people.alex, approve=False, comment="Frozen: not now."
    )
    request.refresh_from_db()
    assert request.status == RequestStatus.REJECTED


def test_an_approved_budget_exception_lifts_the_freeze(people, two_steps, frozen, committed):
    policy_make(
        "Budget exceptions", priority=5, kinds=["budget_exception"], steps=((Role.FINANCE, 1, 8),)
    )
    exception = submitted(
        people,
        committed,
        kind="budget_exception",
        title="Finish the October evaluation run",
        estimated_cost=D("4000.00"),
        accelerator_count=0,
        duration_hours=D(0),
    )
    assert exception.status == RequestStatus.PENDING
    with committed():
        services.approval_vote_cast(
            step=step_of(exception, 1), by=people.fiona, approve=True, comment="One-off."
        )
    exception.refresh_from_db()
    assert exception.status == RequestStatus.APPROVED
    assert exception.decision.kind == DecisionKind.BUDGET_EXCEPTION
    frozen.refresh_from_db()
    assert not frozen.in_force
    assert frozen.lifted_by is None
    assert f"request #{exception.pk}" in frozen.lift_reason
    assert exception.events.filter(kind="freeze_lifted").exists()
    # Costly requests go through again.
    job = request_make(people)
    assert services.approval_request_submit(request=job, by=people.rhea).status == "pending"


def test_a_budget_exception_no_policy_covers_needs_a_platform_admin(people, frozen, committed):
    exception = submitted(people, committed, kind="budget_exception", estimated_cost=D("10"))
    assert exception.status == RequestStatus.PENDING
    assert [(s.role, s.status) for s in exception.steps.all()] == [
        (Role.PLATFORM_ADMIN, StepStatus.ACTIVE)
    ]
    assert mails_to(people.pat)


# --- expiry -------------------------------------------------------------------------------


def test_a_pending_request_expires_when_it_is_needed_and_undecided(
    people, two_steps, committed, clock
):
    request = submitted(people, committed, needed_by=NOW + timedelta(days=2))
    assert services.approval_requests_expire() == 0
    clock.move_to(NOW + timedelta(days=2, minutes=1))
    with committed():
        assert services.approval_requests_expire() == 1
    request.refresh_from_db()
    assert request.status == RequestStatus.EXPIRED
    assert set(request.steps.values_list("status", flat=True)) == {StepStatus.CANCELLED}
    assert not ApprovalLink.objects.filter(superseded_at=None).exists()
    assert mails_to(people.rhea)[-1].subject.startswith("Expired: ")
    assert services.approval_requests_expire() == 0  # idempotent


def test_needed_by_must_be_ahead(people, clock):
    with pytest.raises(DomainError, match="in the past"):
        request_make(people, needed_by=NOW - timedelta(hours=1))


# --- escalation ---------------------------------------------------------------------------


def test_an_overdue_step_escalates_to_the_owner_then_the_platform_lead_once_per_level(
    people, two_steps, committed, clock
):
    submitted(people, committed)
    mail.outbox.clear()
    with committed():
        assert services.approval_steps_escalate() == 0  # not due yet

    clock.move_to(NOW + timedelta(hours=24, minutes=1))
    with committed():
        assert services.approval_steps_escalate() == 1
    assert [m.to for m in mail.outbox] == [[people.olga.email]]
    assert mail.outbox[0].subject.startswith("Escalated: Approval needed")
    owner_link = ApprovalLink.objects.get(approver=people.olga)
    assert owner_link.escalated
    step = ApprovalLink.objects.get(approver=people.olga).step
    assert (step.escalation_level, step.due_at) == (1, NOW + timedelta(hours=48, minutes=1))
    with committed():
        assert services.approval_steps_escalate() == 0  # once per level

    clock.move_to(NOW + timedelta(hours=48, minutes=2))
    with committed():
        assert services.approval_steps_escalate() == 1
    assert [m.to for m in mail.outbox][1:] == [[people.pat.email]]

    clock.move_to(NOW + timedelta(hours=72, minutes=3))
    with committed():
        assert services.approval_steps_escalate() == 0
    step.refresh_from_db()
    assert (step.escalation_level, step.due_at) == (2, None)
    assert len(mail.outbox) == 2, "the end of the path mails nobody again"
    assert step.request.events.filter(kind="escalation_exhausted").count() == 1
    clock.move_to(NOW + timedelta(days=10))
    with committed():
        assert services.approval_steps_escalate() == 0
    assert len(mail.outbox) == 2
    assert step.request.events.filter(kind="escalated").count() == 2


def test_the_escalated_owner_can_approve_with_their_link(people, two_steps, committed, clock):
    request = submitted(people, committed)
    clock.move_to(NOW + timedelta(hours=25))
    mail.outbox.clear()
    with committed():
        services.approval_steps_escalate()
    token = token_of(links_in(mails_to(people.olga)[0])["approve"])
    with committed():
        vote = services.approval_link_confirm(token=token, comment="Go ahead.")
    assert (vote.approver, vote.via) == (people.olga, "email")
    assert step_of(request, 1).status == StepStatus.APPROVED
    # And on the page, as the person asked, without holding the role.
    assert services.approval_link_check(token=token).state == "used"


def test_a_step_nobody_can_approve_escalates_at_the_next_run(people, committed, clock):
    policy_make(steps=((Role.BOARD_PRODUCT, 1, 24),))
    submitted(people, committed)
    assert (
        "nobody other than the requester" in ApprovalEvent.objects.get(kind="step_activated").text
    )
    clock.move_to(NOW + timedelta(minutes=15))
    with committed():
        assert services.approval_steps_escalate() == 1
    assert mails_to(people.olga)


def test_beat_runs_the_escalation_every_quarter_hour(settings):
    from governance.celery import app

    entry = settings.CAPGOV_SCHEDULES["approval-steps-escalate"]
    assert entry["task"] == "governance.tasks.approval_steps_escalate"
    assert entry["schedule"] == 900
    assert "governance.tasks.approval_steps_escalate" in app.tasks
    assert "governance.tasks.approval_requests_expire" in app.tasks


# --- mails --------------------------------------------------------------------------------


def test_approval_mail_has_a_text_and_an_html_part_with_absolute_links(
    people, two_steps, committed, settings
):
    settings.CAPGOV_BASE_URL = "https://capgov.example.com/"
    submitted(people, committed)
    message = mails_to(people.alex)[0]
    assert message.subject == f"Approval needed: {SUMMARY}"
    assert SUMMARY in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    urls = links_in(message)
    for url in urls.values():
        assert url.startswith("https://capgov.example.com/approvals/link/")
        assert f'href="{url}"' in html
    assert urls["approve"] != urls["reject"]
    assert "Research BU" in html


# --- policies as data ---------------------------------------------------------------------


def test_the_demo_policies_load_and_load_again_without_changes(people):
    text = DEMO_POLICIES.read_text()
    first = services.approval_policies_load(text=text, file_name=DEMO_POLICIES.name)
    assert (first.created, first.updated) == (4, 0)
    again = services.approval_policies_load(text=text, file_name=DEMO_POLICIES.name)
    assert (again.created, again.updated) == (0, 0)
    large = ApprovalPolicy.objects.get(name="Large GPU jobs")
    assert large.min_cost == D("20000.00")
    assert [(s.order, s.role) for s in large.steps.all()] == [(1, "approver"), (2, "finance")]
    changed = text.replace("approvals: 1, wait_hours: 8}", "approvals: 2, wait_hours: 8}", 1)
    assert services.approval_policies_load(text=changed).updated == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("policies: [{name: X}]", "policies[1] (X): needs at least one step"),
        ("policies: [{name: X, steps: [{role: ceo}]}]", "step 1: role must be one of"),
        ("policies: [{name: X, kinds: [gpu], steps: [{role: approver}]}]", "kinds must be"),
        (
            "policies: [{name: X, business_units: [NOPE], steps: [{role: approver}]}]",
            "business unit(s) NOPE not defined",
        ),
        (
            "policies: [{name: X, escalation_path: [boss], steps: [{role: approver}]}]",
            "escalation_path",
        ),
        ("policies: [{name: X, min_cost: lots, steps: [{role: approver}]}]", "min_cost"),
        ("policies:\n  - name: [unclosed", "policies.yaml: line"),
        ("rules: []", "expected one key: policies"),
    ],
)
def test_policy_files_that_cannot_load_say_where(people, text, message):
    with pytest.raises(DomainError) as refused:
        services.approval_policies_load(text=text, file_name="policies.yaml")
    assert message in refused.value.message
    assert not ApprovalPolicy.objects.exists()


def test_load_approval_policies_command(people, capsys):
    call_command("load_approval_policies", str(DEMO_POLICIES))
    assert "4 created, 0 updated" in capsys.readouterr().out
    assert ApprovalPolicy.objects.count() == 4


def test_submitting_under_the_demo_policies(people, committed):
    services.approval_policies_load(text=DEMO_POLICIES.read_text())
    job = submitted(people, committed)
    assert job.policy.name == "Large GPU jobs"
    small = submitted(people, committed, estimated_cost=D("2400.00"), title="Small batch")
    assert small.policy.name == "GPU jobs"
    tiny = submitted(people, committed, estimated_cost=D("150.00"), title="Tiny")
    assert tiny.status == RequestStatus.APPROVED
    assert Decision.objects.count() == 0
    assert DeploymentFreeze.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_seed_demo_files_the_demo_requests_once(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", rows=300)
    call_command("seed_demo", rows=300)
    waiting = ApprovalRequest.objects.get(title="Fine-tune ranker-7b on October clicks")
    assert waiting.status == RequestStatus.PENDING
    decided = ApprovalRequest.objects.get(title="Batch-score the spring catalogue")
    assert decided.status == RequestStatus.APPROVED
    assert decided.decision is not None
    assert ApprovalRequest.objects.count() == 2


# --- two votes at the same moment ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_votes_cannot_both_complete_a_step():
    """Alex and Bea confirm at the same instant; the step needs one approval. The row locks
    make one of them wait and then find the step decided (PostgreSQL; SQLite serialises
    writers anyway)."""
    import threading

    from django.db import connection

    people = approvals_org()
    policy_make(steps=((Role.APPROVER, 1, 24), (Role.FINANCE, 1, 24)))
    request = request_make(people)
    services.approval_request_submit(request=request, by=people.rhea)
    step = step_of(request, 1)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def vote(person: User) -> None:
        try:
            start.wait()
            services.approval_vote_cast(step=step, by=person, approve=True)
            outcomes.append("voted")
        except ConflictError as exc:
            outcomes.append(exc.message)
        except Exception as exc:  # a deadlock or an integrity error would land here
            outcomes.append(f"error: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=vote, args=(p,)) for p in (people.alex, people.bea)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    if connection.vendor == "sqlite" and any(o.startswith("error") for o in outcomes):
        pytest.skip(f"SQLite refused the concurrent writer outright: {outcomes}")
    assert sorted(outcomes) == ["Step 1 is already approved.", "voted"], outcomes
    assert ApprovalVote.objects.filter(step=step).count() == 1
    assert ApprovalEvent.objects.filter(kind="step_activated", data__step=2).count() == 1
