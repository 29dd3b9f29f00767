"""The approval pages: requests, decisions and freezes, scoped by role and business unit."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from governance import services
from governance.choices import RequestStatus, Role, StepStatus
from governance.models import ApprovalRequest, ApprovalVote, DeploymentFreeze
from tests.factories import PASSWORD
from tests.governance.test_approvals import (
    NOW,
    SUMMARY,
    approvals_org,
    mails_to,
    policy_make,
    request_make,
    step_of,
)

LIST = reverse("governance:request-list")


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


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def requests_(people, committed, clock):
    """A pending Research job, a Research draft and a pending Ads job."""
    policy_make(steps=((Role.APPROVER, 1, 24), (Role.FINANCE, 1, 24)))
    with committed():
        job = request_make(people)
        services.approval_request_submit(request=job, by=people.rhea)
        draft = request_make(people, title="Draft: reserve 8 x A100")
        ads = request_make(
            people, by=people.adam, business_unit=people.ads, title="Ads batch scoring"
        )
        services.approval_request_submit(request=ads, by=people.adam)
    return {"job": job, "draft": draft, "ads": ads}


def titles(response) -> set[str]:
    return {r.title for r in response.context["page"].object_list}


# --- request list -------------------------------------------------------------------------


def test_request_list_is_scoped_to_the_unit_unless_a_wide_role(people, requests_):
    everything = {
        "Fine-tune ranker-7b on October clicks",
        "Draft: reserve 8 x A100",
        "Ads batch scoring",
    }
    assert titles(signed_in(people.rhea).get(LIST)) == everything - {"Ads batch scoring"}
    assert titles(signed_in(people.adam).get(LIST)) == {"Ads batch scoring"}
    assert titles(signed_in(people.olga).get(LIST)) == everything - {"Ads batch scoring"}
    for wide in (people.alex, people.fiona, people.pat):
        assert titles(signed_in(wide).get(LIST)) == everything
    detail = reverse("governance:request-detail", args=[requests_["job"].pk])
    assert signed_in(people.adam).get(detail).status_code == 404
    assert Client().get(LIST).status_code == 302  # sign in first


def test_request_list_filters(people, requests_):
    alex, rhea = signed_in(people.alex), signed_in(people.rhea)
    assert titles(alex.get(LIST, {"status": "draft"})) == {"Draft: reserve 8 x A100"}
    assert titles(alex.get(LIST, {"business_unit": "ADS"})) == {"Ads batch scoring"}
    assert titles(alex.get(LIST, {"kind": "new_endpoint"})) == set()
    assert titles(rhea.get(LIST, {"mine": "on"})) == {
        "Fine-tune ranker-7b on October clicks",
        "Draft: reserve 8 x A100",
    }
    waiting = alex.get(LIST, {"waiting": "on"})
    assert titles(waiting) == {"Fine-tune ranker-7b on October clicks", "Ads batch scoring"}
    assert waiting.context["waiting"] == 2
    assert titles(signed_in(people.fiona).get(LIST, {"waiting": "on"})) == set()
    assert titles(rhea.get(LIST, {"waiting": "on"})) == set()
    bad = alex.get(LIST, {"status": "nonsense"})
    assert titles(bad) == set()
    assert "These filters cannot be applied" in bad.content.decode()


def test_request_list_has_an_empty_state_that_says_what_to_do(people):
    body = signed_in(people.rhea).get(LIST).content.decode()
    assert "No approval requests yet" in body
    assert reverse("governance:request-create") in body


def test_request_list_queries_do_not_grow_with_rows(
    people, requests_, committed, django_assert_max_num_queries
):
    alex = signed_in(people.alex)
    alex.get(LIST)
    # One of these finds the steps an escalation asked alex about, to check he still holds
    # the reason he was asked: a fixed cost, not one per row.
    with django_assert_max_num_queries(10):
        alex.get(LIST)
    with committed():
        for n in range(8):
            job = request_make(people, title=f"Job {n}")
            services.approval_request_submit(request=job, by=people.rhea)
    with django_assert_max_num_queries(10):
        response = alex.get(LIST)
    assert len(response.context["page"].object_list) == 11


# --- filing, editing, voting on the page --------------------------------------------------


def form_data(**overrides) -> dict:
    data = {
        "kind": "fine_tuning",
        "title": "Fine-tune ranker-7b on October clicks",
        "estimated_cost": "23000.00",
        "currency": "usd",
        "accelerator": "H100",
        "accelerator_count": "64",
        "duration_hours": "72",
        "needed_by": "",
        "description": "Full fine-tune.",
    }
    return {**data, **overrides}


def test_filing_and_submitting_from_the_page_mails_the_approvers(people, committed, clock):
    policy_make(min_cost=D("20000.00"))
    rhea = signed_in(people.rhea)
    form = rhea.get(reverse("governance:request-create"))
    assert form.status_code == 200
    assert [u.code for u in form.context["form"].fields["business_unit"].queryset] == ["RES"]
    with committed():
        response = rhea.post(
            reverse("governance:request-create"),
            form_data(business_unit=people.research.pk, action="submit"),
        )
    request = ApprovalRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == request.get_absolute_url()
    assert request.status == RequestStatus.PENDING
    assert request.currency == "USD"
    assert {m.to[0] for m in mail.outbox} == {people.alex.email, people.bea.email}
    page = rhea.get(request.get_absolute_url()).content.decode()
    assert SUMMARY in page
    assert "You filed this request, so you cannot vote on it." in page


def test_filing_for_another_unit_is_not_offered(people):
    response = signed_in(people.rhea).post(
        reverse("governance:request-create"), form_data(business_unit=people.ads.pk)
    )
    assert response.status_code == 200
    assert "business_unit" in response.context["form"].errors
    assert not ApprovalRequest.objects.exists()
    assert signed_in(people.alex).get(reverse("governance:request-create")).status_code == 403


def test_a_frozen_unit_keeps_the_draft_and_shows_the_freeze(people, committed, clock):
    policy_make()
    services.freeze_start(business_unit=people.research, reason="Budget breached")
    rhea = signed_in(people.rhea)
    response = rhea.post(
        reverse("governance:request-create"),
        form_data(business_unit=people.research.pk, action="submit"),
        follow=True,
    )
    assert ApprovalRequest.objects.get().status == RequestStatus.DRAFT
    assert "Research is under a deployment freeze since" in response.content.decode()


def test_an_approver_votes_on_the_request_page(people, requests_, committed):
    job = requests_["job"]
    alex = signed_in(people.alex)
    page = alex.get(job.get_absolute_url())
    assert [s.order for s in page.context["votable"]] == [1]
    assert signed_in(people.adam).get(job.get_absolute_url()).status_code == 404
    assert signed_in(people.olga).get(job.get_absolute_url()).context["votable"] == []
    with committed():
        response = alex.post(
            reverse("governance:request-vote", args=[job.pk]),
            {"step": step_of(job, 1).pk, "decision": "approve", "comment": "Go."},
        )
    assert response.status_code == 302
    assert step_of(job, 1).status == StepStatus.APPROVED
    assert mails_to(people.fiona)
    page = alex.get(job.get_absolute_url()).content.decode()
    assert "Go." in page
    assert "Alex Chen approved step 1 (Approver)" in page  # the history


def test_a_refused_vote_says_why(people, requests_):
    job = requests_["job"]
    response = signed_in(people.olga).post(
        reverse("governance:request-vote", args=[job.pk]),
        {"step": step_of(job, 1).pk, "decision": "approve"},
    )
    assert response.status_code == 403
    assert "needs a person holding the Approver role" in response.content.decode()
    second = signed_in(people.fiona).post(
        reverse("governance:request-vote", args=[job.pk]),
        {"step": step_of(job, 2).pk, "decision": "approve"},
    )
    assert second.status_code == 409
    assert "opens when the steps before it are approved" in second.content.decode()
    assert not ApprovalVote.objects.exists()


def test_the_requester_edits_and_withdraws(people, requests_, committed):
    job = requests_["job"]
    edit = reverse("governance:request-update", args=[job.pk])
    assert signed_in(people.alex).get(edit).status_code == 403
    rhea = signed_in(people.rhea)
    form = rhea.get(edit).context["form"]
    assert form.fields["kind"].disabled
    assert form.fields["business_unit"].disabled
    with committed():
        response = rhea.post(
            edit,
            form_data(
                business_unit=people.research.pk, duration_hours="80", estimated_cost="25000"
            ),
        )
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.revision, job.duration_hours) == (2, D(80))
    response = rhea.post(
        reverse("governance:request-withdraw", args=[job.pk]), {"reason": "Not needed"}
    )
    job.refresh_from_db()
    assert job.status == RequestStatus.WITHDRAWN
    assert (
        signed_in(people.alex)
        .post(reverse("governance:request-withdraw", args=[requests_["ads"].pk]))
        .status_code
        == 302
    )
    assert ApprovalRequest.objects.get(pk=requests_["ads"].pk).status == RequestStatus.PENDING


def test_a_draft_is_submitted_from_its_page(people, requests_, committed):
    draft = requests_["draft"]
    with committed():
        signed_in(people.rhea).post(reverse("governance:request-submit", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.status == RequestStatus.PENDING


# --- decisions ----------------------------------------------------------------------------


@pytest.fixture
def decided(people, requests_, committed, clock):
    with committed():
        job, ads = requests_["job"], requests_["ads"]
        services.approval_vote_cast(step=step_of(job, 1), by=people.alex, approve=True)
        services.approval_vote_cast(step=step_of(job, 2), by=people.fiona, approve=True)
        clock.move_to(NOW + timedelta(days=3))
        services.approval_vote_cast(
            step=step_of(ads, 1), by=people.bea, approve=False, comment="Not this quarter."
        )
    return requests_


def test_decision_list_links_each_subject_and_is_scoped(people, decided):
    decisions = reverse("governance:decision-list")
    page = signed_in(people.alex).get(decisions)
    rows = page.context["page"].object_list
    assert [d.outcome for d in rows] == ["rejected", "approved"]
    body = page.content.decode()
    assert f'href="{decided["job"].get_absolute_url()}"' in body
    assert {d.title for d in signed_in(people.adam).get(decisions).context["page"].object_list} == {
        "Fine-tuning job: Ads batch scoring"
    }


def test_decision_list_filters(people, decided):
    alex = signed_in(people.alex)
    decisions = reverse("governance:decision-list")

    def outcomes(**query):
        return [d.outcome for d in alex.get(decisions, query).context["page"].object_list]

    assert outcomes(outcome="approved") == ["approved"]
    assert outcomes(business_unit="ADS") == ["rejected"]
    assert outcomes(kind="budget_exception") == []
    assert outcomes(decided_from="2026-10-06") == ["rejected"]
    assert outcomes(decided_to="2026-10-05") == ["approved"]
    assert outcomes(subject_type="governance.approvalrequest", subject_id=decided["job"].pk) == [
        "approved"
    ]
    assert outcomes(subject_type="nope.nothing") == []


def test_decision_list_queries_do_not_grow_with_rows(
    people, decided, committed, django_assert_max_num_queries
):
    alex = signed_in(people.alex)
    url = reverse("governance:decision-list")
    alex.get(url)
    with django_assert_max_num_queries(8):
        alex.get(url)
    with committed():
        for n in range(6):
            job = request_make(people, title=f"Job {n}")
            services.approval_request_submit(request=job, by=people.rhea)
            services.approval_vote_cast(
                step=step_of(job, 1), by=people.bea, approve=False, comment="No."
            )
    with django_assert_max_num_queries(8):
        response = alex.get(url)
    assert len(response.context["page"].object_list) == 8


# --- freezes ------------------------------------------------------------------------------


@pytest.fixture
def freezes(people, clock):
    lifted = services.freeze_start(business_unit=people.ads, reason="September overspend")
    services.freeze_lift(freeze=lifted, by=people.pat, reason="New budget approved")
    in_force = services.freeze_start(business_unit=people.research, reason="Budget breached")
    return {"lifted": lifted, "in_force": in_force}


def test_freeze_list_shows_in_force_first_and_the_lifted_ones(people, freezes):
    page = signed_in(people.fiona).get(reverse("governance:freeze-list"))
    assert [f.pk for f in page.context["page"].object_list] == [
        freezes["in_force"].pk,
        freezes["lifted"].pk,
    ]
    assert "New budget approved" in page.content.decode()
    assert [
        f.pk
        for f in signed_in(people.rhea)
        .get(reverse("governance:freeze-list"))
        .context["page"]
        .object_list
    ] == [freezes["in_force"].pk]
    lifted_only = signed_in(people.fiona).get(
        reverse("governance:freeze-list"), {"in_force": "false"}
    )
    assert [f.pk for f in lifted_only.context["page"].object_list] == [freezes["lifted"].pk]


def test_a_platform_admin_lifts_a_freeze_with_a_reason(people, freezes):
    lift = reverse("governance:freeze-lift", args=[freezes["in_force"].pk])
    assert signed_in(people.fiona).post(lift, {"reason": "Because"}).status_code == 403
    pat = signed_in(people.pat)
    page = pat.get(reverse("governance:freeze-list")).content.decode()
    assert "Lift the freeze" in page
    pat.post(lift, {"reason": ""})
    assert DeploymentFreeze.objects.get(pk=freezes["in_force"].pk).in_force
    pat.post(lift, {"reason": "Exception agreed with finance"})
    freeze = DeploymentFreeze.objects.get(pk=freezes["in_force"].pk)
    assert (freeze.in_force, freeze.lifted_by, freeze.lift_reason) == (
        False,
        people.pat,
        "Exception agreed with finance",
    )


def test_freeze_list_queries_do_not_grow_with_rows(people, freezes, django_assert_max_num_queries):
    pat = signed_in(people.pat)
    url = reverse("governance:freeze-list")
    pat.get(url)
    with django_assert_max_num_queries(7):
        pat.get(url)
    for n in range(6):
        freeze = services.freeze_start(business_unit=people.ads, reason=f"Breach {n}")
        services.freeze_lift(freeze=freeze, by=people.pat, reason="Fixed")
    with django_assert_max_num_queries(7):
        response = pat.get(url)
    assert len(response.context["page"].object_list) == 8


def test_the_nav_links_to_approvals(people):
    body = signed_in(people.rhea).get(LIST).content.decode()
    assert f'<a href="{LIST}">Approvals</a>' in body


def test_the_admin_edits_policies_with_their_steps_and_shows_requests_read_only(people, requests_):
    from tests.factories import UserFactory

    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = signed_in(root)
    assert client.get("/admin/governance/approvalpolicy/").status_code == 200
    policy = ApprovalRequest.objects.get(pk=requests_["job"].pk).policy
    change = client.get(f"/admin/governance/approvalpolicy/{policy.pk}/change/")
    assert change.status_code == 200
    assert "Policy steps" in change.content.decode()
    assert client.get("/admin/governance/approvalrequest/").status_code == 200
    detail = client.get(f"/admin/governance/approvalrequest/{requests_['job'].pk}/change/")
    assert detail.status_code == 200
    assert "submitted the request" in detail.content.decode()
    assert client.get("/admin/governance/approvalrequest/add/").status_code == 403
