"""/api/v1/incidents, /postmortems, /contributing-factors, /action-items and /runbooks:
everyone signed in reads, the services decide who writes, and the schema documents them."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from governance.exceptions import DomainError, PermissionDeniedError
from governance.models import User
from governance.tokens import api_token_create
from incidents import services
from incidents.models import (
    ActionItem,
    ContributingFactor,
    Incident,
    IncidentStatus,
    PostMortem,
    Runbook,
)
from tests.incidents.conftest import (
    NOW,
    T,
    World,
    open_incident,
    ready_postmortem,
    resolved_incident,
)

INCIDENTS = "/api/v1/incidents/"
POSTMORTEMS = "/api/v1/postmortems/"
FACTORS = "/api/v1/contributing-factors/"
ACTIONS = "/api/v1/action-items/"


def api(user: User | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        _, key = api_token_create(user=user, name="tests", scope="write", days=730, by=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def at(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


# --- authentication and reading ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [INCIDENTS, POSTMORTEMS, FACTORS, ACTIONS, "/api/v1/runbooks/", "/api/schema/"]
)
def test_the_incident_api_wants_a_signed_in_caller(db, path):
    assert api().get(path).status_code == 401


def test_signed_out_writes_are_refused(world):
    incident = open_incident(world)
    client = api()
    assert client.post(INCIDENTS, {"title": "x"}, format="json").status_code == 401
    assert client.patch(f"{INCIDENTS}{incident.pk}/", {}, format="json").status_code == 401
    assert client.post(f"{INCIDENTS}{incident.pk}/postmortem/").status_code == 401


def test_anyone_signed_in_reads_every_incident(world):
    w = world
    incident = open_incident(w)
    services.timeline_add(incident=incident, by=w.commander, at=T, kind="page", text="Paged.")
    services.evidence_add(
        incident=incident, by=w.commander, at=T, metric="queue_depth", value="412", unit="req"
    )
    services.role_add(incident=incident, by=w.commander, person=w.scribe, role="scribe")
    Runbook.objects.create(
        incident_type="pool_exhaustion",
        title="Shared pool exhausted",
        steps=[{"text": "Page the pool owner", "role": "commander"}],
    )

    body = api(w.stranger).get(f"{INCIDENTS}{incident.pk}/").json()

    assert body["title"] == "Shared H100 pool exhausted"
    assert body["commander"] == "cora"
    assert sorted(body["business_units"]) == ["PLAT", "RES"]
    assert sorted(body["affected"], key=lambda a: a["type"]) == [
        {"type": "endpoint", "id": w.endpoint.pk, "label": "ranker-prod", "url": None},
        {"type": "pool", "id": w.pool.pk, "label": "Shared H100 pool", "url": None},
    ]
    assert [e["kind"] for e in body["timeline"]] == ["opened", "page", "detected", "role"]
    assert body["evidence"][0]["metric"] == "queue_depth"
    assert body["evidence"][0]["value"] == "412.000000"
    assert body["roles"] == [{"id": body["roles"][0]["id"], "person": "sam", "role": "scribe"}]
    assert [r["title"] for r in body["runbooks"]] == ["Shared pool exhausted"]
    assert body["postmortem"] is None
    assert body["url"] == f"/incidents/{incident.pk}/"
    assert api(w.stranger).get(INCIDENTS).json()["count"] == 1


def test_runbooks_are_listed_by_type(world):
    Runbook.objects.create(incident_type="latency", title="Latency", steps=[{"text": "Look"}])
    Runbook.objects.create(incident_type="outage", title="Outage", steps=[])
    client = api(world.stranger)
    assert client.get("/api/v1/runbooks/").json()["count"] == 2
    rows = client.get("/api/v1/runbooks/?incident_type=latency").json()["results"]
    assert [(r["title"], r["steps"]) for r in rows] == [("Latency", [{"text": "Look"}])]


# --- opening and changing incidents ---------------------------------------------------------------


def test_opening_an_incident_over_the_api(world):
    w = world
    response = api(w.scribe).post(
        INCIDENTS,
        {
            "title": "Ranker latency over the SLO",
            "severity": "sev3",
            "incident_type": "latency",
            "started_at": at(T),
            "detected_at": at(T + dt.timedelta(minutes=4)),
            "business_units": ["ADS"],
            "affected": [{"type": "endpoint", "id": w.endpoint.pk}],
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["commander"] == "sam"  # the caller, when no commander is named
    assert body["status"] == "active"
    assert sorted(body["business_units"]) == ["ADS", "RES"]
    assert [a["label"] for a in body["affected"]] == ["ranker-prod"]
    assert [e["kind"] for e in body["timeline"]] == ["opened", "detected"]
    assert Incident.objects.get(pk=body["id"]).created_by == w.scribe


def test_opening_an_incident_checks_its_input(world):
    client = api(world.scribe)
    base = {"title": "x", "severity": "sev3", "started_at": at(T)}
    missing = client.post(
        INCIDENTS, {**base, "affected": [{"type": "pool", "id": 999}]}, format="json"
    )
    assert missing.status_code == 400
    assert "There is no pool 999" in str(missing.json())
    wrong = client.post(INCIDENTS, {**base, "severity": "sev9"}, format="json")
    assert wrong.status_code == 400
    assert "severity" in wrong.json()


def test_detection_before_the_start_is_a_400_with_the_reason(world):
    response = api(world.commander).post(
        INCIDENTS,
        {
            "title": "Pool exhausted",
            "severity": "sev2",
            "started_at": at(T),
            "detected_at": at(T - dt.timedelta(minutes=5)),
        },
        format="json",
    )

    assert response.status_code == 400
    assert "is before the started time" in response.json()["detail"]
    assert not Incident.objects.exists()


def test_mitigation_before_the_start_is_a_400(world):
    incident = open_incident(world)
    response = api(world.commander).patch(
        f"{INCIDENTS}{incident.pk}/",
        {"mitigated_at": at(T - dt.timedelta(hours=1))},
        format="json",
    )
    assert response.status_code == 400
    assert "before" in response.json()["detail"]


def test_the_commander_moves_an_incident_forward(world):
    w = world
    incident = open_incident(w)
    client = api(w.commander)

    response = client.patch(
        f"{INCIDENTS}{incident.pk}/", {"status": "mitigated", "severity": "sev1"}, format="json"
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "mitigated"
    assert body["severity"] == "sev1"
    assert body["mitigated_at"] == at(NOW)
    assert [e["kind"] for e in body["timeline"]][-2:] == ["severity", "mitigated"]
    resolved = client.patch(
        f"{INCIDENTS}{incident.pk}/",
        {"resolved_at": at(NOW), "cost": "1250.50", "cost_currency": "usd"},
        format="json",
    ).json()
    assert (resolved["status"], resolved["cost"], resolved["cost_currency"]) == (
        "resolved",
        "1250.5000",
        "USD",
    )


def test_an_incident_never_moves_back_409(world):
    w = world
    incident = resolved_incident(w)
    client = api(w.commander)

    back = client.patch(f"{INCIDENTS}{incident.pk}/", {"status": "active"}, format="json")
    by_hand = client.patch(
        f"{INCIDENTS}{incident.pk}/", {"status": "postmortem_done"}, format="json"
    )

    assert back.status_code == 409
    assert "moves only forward" in back.json()["detail"]
    assert by_hand.status_code == 409
    assert "published" in by_hand.json()["detail"]
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED


def test_only_the_people_of_the_incident_change_it(world):
    w = world
    incident = open_incident(w)
    path = f"{INCIDENTS}{incident.pk}/"

    refused = api(w.stranger).patch(path, {"title": "Mine now"}, format="json")
    timeline = api(w.stranger).post(
        f"{path}timeline/", {"at": at(T), "kind": "note", "text": "hi"}, format="json"
    )
    assert refused.status_code == 403
    assert "commander" in refused.json()["detail"]
    assert timeline.status_code == 403

    role = api(w.commander).post(
        f"{path}roles/", {"person": "sam", "role": "Scribe"}, format="json"
    )
    assert role.status_code == 201
    assert role.json()["role"] == "scribe"
    again = api(w.commander).post(f"{path}roles/", {"person": "sam", "role": "scribe"})
    assert again.status_code == 409
    renamed = api(w.scribe).patch(path, {"title": "H100 pool exhausted"}, format="json")
    assert renamed.status_code == 200
    assert renamed.json()["title"] == "H100 pool exhausted"


def test_timeline_and_evidence_are_added_by_hand(world):
    w = world
    incident = open_incident(w)
    client = api(w.commander)

    event = client.post(
        f"{INCIDENTS}{incident.pk}/timeline/",
        {"at": at(T + dt.timedelta(minutes=20)), "kind": "action", "text": "Drained the pool."},
        format="json",
    )
    figure = client.post(
        f"{INCIDENTS}{incident.pk}/evidence/",
        {"at": at(T), "metric": "latency_p95_ms", "value": "2400.5", "unit": "ms"},
        format="json",
    )
    naive = client.post(
        f"{INCIDENTS}{incident.pk}/evidence/",
        {"at": at(T), "metric": "   ", "value": "1"},
        format="json",
    )

    assert event.status_code == 201
    assert (event.json()["kind"], event.json()["source"], event.json()["added_by"]) == (
        "action",
        "manual",
        "cora",
    )
    assert figure.status_code == 201
    assert figure.json()["value"] == "2400.500000"
    assert naive.status_code == 400


# --- filters ------------------------------------------------------------------------------------


def test_the_incident_list_filters(world):
    w = world
    pool_incident = open_incident(w, affected=[w.pool])
    endpoint_incident = open_incident(
        w, title="Ranker errors", severity="sev1", incident_type="outage", affected=[w.endpoint]
    )
    old = open_incident(
        w,
        title="Ads outage",
        started_at=T - dt.timedelta(days=40),
        detected_at=None,
        affected=[w.other_endpoint],
    )
    services.incident_update(incident=old, by=w.commander, status="resolved")
    client = api(w.stranger)

    def ids(query: str) -> set[int]:
        response = client.get(f"{INCIDENTS}?{query}")
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    assert ids("status=resolved") == {old.pk}
    assert ids("severity=sev1") == {endpoint_incident.pk}
    assert ids("incident_type=pool_exhaustion") == {pool_incident.pk, old.pk}
    assert ids("business_unit=ADS") == {old.pk}
    assert ids("business_unit=RES") == {endpoint_incident.pk}
    assert ids("month=2026-10") == {pool_incident.pk, endpoint_incident.pk}
    assert ids("month=2026-09") == {old.pk}
    assert ids(f"pool={w.pool.pk}") == {pool_incident.pk}
    assert ids(f"endpoint={w.endpoint.pk}") == {endpoint_incident.pk}
    # An incident on an endpoint counts for the model it serves.
    assert ids(f"model={w.model.pk}") == {endpoint_incident.pk}
    assert ids("q=ranker") == {endpoint_incident.pk}
    assert client.get(f"{INCIDENTS}?month=October").status_code == 400


def test_the_incident_list_has_no_n_plus_one(world, django_assert_max_num_queries):
    w = world
    for n in range(6):
        incident = resolved_incident(
            w, title=f"Incident {n}", affected=[w.pool, w.endpoint, w.model]
        )
        if n % 2:
            services.postmortem_open(incident=incident, by=w.commander)
    client = api(w.stranger)
    with django_assert_max_num_queries(10):
        body = client.get(INCIDENTS).json()
    assert body["count"] == 6
    assert all(len(row["affected"]) == 3 for row in body["results"])
    assert sum(row["postmortem"] is not None for row in body["results"]) == 3


# --- post-mortems -------------------------------------------------------------------------------


def test_opening_a_postmortem_over_the_api(world):
    w = world
    incident = resolved_incident(w)
    path = f"{INCIDENTS}{incident.pk}/postmortem/"

    assert api(w.stranger).get(path).status_code == 404
    assert api(w.stranger).post(path).status_code == 403
    opened = api(w.commander).post(path)
    assert opened.status_code == 201, opened.json()
    body = opened.json()
    assert (body["status"], body["authors"], body["incident"]) == ("draft", ["cora"], incident.pk)
    assert body["may_edit"] is True
    assert api(w.commander).post(path).status_code == 409

    read = api(w.stranger).get(path).json()
    assert read["id"] == body["id"]
    assert read["may_edit"] is False
    listed = api(w.stranger).get(f"{INCIDENTS}{incident.pk}/").json()["postmortem"]
    assert listed == {"id": body["id"], "status": "draft"}


def test_only_authors_and_approvers_edit_a_draft(world):
    w = world
    pm = ready_postmortem(w)
    path = f"{POSTMORTEMS}{pm.pk}/"

    stranger = api(w.stranger).patch(path, {"trigger": "Someone's fault"}, format="json")
    author = api(w.commander).patch(
        path,
        {"trigger": "A roll-out doubled the replicas", "root_cause_tags": ["No Autoscaling"]},
        format="json",
    )
    approver = api(w.approver).patch(path, {"lessons": "Cap replicas per pool."}, format="json")

    assert stranger.status_code == 403
    assert "authors and named approvers" in stranger.json()["detail"]
    assert author.status_code == 200, author.json()
    assert author.json()["trigger"] == "A roll-out doubled the replicas"
    assert author.json()["root_cause_tags"] == ["no-autoscaling"]
    assert approver.status_code == 200
    pm.refresh_from_db()
    assert pm.lessons == "Cap replicas per pool."
    assert pm.trigger == "A roll-out doubled the replicas"


def test_authors_and_approvers_are_named_by_username(world):
    w = world
    pm = ready_postmortem(w)
    path = f"{POSTMORTEMS}{pm.pk}/"
    client = api(w.commander)

    both = client.patch(path, {"authors": ["cora", "april"]}, format="json")
    unknown = client.patch(path, {"approvers": ["nobody"]}, format="json")
    added = client.patch(path, {"authors": ["cora", "sam"]}, format="json")

    assert both.status_code == 400
    assert "cannot both write and approve" in both.json()["detail"]
    assert unknown.status_code == 400
    assert "approvers" in unknown.json()
    assert added.status_code == 200
    assert sorted(added.json()["authors"]) == ["cora", "sam"]
    assert api(w.scribe).patch(path, {"impact": "Slow."}, format="json").status_code == 200


def test_submit_sign_and_publish(world):
    w = world
    incident = open_incident(w)
    pm = services.postmortem_open(incident=incident, by=w.commander)
    services.postmortem_update(
        postmortem=pm, by=w.commander, summary="Pool ran dry.", approvers=[w.approver]
    )
    submit = f"{POSTMORTEMS}{pm.pk}/submit/"
    sign = f"{POSTMORTEMS}{pm.pk}/sign/"

    not_resolved = api(w.commander).post(submit)
    assert not_resolved.status_code == 409
    assert "mark it resolved" in not_resolved.json()["detail"]
    services.incident_update(incident=incident, by=w.commander, status="resolved")
    assert api(w.approver).post(submit).status_code == 403  # authors submit
    assert api(w.approver).post(sign, {"approved": True}, format="json").status_code == 409

    submitted = api(w.commander).post(submit)
    assert submitted.status_code == 200
    assert submitted.json()["status"] == "in_review"
    assert api(w.commander).post(submit).status_code == 409
    assert api(w.stranger).post(sign, {"approved": True}, format="json").status_code == 403
    silent = api(w.approver).post(sign, {"approved": False}, format="json")
    assert silent.status_code == 400
    assert "Say what should change" in silent.json()["detail"]

    signed = api(w.approver).post(sign, {"approved": True, "comment": "Clear."}, format="json")

    assert signed.status_code == 200, signed.json()
    body = signed.json()
    assert body["status"] == "published"
    assert body["published_at"] == at(NOW)
    assert [(s["approver"], s["approved"]) for s in body["signoffs"]] == [("april", True)]
    assert body["incident_status"] == "postmortem_done"
    late = api(w.commander).patch(f"{POSTMORTEMS}{pm.pk}/", {"lessons": "More."}, format="json")
    assert late.status_code == 409
    assert "published" in late.json()["detail"]


def test_asking_for_changes_sends_it_back_to_draft(world):
    w = world
    pm = ready_postmortem(w)
    services.postmortem_submit(postmortem=pm, by=w.commander)

    response = api(w.approver).post(
        f"{POSTMORTEMS}{pm.pk}/sign/",
        {"approved": False, "comment": "Add the queue depth."},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["status"] == "draft"


def test_the_postmortem_as_markdown(world):
    w = world
    pm = ready_postmortem(w)

    response = api(w.stranger).get(f"{POSTMORTEMS}{pm.pk}/markdown/")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    text = response.content.decode()
    assert text.startswith("# Post-mortem: Shared H100 pool exhausted")
    assert "The shared pool ran out of GPUs" in text
    asked = api(w.stranger).get(f"{POSTMORTEMS}{pm.pk}/markdown/", HTTP_ACCEPT="text/markdown")
    assert asked.status_code == 200
    missing = api(w.stranger).get(f"{POSTMORTEMS}999999/markdown/", HTTP_ACCEPT="text/markdown")
    assert missing.status_code == 404


# --- contributing factors -----------------------------------------------------------------------


def factor(pm: PostMortem, w: World, **kwargs) -> ContributingFactor:
    values = {
        "postmortem": pm,
        "kind": "deployment",
        "subject": w.version,
        "occurred_at": T - dt.timedelta(hours=3),
        "summary": "ranker 3.0 deployed on ranker-prod",
    }
    values.update(kwargs)
    return ContributingFactor.objects.create(**values)


def test_factors_are_accepted_and_dismissed_by_authors_and_approvers(world):
    w = world
    pm = ready_postmortem(w)
    deployment = factor(pm, w)
    anomaly = factor(
        pm,
        w,
        kind="freeze",
        subject=None,
        occurred_at=T - dt.timedelta(days=1),
        summary="RES was frozen by its budget",
    )
    # Another unit's spend is not for a board member to read.
    spend = factor(
        pm,
        w,
        kind="cost_anomaly",
        subject=None,
        occurred_at=T - dt.timedelta(days=1),
        summary="RES spent 3x its baseline",
        detail={"key": f"{w.org.research.pk}:2026-10-04:USD"},
    )
    assert api(w.approver).get(f"{FACTORS}{spend.pk}/").status_code == 404

    stranger = api(w.stranger).post(
        f"{FACTORS}{deployment.pk}/accept/", {"note": "Nope"}, format="json"
    )
    no_note = api(w.commander).post(f"{FACTORS}{deployment.pk}/accept/", {}, format="json")
    accepted = api(w.commander).post(
        f"{FACTORS}{deployment.pk}/accept/",
        {"note": "Doubled the replicas on the pool."},
        format="json",
    )
    dismissed = api(w.approver).post(f"{FACTORS}{anomaly.pk}/dismiss/", {}, format="json")

    assert stranger.status_code == 403
    assert no_note.status_code == 400
    assert "a note is needed" in no_note.json()["detail"]
    assert accepted.status_code == 200, accepted.json()
    body = accepted.json()
    assert (body["status"], body["note"], body["decided_by"]) == (
        "accepted",
        "Doubled the replicas on the pool.",
        "cora",
    )
    assert body["subject"] == {
        "type": "registry.modelversion",
        "id": w.version.pk,
        "label": str(w.version),
        "url": w.version.get_absolute_url(),
    }
    assert dismissed.status_code == 200
    assert dismissed.json()["status"] == "dismissed"
    assert dismissed.json()["subject"] is None

    listed = api(w.stranger).get(f"{POSTMORTEMS}{pm.pk}/factors/").json()
    assert [(f["kind"], f["status"]) for f in listed] == [  # RES's spend is not theirs
        ("freeze", "dismissed"),
        ("deployment", "accepted"),
    ]
    only = api(w.stranger).get(f"{POSTMORTEMS}{pm.pk}/factors/?status=accepted").json()
    assert [f["id"] for f in only] == [deployment.pk]
    assert api(w.stranger).get(f"{POSTMORTEMS}{pm.pk}/factors/?status=maybe").status_code == 400
    assert api(w.stranger).get(f"{FACTORS}?status=accepted").json()["count"] == 1


def test_factors_of_a_published_postmortem_no_longer_change(world):
    w = world
    pm = ready_postmortem(w)
    deployment = factor(pm, w)
    services.postmortem_submit(postmortem=pm, by=w.commander)
    services.postmortem_sign(postmortem=pm, by=w.approver, approved=True)

    response = api(w.commander).post(
        f"{FACTORS}{deployment.pk}/accept/", {"note": "Late."}, format="json"
    )
    refresh = api(w.commander).post(f"{POSTMORTEMS}{pm.pk}/refresh-suggestions/")

    assert response.status_code == 409
    assert refresh.status_code == 409


def test_refreshing_suggestions_is_for_authors_and_approvers(world):
    w = world
    pm = ready_postmortem(w)
    path = f"{POSTMORTEMS}{pm.pk}/refresh-suggestions/"

    assert api(w.stranger).post(path).status_code == 403
    response = api(w.approver).post(path)
    assert response.status_code == 200
    assert isinstance(response.json(), list)


# --- action items -------------------------------------------------------------------------------


def item_body(pm: PostMortem, **kwargs) -> dict:
    body = {
        "postmortem": pm.pk,
        "title": "Autoscale the shared pool",
        "kind": "prevent",
        "owner": "sam",
        "due": "2026-10-30",
    }
    body.update(kwargs)
    return body


def test_action_items_are_added_and_closed(world):
    w = world
    pm = ready_postmortem(w)

    refused = api(w.stranger).post(ACTIONS, item_body(pm), format="json")
    created = api(w.commander).post(
        ACTIONS, item_body(pm, subject_type="model", subject_id=w.model.pk), format="json"
    )

    assert refused.status_code == 403
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["owner"], body["status"], body["overdue"], body["incident"]) == (
        "sam",
        "open",
        False,
        pm.incident_id,
    )
    assert body["subject"] == {
        "type": "model",
        "id": w.model.pk,
        "label": "ranker",
        "url": w.model.get_absolute_url(),
    }
    path = f"{ACTIONS}{body['id']}/"
    moved = api(w.approver).patch(path, {"due": "2026-11-15", "title": "Autoscale it"})
    assert moved.status_code == 200
    assert (moved.json()["due"], moved.json()["title"]) == ("2026-11-15", "Autoscale it")
    assert api(w.scribe).patch(path, {"title": "Mine"}, format="json").status_code == 403
    assert api(w.stranger).post(f"{path}close/", {"status": "done"}).status_code == 403
    assert api(w.scribe).post(f"{path}close/", {"status": "cancelled"}).status_code == 403
    assert api(w.scribe).post(f"{path}close/", {"status": "open"}).status_code == 400

    done = api(w.scribe).post(f"{path}close/", {"status": "done"}, format="json")  # the owner

    assert done.status_code == 200
    assert (done.json()["status"], done.json()["done_at"]) == ("done", at(NOW))
    assert api(w.commander).post(f"{path}close/", {"status": "done"}).status_code == 409
    assert api(w.commander).patch(path, {"title": "x"}, format="json").status_code == 409


def test_action_item_input_is_checked(world):
    w = world
    pm = ready_postmortem(w)
    client = api(w.commander)

    no_id = client.post(ACTIONS, item_body(pm, subject_type="pool"), format="json")
    no_pool = client.post(
        ACTIONS, item_body(pm, subject_type="pool", subject_id=999999), format="json"
    )
    endpoint = client.post(
        ACTIONS, item_body(pm, subject_type="endpoint", subject_id=w.endpoint.pk), format="json"
    )
    no_kind = client.post(ACTIONS, item_body(pm, kind="blame"), format="json")

    assert no_id.status_code == 400
    assert "subject_id" in no_id.json()
    assert no_pool.status_code == 400
    assert "There is no pool" in str(no_pool.json())
    assert endpoint.status_code == 400
    assert no_kind.status_code == 400
    pool = client.post(
        ACTIONS, item_body(pm, subject_type="pool", subject_id=w.pool.pk), format="json"
    )
    assert pool.status_code == 201
    cleared = client.patch(f"{ACTIONS}{pool.json()['id']}/", {"subject_type": None}, format="json")
    assert cleared.status_code == 200
    assert cleared.json()["subject"] is None


def test_the_overdue_filter(world):
    w = world
    pm = ready_postmortem(w)
    client = api(w.commander)
    late = client.post(ACTIONS, item_body(pm, due="2026-10-13"), format="json").json()
    soon = client.post(ACTIONS, item_body(pm, due="2026-10-15", kind="process")).json()
    closed = client.post(ACTIONS, item_body(pm, due="2026-10-01", kind="mitigate")).json()
    client.post(f"{ACTIONS}{closed['id']}/close/", {"status": "cancelled"})
    reader = api(w.stranger)

    def ids(query: str) -> list[int]:
        return [row["id"] for row in reader.get(f"{ACTIONS}?{query}").json()["results"]]

    assert late["overdue"] is True
    assert soon["overdue"] is False
    assert ids("overdue=true") == [late["id"]]
    assert ids("overdue=false") == [closed["id"], soon["id"]]
    assert ids("kind=process") == [soon["id"]]
    assert ids("status=cancelled") == [closed["id"]]
    assert ids("owner=sam") == [closed["id"], late["id"], soon["id"]]
    assert ids("owner=cora") == []
    assert ids(f"postmortem={pm.pk}") == [closed["id"], late["id"], soon["id"]]


def test_the_action_item_list_has_no_n_plus_one(world, django_assert_max_num_queries):
    w = world
    from incidents import actions

    for n in range(3):
        pm = ready_postmortem(w, resolved_incident(w, title=f"Incident {n}"))
        for subject in (w.model, w.pool, None):
            actions.action_create(
                postmortem=pm,
                by=w.commander,
                title=f"Item {n}",
                kind="prevent",
                owner=w.scribe,
                due=dt.date(2026, 10, 1 + n),
                subject=subject,
            )
    client = api(w.stranger)
    with django_assert_max_num_queries(7):
        body = client.get(f"{ACTIONS}?overdue=true").json()
    assert body["count"] == 9
    with django_assert_max_num_queries(11):
        assert client.get(POSTMORTEMS).json()["count"] == 3
    assert ActionItem.objects.count() == 9


# --- the schema ---------------------------------------------------------------------------------


def test_the_openapi_schema_documents_the_incident_api(world):
    response = api(world.stranger).get("/api/schema/?format=json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/v1/incidents/",
        "/api/v1/incidents/{id}/",
        "/api/v1/incidents/{id}/timeline/",
        "/api/v1/incidents/{id}/evidence/",
        "/api/v1/incidents/{id}/roles/",
        "/api/v1/incidents/{id}/postmortem/",
        "/api/v1/postmortems/{id}/",
        "/api/v1/postmortems/{id}/submit/",
        "/api/v1/postmortems/{id}/sign/",
        "/api/v1/postmortems/{id}/factors/",
        "/api/v1/postmortems/{id}/refresh-suggestions/",
        "/api/v1/postmortems/{id}/markdown/",
        "/api/v1/contributing-factors/{id}/accept/",
        "/api/v1/contributing-factors/{id}/dismiss/",
        "/api/v1/action-items/",
        "/api/v1/action-items/{id}/close/",
        "/api/v1/runbooks/",
    ):
        assert path in paths, path
    assert set(paths["/api/v1/incidents/{id}/postmortem/"]) >= {"get", "post"}
    params = {p["name"] for p in paths["/api/v1/incidents/"]["get"]["parameters"]}
    assert params >= {"status", "severity", "incident_type", "business_unit", "month", "model"}
    assert "overdue" in {p["name"] for p in paths["/api/v1/action-items/"]["get"]["parameters"]}


# --- Regression tests for what an attack on incidents found -------------------------------


def test_an_author_never_signs_and_approvers_do_not_choose_the_authors(world):
    w = world
    pm = ready_postmortem(w)
    with pytest.raises(PermissionDeniedError, match="Only the post-mortem's authors choose"):
        services.postmortem_update(postmortem=pm, by=w.approver, authors=[w.approver])
    services.postmortem_update(
        postmortem=pm, by=w.commander, authors=[w.stranger], approvers=[w.commander]
    )
    pm.refresh_from_db()
    assert set(pm.approvers.all()) == {w.commander}
    # The commander, no longer an author, is now an approver: fine; the author (stranger)
    # cannot be one too.
    with pytest.raises(DomainError, match="cannot both write and approve"):
        services.postmortem_update(postmortem=pm, by=w.stranger, approvers=[w.stranger])


def test_factors_change_only_in_a_draft(world):
    w = world
    pm = ready_postmortem(w)
    spot = factor(pm, w)
    pm.status = "in_review"
    pm.save()
    answer = api(w.commander).post(f"{FACTORS}{spot.pk}/accept/", {"note": "late"}, format="json")
    assert answer.status_code == 409
    assert "only while it is a draft" in answer.json()["detail"]


def test_impossible_incident_times_are_refused(world):
    answer = api(world.commander).post(
        INCIDENTS,
        {"title": "Old", "severity": "sev3", "started_at": "0001-01-01T00:00:00Z"},
        format="json",
    )
    assert answer.status_code == 400
    assert "after 2000" in str(answer.json())


def test_a_decision_factor_is_hidden_from_those_who_may_not_read_the_decision(world):
    """The post-mortem is open to all; the decisions it cites keep their own scope."""
    from governance.services import decision_record

    w = world
    pm = ready_postmortem(w)
    decision = decision_record(
        subject=w.org.research,
        kind="approval_request",
        outcome="approved",
        title="Batch job: 64 x H100 for 24 h, est. 40,000.00 USD",
        rationale="Quarter-end evaluation.",
        by=w.org.finance,
        business_unit=w.org.research,
    )
    cited = factor(pm, w, kind="decision", subject=decision, summary=decision.title)
    assert api(w.org.ads_engineer).get(f"{FACTORS}{cited.pk}/").status_code == 404
    listed = api(w.org.ads_engineer).get(f"{POSTMORTEMS}{pm.pk}/factors/").json()
    assert cited.pk not in [f["id"] for f in listed]
    assert api(w.org.researcher).get(f"{FACTORS}{cited.pk}/").status_code == 200


def test_refreshing_suggestions_answers_only_the_factors_the_caller_may_read(world):
    from governance.services import decision_record

    w = world
    pm = ready_postmortem(w)
    decision = decision_record(
        subject=w.org.research,
        kind="approval_request",
        outcome="approved",
        title="Batch job: 64 x H100 for 24 h, est. 40,000.00 USD",
        rationale="Quarter-end evaluation.",
        by=w.org.finance,
        business_unit=w.org.research,
    )
    # Accepted, so the refresh keeps it whatever it finds.
    cited = factor(pm, w, kind="decision", subject=decision, status="accepted")
    services.postmortem_update(
        postmortem=pm, by=w.commander, approvers=[w.approver, w.org.ads_engineer]
    )

    answer = api(w.org.ads_engineer).post(f"{POSTMORTEMS}{pm.pk}/refresh-suggestions/")

    assert answer.status_code == 200
    assert cited.pk not in [f["id"] for f in answer.json()]
    assert ContributingFactor.objects.filter(pk=cited.pk).exists()


def test_an_accepted_factor_joins_the_timeline_and_leaves_it_when_dismissed(world):
    w = world
    pm = ready_postmortem(w)
    spot = factor(pm, w)
    api(w.commander).post(
        f"{FACTORS}{spot.pk}/accept/", {"note": "Doubled replicas."}, format="json"
    )
    event = pm.incident.timeline.get(source=f"factor:{spot.pk}")
    assert (event.at, event.kind) == (spot.occurred_at, "deployment")
    assert event.text == "ranker 3.0 deployed on ranker-prod — Doubled replicas."
    api(w.commander).post(f"{FACTORS}{spot.pk}/dismiss/", {}, format="json")
    assert not pm.incident.timeline.filter(source=f"factor:{spot.pk}").exists()
