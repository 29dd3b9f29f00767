"""/api/v1/approval-requests, /decisions and /freezes: scoped like the pages, documented."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from rest_framework.test import APIClient

from governance import services
from governance.choices import Role
from governance.models import ApprovalRequest, DeploymentFreeze
from governance.tokens import api_token_authenticate, api_token_create
from tests.governance.test_approvals import (
    NOW,
    SUMMARY,
    approvals_org,
    mails_to,
    policy_make,
    request_make,
    step_of,
)

REQUESTS = "/api/v1/approval-requests/"


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


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        _, key = api_token_create(user=user, name="tests", scope="write", days=730, by=user)
        api_token_authenticate(key=key)  # its first use is recorded outside the counted requests
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def policy(people):
    return policy_make(steps=((Role.APPROVER, 1, 24), (Role.FINANCE, 1, 24)))


JOB = {
    "kind": "fine_tuning",
    "title": "Fine-tune ranker-7b on October clicks",
    "business_unit": "RES",
    "estimated_cost": "23000.00",
    "accelerator": "H100",
    "accelerator_count": 64,
    "duration_hours": "72",
}


def test_filing_and_submitting_over_the_api(people, policy, committed, clock):
    with committed():
        response = api(people.rhea).post(REQUESTS, {**JOB, "submit": True}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending"
    assert body["policy"] == "Large GPU jobs"
    assert body["gpu_hours"] == "4608.00"
    assert [(s["order"], s["status"]) for s in body["steps"]] == [(1, "active"), (2, "waiting")]
    assert [e["kind"] for e in body["events"]][:3] == ["created", "submitted", "step_activated"]
    assert {m.to[0] for m in mail.outbox} == {people.alex.email, people.bea.email}
    assert SUMMARY in mail.outbox[0].body


def test_a_draft_is_edited_and_submitted(people, policy, committed):
    draft = api(people.rhea).post(REQUESTS, JOB, format="json").json()
    assert draft["status"] == "draft"
    url = f"{REQUESTS}{draft['id']}/"
    patched = api(people.rhea).patch(url, {"duration_hours": "80"}, format="json")
    assert patched.status_code == 200
    assert (patched.json()["revision"], patched.json()["duration_hours"]) == (2, "80.00")
    assert api(people.rhea).put(url, JOB, format="json").status_code == 405
    assert api(people.alex).patch(url, {"title": "x"}, format="json").status_code == 403
    with committed():
        submitted = api(people.rhea).post(f"{url}submit/")
    assert submitted.json()["status"] == "pending"
    again = api(people.rhea).post(f"{url}submit/")
    assert again.status_code == 409
    assert "already pending" in again.json()["detail"]


def test_filing_is_validated_and_checked(people, policy):
    bad = api(people.rhea).post(REQUESTS, {**JOB, "estimated_cost": "-5"}, format="json")
    assert bad.status_code == 400
    assert "estimated_cost" in bad.json()
    other = api(people.rhea).post(REQUESTS, {**JOB, "business_unit": "ADS"}, format="json")
    assert other.status_code == 403
    assert "Ads Ranking is not one of them" in other.json()["detail"]
    assert api().get(REQUESTS).status_code == 401


@pytest.fixture
def pending(people, policy, committed):
    with committed():
        job = request_make(people)
        services.approval_request_submit(request=job, by=people.rhea)
        ads = request_make(people, by=people.adam, business_unit=people.ads, title="Ads batch")
        services.approval_request_submit(request=ads, by=people.adam)
    return {"job": job, "ads": ads}


def test_approving_and_rejecting_over_the_api(people, pending, committed):
    url = f"{REQUESTS}{pending['job'].pk}/"
    assert api(people.rhea).post(f"{url}approve/").status_code == 409  # nothing for her
    wrong = api(people.fiona).post(
        f"{url}approve/", {"step": step_of(pending["job"], 2).pk}, format="json"
    )
    assert wrong.status_code == 409
    assert "opens when the steps before it" in wrong.json()["detail"]
    with committed():
        first = api(people.alex).post(f"{url}approve/", {"comment": "Go."}, format="json")
    assert first.status_code == 200
    assert first.json()["steps"][0]["votes"] == [
        {
            "approver": "alex",
            "approve": True,
            "comment": "Go.",
            "at": first.json()["steps"][0]["votes"][0]["at"],
            "via": "api",
        }
    ]
    assert mails_to(people.fiona)
    assert api(people.fiona).post(f"{url}reject/").status_code == 400  # a reason is needed
    rejected = api(people.fiona).post(f"{url}reject/", {"comment": "Over budget."}, format="json")
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decision"] is not None
    stranger = api(people.olga).post(f"{REQUESTS}{pending['ads'].pk}/approve/")
    assert stranger.status_code == 404  # outside her scope


def test_withdrawing_over_the_api(people, pending):
    url = f"{REQUESTS}{pending['job'].pk}/withdraw/"
    assert api(people.alex).post(url).status_code == 403
    response = api(people.rhea).post(url, {"reason": "Smaller model"}, format="json")
    assert response.json()["status"] == "withdrawn"


def test_request_list_is_scoped_and_filtered(people, pending):
    def titles(user, **query):
        return {r["title"] for r in api(user).get(REQUESTS, query).json()["results"]}

    assert titles(people.rhea) == {"Fine-tune ranker-7b on October clicks"}
    assert titles(people.adam) == {"Ads batch"}
    assert titles(people.alex) == {"Fine-tune ranker-7b on October clicks", "Ads batch"}
    assert titles(people.alex, business_unit="ADS") == {"Ads batch"}
    assert titles(people.alex, waiting="true") == titles(people.alex)
    assert titles(people.fiona, waiting="true") == set()
    assert titles(people.adam, mine="true") == {"Ads batch"}
    assert titles(people.alex, status="approved") == set()
    assert api(people.adam).get(f"{REQUESTS}{pending['job'].pk}/").status_code == 404


def test_request_list_queries_do_not_grow_with_rows(
    people, pending, committed, django_assert_max_num_queries
):
    client = api(people.alex)
    client.get(REQUESTS)
    with django_assert_max_num_queries(6):
        client.get(REQUESTS)
    with committed():
        for n in range(6):
            job = request_make(people, title=f"Job {n}")
            services.approval_request_submit(request=job, by=people.rhea)
    with django_assert_max_num_queries(6):
        assert len(client.get(REQUESTS).json()["results"]) == 8


def test_request_detail_queries_do_not_grow_with_votes_and_events(
    people, pending, committed, django_assert_max_num_queries
):
    job = pending["job"]
    with committed():
        services.approval_vote_cast(step=step_of(job, 1), by=people.alex, approve=True)
    client = api(people.bea)
    with django_assert_max_num_queries(9):
        body = client.get(f"{REQUESTS}{job.pk}/").json()
    assert len(body["events"]) > 5


# --- decisions ----------------------------------------------------------------------------


@pytest.fixture
def decided(people, pending, committed, clock):
    with committed():
        job, ads = pending["job"], pending["ads"]
        services.approval_vote_cast(step=step_of(job, 1), by=people.alex, approve=True)
        services.approval_vote_cast(step=step_of(job, 2), by=people.fiona, approve=True)
        clock.move_to(NOW + timedelta(days=3))
        services.approval_vote_cast(
            step=step_of(ads, 1), by=people.bea, approve=False, comment="Not now."
        )
    return pending


def test_decisions_are_filterable_and_scoped(people, decided):
    def outcomes(user, **query):
        response = api(user).get("/api/v1/decisions/", query)
        assert response.status_code == 200, response.json()
        return [d["outcome"] for d in response.json()["results"]]

    assert outcomes(people.alex) == ["rejected", "approved"]
    assert outcomes(people.rhea) == ["approved"]
    assert outcomes(people.alex, kind="approval_request", outcome="approved") == ["approved"]
    assert outcomes(people.alex, business_unit="ADS") == ["rejected"]
    assert outcomes(people.alex, decided_from="2026-10-06") == ["rejected"]
    assert outcomes(people.alex, decided_to="2026-10-05") == ["approved"]
    job = decided["job"]
    assert outcomes(people.alex, subject_type="governance.approvalrequest", subject_id=job.pk) == [
        "approved"
    ]
    first = api(people.alex).get("/api/v1/decisions/", {"outcome": "approved"}).json()
    decision = first["results"][0]
    assert decision["subject_type"] == "governance.approvalrequest"
    assert decision["subject_id"] == job.pk
    assert decision["evidence"]["estimated_cost"] == "23000.00"
    assert decision["decided_by"] == "fiona"


def test_decision_list_queries_do_not_grow_with_rows(
    people, decided, committed, django_assert_max_num_queries
):
    client = api(people.alex)
    with django_assert_max_num_queries(5):
        client.get("/api/v1/decisions/")
    with committed():
        for n in range(5):
            job = request_make(people, title=f"Job {n}")
            services.approval_request_submit(request=job, by=people.rhea)
            services.approval_vote_cast(
                step=step_of(job, 1), by=people.bea, approve=False, comment="No."
            )
    with django_assert_max_num_queries(5):
        assert len(client.get("/api/v1/decisions/").json()["results"]) == 7


# --- freezes ------------------------------------------------------------------------------


@pytest.fixture
def freeze(people):
    return services.freeze_start(business_unit=people.research, reason="Budget breached")


def test_freezes_are_listed_and_lifted_by_platform_admins(people, freeze):
    body = api(people.rhea).get("/api/v1/freezes/").json()
    assert [(f["business_unit"], f["in_force"]) for f in body["results"]] == [("RES", True)]
    assert api(people.adam).get("/api/v1/freezes/").json()["results"] == []
    lift = f"/api/v1/freezes/{freeze.pk}/lift/"
    assert api(people.fiona).post(lift, {"reason": "x"}, format="json").status_code == 403
    assert api(people.pat).post(lift, {}, format="json").status_code == 400
    lifted = api(people.pat).post(lift, {"reason": "Exception agreed"}, format="json")
    assert lifted.status_code == 200
    assert (lifted.json()["in_force"], lifted.json()["lifted_by"]) == (False, "pat")
    assert api(people.pat).post(lift, {"reason": "again"}, format="json").status_code == 409
    assert api(people.pat).get("/api/v1/freezes/", {"in_force": "true"}).json()["results"] == []
    assert not DeploymentFreeze.objects.get().in_force


def test_freeze_list_queries_do_not_grow_with_rows(people, freeze, django_assert_max_num_queries):
    client = api(people.pat)
    with django_assert_max_num_queries(4):
        client.get("/api/v1/freezes/")
    services.freeze_lift(freeze=freeze, by=people.pat, reason="ok")
    for n in range(5):
        services.freeze_lift(
            freeze=services.freeze_start(business_unit=people.ads, reason=f"Breach {n}"),
            by=people.pat,
            reason="ok",
        )
    with django_assert_max_num_queries(4):
        assert len(client.get("/api/v1/freezes/").json()["results"]) == 6


# --- schema -------------------------------------------------------------------------------


def test_the_openapi_schema_documents_approvals_decisions_and_freezes(people):
    schema = api(people.rhea).get("/api/schema/?format=json").json()
    paths = schema["paths"]
    for path in (
        "/api/v1/approval-requests/",
        "/api/v1/approval-requests/{id}/",
        "/api/v1/approval-requests/{id}/submit/",
        "/api/v1/approval-requests/{id}/withdraw/",
        "/api/v1/approval-requests/{id}/approve/",
        "/api/v1/approval-requests/{id}/reject/",
        "/api/v1/decisions/",
        "/api/v1/freezes/",
        "/api/v1/freezes/{id}/lift/",
    ):
        assert path in paths, path
    assert "put" not in paths["/api/v1/approval-requests/{id}/"]
    decision_filters = {p["name"] for p in paths["/api/v1/decisions/"]["get"]["parameters"]}
    assert {"kind", "outcome", "business_unit", "subject_type", "subject_id"} <= decision_filters
    assert {"decided_from", "decided_to"} <= decision_filters
    assert ApprovalRequest.objects.count() == 0
