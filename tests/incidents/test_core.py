"""Incidents and post-mortems: the services, the pages, the Markdown export and the metrics."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from incidents import services
from incidents.models import (
    ActionItem,
    Incident,
    IncidentStatus,
    PostMortemStatus,
    Runbook,
)
from tests.factories import UserFactory
from tests.incidents.conftest import (
    NOW,
    T,
    World,
    open_incident,
    ready_postmortem,
    resolved_incident,
)

# --- incidents ------------------------------------------------------------------------------


def test_incident_create_records_affected_units_and_opened_event(world):
    w = world
    incident = open_incident(w)

    assert incident.status == IncidentStatus.ACTIVE
    assert {a.subject for a in incident.affected.all()} == {w.pool, w.endpoint}
    # The endpoint has no unit of its own: its model's unit counts; the pool's owner too.
    assert set(incident.business_units.values_list("code", flat=True)) == {"RES", "PLAT"}
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds == ["opened", "detected"]


def test_incident_create_refuses_detection_before_start(world):
    with pytest.raises(DomainError, match=r"detected time .* is before the started time"):
        open_incident(world, detected_at=T - dt.timedelta(minutes=1))


def test_incident_create_written_up_afterwards_starts_mitigated(world):
    w = world

    incident = open_incident(w, mitigated_at=T + dt.timedelta(minutes=45))

    assert incident.status == IncidentStatus.MITIGATED
    assert list(incident.timeline.values_list("kind", flat=True)) == [
        "opened",
        "detected",
        "mitigated",
    ]
    with pytest.raises(DomainError, match="mitigated time"):
        open_incident(w, mitigated_at=T - dt.timedelta(minutes=1))


def test_incident_update_moves_forward_and_stamps_times(world):
    w = world
    incident = open_incident(w)

    incident = services.incident_update(incident=incident, by=w.commander, status="mitigated")

    assert incident.status == IncidentStatus.MITIGATED
    assert incident.mitigated_at == NOW
    incident = services.incident_update(incident=incident, by=w.commander, status="resolved")
    assert incident.resolved_at == NOW
    assert list(incident.timeline.values_list("kind", flat=True))[-2:] == [
        "mitigated",
        "resolved",
    ]


def test_incident_update_refuses_moving_back(world):
    w = world
    incident = resolved_incident(w)

    with pytest.raises(ConflictError, match="moves only forward"):
        services.incident_update(incident=incident, by=w.commander, status="active")


def test_incident_update_refuses_postmortem_done_by_hand(world):
    w = world
    incident = resolved_incident(w)

    with pytest.raises(ConflictError, match="post-mortem is published"):
        services.incident_update(incident=incident, by=w.commander, status="postmortem_done")


def test_incident_update_refuses_times_out_of_order(world):
    w = world
    incident = open_incident(w)

    with pytest.raises(DomainError, match=r"resolved time .* is before the mitigated time"):
        services.incident_update(
            incident=incident,
            by=w.commander,
            mitigated_at=T + dt.timedelta(hours=1),
            resolved_at=T + dt.timedelta(minutes=30),
        )
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.ACTIVE


def test_incident_update_a_mitigation_time_moves_the_status(world):
    w = world
    incident = open_incident(w)

    incident = services.incident_update(
        incident=incident, by=w.commander, mitigated_at=T + dt.timedelta(minutes=45)
    )

    assert incident.status == IncidentStatus.MITIGATED


def test_incident_update_by_a_stranger_is_refused(world):
    w = world
    incident = open_incident(w)

    with pytest.raises(PermissionDeniedError, match="commander"):
        services.incident_update(incident=incident, by=w.stranger, title="Mine now")


def test_incident_update_by_a_role_holder_and_an_admin(world):
    w = world
    incident = open_incident(w)
    services.role_add(incident=incident, by=w.commander, person=w.scribe, role="scribe")

    services.incident_update(incident=incident, by=w.scribe, severity="sev1")
    services.incident_update(incident=incident, by=w.org.admin, title="H100 pool exhausted")

    incident.refresh_from_db()
    assert incident.severity == "sev1"
    assert incident.title == "H100 pool exhausted"
    assert incident.timeline.filter(kind="severity").count() == 1


def test_incident_update_affected_replaces_the_records(world):
    w = world
    incident = open_incident(w)

    services.incident_update(incident=incident, by=w.commander, affected=[w.other_endpoint])

    assert [a.subject for a in incident.affected.all()] == [w.other_endpoint]
    assert "ADS" in set(incident.business_units.values_list("code", flat=True))


def test_timeline_and_evidence_add(world):
    w = world
    incident = open_incident(w)

    event = services.timeline_add(
        incident=incident, by=w.commander, at=T, kind="page", text="Paged the pool owner."
    )
    figure = services.evidence_add(
        incident=incident, by=w.commander, at=T, metric="queue_depth", value="420", unit="req"
    )

    assert event.source == "manual"
    assert figure.value == Decimal("420")
    with pytest.raises(PermissionDeniedError):
        services.timeline_add(incident=incident, by=w.stranger, at=T, kind="x", text="y")
    with pytest.raises(DomainError, match="not a number"):
        services.evidence_add(incident=incident, by=w.commander, at=T, metric="m", value="lots")


def test_role_add_refuses_the_same_role_twice(world):
    w = world
    incident = open_incident(w)
    services.role_add(incident=incident, by=w.commander, person=w.scribe, role="scribe")

    with pytest.raises(ConflictError, match="already is scribe"):
        services.role_add(incident=incident, by=w.commander, person=w.scribe, role="Scribe")


def test_runbook_for_matches_the_type(world):
    w = world
    book = Runbook.objects.create(incident_type="pool_exhaustion", title="Pool is full")
    Runbook.objects.create(incident_type="cost_spike", title="Spend spikes")

    assert services.runbook_for(open_incident(w)) == [book]


# --- post-mortems ---------------------------------------------------------------------------


def test_postmortem_open_once_with_its_author(world):
    w = world
    incident = resolved_incident(w)

    pm = services.postmortem_open(incident=incident, by=w.commander)

    assert list(pm.authors.all()) == [w.commander]
    assert pm.status == PostMortemStatus.DRAFT
    with pytest.raises(ConflictError, match="already has a post-mortem"):
        services.postmortem_open(incident=incident, by=w.commander)
    with pytest.raises(PermissionDeniedError):
        services.postmortem_open(incident=open_incident(w), by=w.stranger)


def test_postmortem_only_authors_and_approvers_edit_a_draft(world):
    w = world
    pm = ready_postmortem(w)

    assert services.may_edit_postmortem(w.commander, pm)
    assert services.may_edit_postmortem(w.approver, pm)
    assert not services.may_edit_postmortem(w.stranger, pm)
    assert not services.may_edit_postmortem(w.org.admin, pm)
    with pytest.raises(PermissionDeniedError, match="authors and named approvers"):
        services.postmortem_update(postmortem=pm, by=w.stranger, lessons="Mine")
    services.postmortem_update(postmortem=pm, by=w.approver, lessons="Autoscale the pool.")
    pm.refresh_from_db()
    assert pm.lessons == "Autoscale the pool."


def test_postmortem_update_refuses_an_author_as_approver(world):
    w = world
    pm = ready_postmortem(w)

    with pytest.raises(DomainError, match="cannot both write and approve"):
        services.postmortem_update(postmortem=pm, by=w.commander, approvers=[w.commander])


def test_postmortem_submit_needs_a_summary_and_an_approver(world):
    w = world
    pm = services.postmortem_open(incident=resolved_incident(w), by=w.commander)

    with pytest.raises(DomainError, match="a summary and at least one named approver"):
        services.postmortem_submit(postmortem=pm, by=w.commander)


def test_postmortem_submit_needs_a_resolved_incident(world):
    w = world
    pm = ready_postmortem(w, incident=open_incident(w))

    with pytest.raises(ConflictError, match="still active"):
        services.postmortem_submit(postmortem=pm, by=w.commander)


def test_postmortem_sign_by_every_approver_publishes(world, clock):
    w = world
    pm = ready_postmortem(w, approvers=[w.approver, w.second_approver])
    services.postmortem_submit(postmortem=pm, by=w.commander)

    with pytest.raises(PermissionDeniedError, match="named approvers"):
        services.postmortem_sign(postmortem=pm, by=w.stranger, approved=True)
    services.postmortem_sign(postmortem=pm, by=w.approver, approved=True)
    pm.refresh_from_db()
    assert pm.status == PostMortemStatus.IN_REVIEW
    with pytest.raises(ConflictError, match="already approved"):
        services.postmortem_sign(postmortem=pm, by=w.approver, approved=True)
    services.postmortem_sign(postmortem=pm, by=w.second_approver, approved=True, comment="Good")

    pm.refresh_from_db()
    assert pm.status == PostMortemStatus.PUBLISHED
    assert pm.published_at == NOW
    assert pm.incident.status == IncidentStatus.POSTMORTEM_DONE
    assert not services.may_edit_postmortem(w.commander, pm)
    with pytest.raises(ConflictError, match="published"):
        services.postmortem_update(postmortem=pm, by=w.commander, lessons="More")


def test_postmortem_changes_requested_sends_back_to_draft(world):
    w = world
    pm = ready_postmortem(w)
    services.postmortem_submit(postmortem=pm, by=w.commander)

    with pytest.raises(DomainError, match="what should change"):
        services.postmortem_sign(postmortem=pm, by=w.approver, approved=False)
    services.postmortem_sign(
        postmortem=pm, by=w.approver, approved=False, comment="Quantify the impact."
    )

    pm.refresh_from_db()
    assert pm.status == PostMortemStatus.DRAFT
    with pytest.raises(ConflictError, match="in review"):
        services.postmortem_sign(postmortem=pm, by=w.approver, approved=True)


def test_postmortem_edit_in_review_voids_earlier_signoffs(world):
    w = world
    pm = ready_postmortem(w, approvers=[w.approver, w.second_approver])
    services.postmortem_submit(postmortem=pm, by=w.commander)
    services.postmortem_sign(postmortem=pm, by=w.approver, approved=True)

    # Same pinned instant: the old approval still must not count for the new text.
    services.postmortem_update(postmortem=pm, by=w.commander, impact="1.2M requests failed.")
    pm.refresh_from_db()
    assert pm.status == PostMortemStatus.DRAFT
    services.postmortem_submit(postmortem=pm, by=w.commander)
    services.postmortem_sign(postmortem=pm, by=w.second_approver, approved=True)

    pm.refresh_from_db()
    assert pm.status == PostMortemStatus.IN_REVIEW
    services.postmortem_sign(postmortem=pm, by=w.approver, approved=True)
    pm.refresh_from_db()
    assert pm.status == PostMortemStatus.PUBLISHED


def test_postmortem_update_cleans_root_cause_tags(world):
    w = world
    pm = ready_postmortem(w)

    pm = services.postmortem_update(
        postmortem=pm, by=w.commander, root_cause_tags="No autoscaling, quota , no autoscaling"
    )

    assert pm.root_cause_tags == ["no-autoscaling", "quota"]


# --- the list selector ----------------------------------------------------------------------


def test_incident_list_filters(world):
    w = world
    on_pool = open_incident(w, affected=[w.pool])
    on_endpoint = open_incident(
        w, title="Ranker errors", severity="sev3", incident_type="outage", affected=[w.endpoint]
    )
    elsewhere = open_incident(
        w,
        title="Ads latency",
        incident_type="latency",
        affected=[w.other_endpoint],
        started_at=T - dt.timedelta(days=40),
        detected_at=None,
    )
    services.incident_update(incident=elsewhere, by=w.commander, status="resolved")

    def found(**filters):
        return set(services.incident_list(user=w.stranger, **filters))

    assert found() == {on_pool, on_endpoint, elsewhere}
    assert found(pool=w.pool) == {on_pool}
    assert found(model=w.model) == {on_endpoint}
    assert found(endpoint=w.other_endpoint) == {elsewhere}
    assert found(severity="sev3") == {on_endpoint}
    assert found(status="resolved") == {elsewhere}
    assert found(incident_type="latency") == {elsewhere}
    assert found(business_unit=w.org.research) == {on_endpoint}
    assert found(month=dt.date(2026, 9, 1)) == {elsewhere}
    assert found(month=dt.date(2026, 10, 1)) == {on_pool, on_endpoint}


# --- metrics ---------------------------------------------------------------------------------


def test_incident_metrics_on_a_seeded_example(world):
    w = world
    first = resolved_incident(w)  # mitigated in 45 min, resolved in 2 h
    second = open_incident(w, title="Ranker errors", affected=[w.endpoint])
    services.incident_update(
        incident=second,
        by=w.commander,
        mitigated_at=T + dt.timedelta(minutes=15),
        resolved_at=T + dt.timedelta(hours=1),
    )
    third = open_incident(
        w,
        title="September queueing",
        affected=[w.pool],
        started_at=dt.datetime(2026, 9, 3, 9, 0, tzinfo=dt.UTC),
        detected_at=None,
    )
    services.incident_update(
        incident=third, by=w.commander, mitigated_at=dt.datetime(2026, 9, 3, 11, 0, tzinfo=dt.UTC)
    )
    for incident, tags in ((first, ["no-autoscaling", "quota"]), (second, ["no-autoscaling"])):
        pm = services.postmortem_open(incident=incident, by=w.commander)
        services.postmortem_update(postmortem=pm, by=w.commander, root_cause_tags=tags)
    pm = first.postmortem
    for title, status, due in (
        ("Autoscale the pool", "done", dt.date(2026, 10, 1)),
        ("Alert on queue depth", "open", dt.date(2026, 10, 1)),
        ("Quota review", "open", dt.date(2026, 11, 1)),
    ):
        ActionItem.objects.create(
            postmortem=pm, title=title, kind="prevent", owner=w.commander, due=due, status=status
        )

    m = services.incident_metrics(user=w.stranger)

    assert m.total == 3
    assert m.per_month == [(dt.date(2026, 9, 1), 1), (dt.date(2026, 10, 1), 2)]
    assert [(t.label, t.count) for t in m.per_pool] == [("Shared H100 pool", 2)]
    assert [(t.label, t.count) for t in m.per_model] == [
        ("ranker", 2)
    ]  # both incidents on the ranker's endpoint
    assert m.mitigate_mean == dt.timedelta(minutes=(45 + 15 + 120) / 3)
    assert m.mitigate_median == dt.timedelta(minutes=45)
    assert m.resolve_mean == dt.timedelta(minutes=90)
    assert m.resolve_median == dt.timedelta(minutes=90)
    assert m.repeated_root_causes == [("no-autoscaling", 2)]
    assert m.root_causes == [("no-autoscaling", 2), ("quota", 1)]
    assert (m.actions_done, m.actions_open, m.actions_overdue) == (1, 2, 1)


# --- Markdown export -------------------------------------------------------------------------


def test_postmortem_markdown_has_every_section_factors_and_actions(world, client):
    from incidents.models import ContributingFactor

    w = world
    pm = ready_postmortem(w)
    services.postmortem_update(
        postmortem=pm,
        by=w.commander,
        requests_failed=1_200_000,
        trigger="ranker 3.0 doubled its replicas on the shared pool.",
        root_causes="No per-unit quota on the pool.",
        root_cause_tags=["no-quota"],
        lessons="Quota the pool per unit.",
    )
    ContributingFactor.objects.create(
        postmortem=pm,
        kind="deployment",
        occurred_at=T - dt.timedelta(hours=3),
        summary="ranker 3.0 deployed to ranker-prod",
        status="accepted",
        note="It took 24 more GPUs.",
    )
    ContributingFactor.objects.create(
        postmortem=pm,
        kind="cost_anomaly",
        occurred_at=T - dt.timedelta(days=2),
        summary="Spend spike unrelated",
        status="dismissed",
    )
    ActionItem.objects.create(
        postmortem=pm, title="Quota per unit", kind="prevent", owner=w.commander, due=NOW.date()
    )
    client.force_login(w.stranger)

    response = client.get(reverse("incidents:postmortem-markdown", args=[pm.incident_id]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    text = response.content.decode()
    for heading in (
        "# Post-mortem: Shared H100 pool exhausted",
        "## Summary",
        "## Impact",
        "## Trigger",
        "## Root causes",
        "## Contributing factors",
        "## Detection",
        "## What went well",
        "## Where we got lucky",
        "## Lessons",
        "## Action items",
        "## Timeline",
    ):
        assert heading in text
    assert "| Requests failed | 1,200,000 |" in text
    assert "| Mitigated | 2026-10-14 14:50 UTC (after 45 min) |" in text
    assert "deployment: ranker 3.0 deployed to ranker-prod — It took 24 more GPUs." in text
    assert "Spend spike unrelated" not in text
    assert "| Quota per unit | Prevent | " in text
    assert "`no-quota`" in text


# --- pages -----------------------------------------------------------------------------------


def test_incident_list_page_filters_and_paginates(world, client):
    w = world
    open_incident(w, title="Pool exhausted", affected=[w.pool])
    open_incident(w, title="Ads latency", severity="sev3", affected=[w.other_endpoint])
    client.force_login(w.stranger)

    response = client.get(reverse("incidents:incident-list"), {"severity": "sev3"})

    assert response.status_code == 200
    body = response.content.decode()
    assert "Ads latency" in body
    assert "Pool exhausted" not in body
    empty = client.get(reverse("incidents:incident-list"), {"pool": w.pool.pk, "severity": "sev4"})
    assert "No incidents match these filters" in empty.content.decode()
    bad = client.get(reverse("incidents:incident-list"), {"month": "October"})
    assert "These filters cannot be applied" in bad.content.decode()


def test_incident_list_page_query_count_is_constant(world, client, django_assert_max_num_queries):
    w = world
    for n in range(12):
        incident = open_incident(w, title=f"Incident {n}", affected=[w.pool, w.endpoint])
        if n % 2:
            services.postmortem_open(incident=incident, by=w.commander)
    client.force_login(w.stranger)

    with django_assert_max_num_queries(13):
        response = client.get(reverse("incidents:incident-list"))

    assert response.status_code == 200
    assert response.content.decode().count("Incident 1") >= 3  # 1, 10, 11


def test_incident_create_page_opens_an_incident(world, client):
    w = world
    client.force_login(w.stranger)
    assert client.get(reverse("incidents:incident-create")).status_code == 200

    response = client.post(
        reverse("incidents:incident-create"),
        {
            "title": "H100 pool exhausted",
            "severity": "sev2",
            "incident_type": "pool_exhaustion",
            "commander": w.commander.pk,
            "started_at": "2026-10-14T14:05",
            "detected_at": "2026-10-14T14:12",
            "pools": [w.pool.pk],
            "endpoints": [w.endpoint.pk],
        },
    )

    incident = Incident.objects.get()
    assert response.status_code == 302
    assert response["Location"] == incident.get_absolute_url()
    assert incident.started_at == T
    assert incident.created_by == w.stranger
    assert {a.subject for a in incident.affected.all()} == {w.pool, w.endpoint}


def test_incident_create_page_shows_the_time_order_error(world, client):
    w = world
    client.force_login(w.stranger)

    response = client.post(
        reverse("incidents:incident-create"),
        {
            "title": "H100 pool exhausted",
            "severity": "sev2",
            "incident_type": "pool_exhaustion",
            "commander": w.commander.pk,
            "started_at": "2026-10-14T14:05",
            "detected_at": "2026-10-14T13:00",
        },
    )

    assert response.status_code == 400
    assert "is before the started time" in response.content.decode()
    assert not Incident.objects.exists()


def test_incident_detail_page_shows_times_evidence_and_runbook(world, client):
    w = world
    incident = services.incident_update(
        incident=open_incident(w), by=w.commander, mitigated_at=T + dt.timedelta(minutes=45)
    )
    services.incident_update(incident=incident, by=w.org.admin, cost="1234.5", cost_currency="USD")
    for minutes, depth in ((0, 40), (10, 420), (50, 12)):
        services.evidence_add(
            incident=incident,
            by=w.commander,
            at=T + dt.timedelta(minutes=minutes),
            metric="queue_depth",
            value=depth,
            unit="req",
        )
    book = Runbook.objects.create(
        incident_type="pool_exhaustion",
        title="Shared pool is full",
        steps=[{"text": "Page the pool owner", "role": "commander"}],
    )
    client.force_login(w.stranger)

    response = client.get(incident.get_absolute_url())

    body = response.content.decode()
    assert response.status_code == 200
    assert "Time to mitigate: 45 min" in body
    assert "Time to detect: 10 min" in body
    assert "1,234.50 USD" in body
    assert 'data-chart="evidence-queue_depth-0"' in body
    assert book.get_absolute_url() in body
    # A reader sees everything but gets no forms.
    assert reverse("incidents:timeline-add", args=[incident.pk]) not in body
    assert reverse("incidents:incident-edit", args=[incident.pk]) not in body


def test_incident_pages_refuse_strangers_writes(world, client):
    w = world
    incident = open_incident(w)
    client.force_login(w.stranger)

    assert client.get(reverse("incidents:incident-edit", args=[incident.pk])).status_code == 403
    response = client.post(
        reverse("incidents:timeline-add", args=[incident.pk]),
        {"at": "2026-10-14T14:30", "kind": "page", "text": "Paged"},
    )
    assert response.status_code == 403
    assert "Only the incident&#x27;s commander" in response.content.decode()


def test_incident_edit_and_timeline_by_the_commander(world, client):
    w = world
    incident = open_incident(w)
    client.force_login(w.commander)
    edit = reverse("incidents:incident-edit", args=[incident.pk])
    assert client.get(edit).status_code == 200

    response = client.post(
        edit,
        {
            "title": "H100 pool exhausted",
            "severity": "sev1",
            "incident_type": "pool_exhaustion",
            "status": "resolved",
            "commander": w.commander.pk,
            "started_at": "2026-10-14T14:05",
            "detected_at": "2026-10-14T14:15",
            "mitigated_at": "2026-10-14T14:50",
            "pools": [w.pool.pk],
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert incident.mitigated_at == T + dt.timedelta(minutes=45)
    assert incident.resolved_at == NOW
    assert [a.subject for a in incident.affected.all()] == [w.pool]

    back = client.post(edit, {**_edit_data(w, incident), "status": "active"})
    assert back.status_code == 409
    assert "moves only forward" in back.content.decode()

    added = client.post(
        reverse("incidents:timeline-add", args=[incident.pk]),
        {"at": "2026-10-14T14:30", "kind": "page", "text": "Paged the pool owner."},
    )
    assert added.status_code == 302
    assert incident.timeline.filter(kind="page", source="manual").exists()


def _edit_data(w: World, incident: Incident) -> dict:
    return {
        "title": incident.title,
        "severity": incident.severity,
        "incident_type": incident.incident_type,
        "status": incident.status,
        "commander": incident.commander_id,
        "started_at": incident.started_at.strftime("%Y-%m-%dT%H:%M"),
    }


def test_postmortem_page_flow_open_edit_submit_sign(world, client):
    w = world
    incident = resolved_incident(w)
    page = reverse("incidents:postmortem", args=[incident.pk])
    client.force_login(w.commander)

    assert "Open the post-mortem" in client.get(page).content.decode()
    assert client.post(reverse("incidents:postmortem-open", args=[incident.pk])).status_code == 302
    body = client.get(page).content.decode()
    assert 'id="factors"' in body  # the contributing-factor suggestions are on the page
    assert "Submit for review" in body

    saved = client.post(
        page,
        {
            "summary": "The pool ran out of GPUs.",
            "window_days": 7,
            "authors": [w.commander.pk],
            "approvers": [w.approver.pk],
            "root_cause_tags": "no-quota",
        },
    )
    assert saved.status_code == 302
    submitted = client.post(reverse("incidents:postmortem-submit", args=[incident.pk]))
    assert submitted.status_code == 302

    client.force_login(w.stranger)
    stranger = client.post(page, {"summary": "Mine", "window_days": 7, "authors": [w.stranger.pk]})
    assert stranger.status_code == 403
    refused = client.post(
        reverse("incidents:postmortem-sign", args=[incident.pk]), {"decision": "approve"}
    )
    assert refused.status_code == 403

    client.force_login(w.approver)
    assert "Your sign-off" in client.get(page).content.decode()
    signed = client.post(
        reverse("incidents:postmortem-sign", args=[incident.pk]),
        {"decision": "approve", "comment": "Clear."},
    )
    assert signed.status_code == 302
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.POSTMORTEM_DONE
    body = client.get(page).content.decode()
    assert "Published" in body
    assert f'action="{page}"' not in body  # no edit form on a published post-mortem
    assert "Clear." in body


def test_postmortem_page_without_one_for_a_reader(world, client):
    w = world
    incident = open_incident(w)
    client.force_login(w.stranger)

    body = client.get(reverse("incidents:postmortem", args=[incident.pk])).content.decode()

    assert "No post-mortem yet" in body
    assert "Open the post-mortem" not in body
    response = client.get(reverse("incidents:postmortem-markdown", args=[incident.pk]))
    assert response.status_code == 404


def test_runbook_pages(world, client):
    w = world
    book = Runbook.objects.create(
        incident_type="pool_exhaustion",
        title="Shared pool is full",
        steps=[{"text": "Page the pool owner", "role": "commander"}, "Shed batch load"],
        roles=["commander", "scribe"],
    )
    open_incident(w)
    client.force_login(w.stranger)

    listing = client.get(reverse("incidents:runbook-list")).content.decode()
    detail = client.get(reverse("incidents:runbook-detail", args=[book.pk])).content.decode()

    assert "Shared pool is full" in listing
    assert "Page the pool owner" in detail
    assert "Shed batch load" in detail
    assert "Shared H100 pool exhausted" in detail


def test_metrics_page_renders_with_constant_queries(world, client, django_assert_max_num_queries):
    w = world
    for n in range(8):
        incident = resolved_incident(w, title=f"Incident {n}")
        pm = services.postmortem_open(incident=incident, by=w.commander)
        services.postmortem_update(postmortem=pm, by=w.commander, root_cause_tags=["no-quota"])
    client.force_login(w.stranger)

    with django_assert_max_num_queries(10):
        response = client.get(reverse("incidents:metrics"))

    body = response.content.decode()
    assert response.status_code == 200
    assert "Shared H100 pool" in body
    assert "no-quota" in body
    assert "repeated" in body
    assert "45 min" in body


def test_metrics_page_empty_state(db, client):
    client.force_login(UserFactory(username="nobody"))

    body = client.get(reverse("incidents:metrics")).content.decode()

    assert "nothing to learn from yet" in body


def test_nav_links_to_incidents(world, client):
    client.force_login(world.stranger)

    body = client.get(reverse("incidents:incident-list")).content.decode()

    assert f'href="{reverse("incidents:incident-list")}">Incidents</a>' in body
