"""Action items: who may change them, the e-mail reminders (real SMTP server, pinned clock),
the overdue and all-items pages, and open prevent items on the registry's deployment gate."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import User
from incidents import actions
from incidents.models import (
    ActionItem,
    ActionStatus,
    Incident,
    PostMortem,
    PostMortemStatus,
)
from incidents.tasks import action_items_remind_task
from registry import gate
from registry import services as registry_services
from registry.models import (
    CapacityPool,
    Endpoint,
    ModelVersion,
    RegisteredModel,
    RegistrationRequirement,
)
from tests.e2e.conftest import Inbox, _free_port, smtp  # noqa: F401
from tests.factories import PASSWORD, UserFactory
from tests.registry.conftest import Registry, make_deployable, registry  # noqa: F401

NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
YESTERDAY = TODAY - dt.timedelta(days=1)


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


@dataclass
class World:
    reg: Registry
    incident: Incident
    pm: PostMortem
    commander: User
    author: User
    approver: User
    owner: User
    stranger: User
    admin: User


@pytest.fixture
def world(clock, registry) -> World:  # noqa: F811 - the registry fixture, imported above
    commander = UserFactory(username="cora", first_name="Cora", last_name="Commander")
    author = UserFactory(username="aria", first_name="Aria", last_name="Author")
    approver = UserFactory(username="abe", first_name="Abe", last_name="Approver")
    owner = UserFactory(username="olga", first_name="Olga", last_name="Owner")
    incident = Incident.objects.create(
        title="H100 pool exhausted",
        severity="sev2",
        incident_type="pool_exhaustion",
        commander=commander,
        created_by=commander,
        started_at=NOW - dt.timedelta(days=10),
        status="resolved",
        mitigated_at=NOW - dt.timedelta(days=10),
        resolved_at=NOW - dt.timedelta(days=9),
    )
    pm = PostMortem.objects.create(incident=incident, summary="The pool ran out.")
    pm.authors.set([author])
    pm.approvers.set([approver])
    return World(
        reg=registry,
        incident=incident,
        pm=pm,
        commander=commander,
        author=author,
        approver=approver,
        owner=owner,
        stranger=UserFactory(username="stan"),
        admin=registry.org.admin,
    )


def add(w: World, **kwargs) -> ActionItem:
    values = {
        "postmortem": w.pm,
        "by": w.author,
        "title": "Add autoscaling to the ranker pool",
        "kind": "prevent",
        "owner": w.owner,
        "due": YESTERDAY,
        "subject": None,
        **kwargs,
    }
    return actions.action_create(**values)


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def gate_codes(verdict) -> list[str]:
    return [u.code for u in verdict.unmet]


# --- reminders --------------------------------------------------------------------------------


def test_an_item_due_yesterday_sends_one_overdue_reminder_and_is_listed_overdue(
    world,
    smtp,  # noqa: F811 - the aiosmtpd fixture, imported above
):
    item = add(world, due=YESTERDAY)

    first = actions.actions_remind()
    again = actions.actions_remind()

    assert first == {"before": [], "overdue": [item.pk], "skipped": [], "failed": []}
    assert again == {"before": [], "overdue": [], "skipped": [], "failed": []}
    message = smtp.wait_for("olga@example.com")
    assert len(smtp.messages) == 1
    assert message["Subject"] == (
        "[Capgov] Overdue action item (due 2026-12-01): Add autoscaling to the ranker pool"
    )
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    link = f"http://127.0.0.1:8000/incidents/{world.incident.pk}/postmortem/#action-{item.pk}"
    assert "overdue: it was due on 2026-12-01 (1 day ago)" in text
    assert "H100 pool exhausted" in text
    assert link in text
    assert f'href="{link}"' in html
    item.refresh_from_db()
    assert item.reminded_overdue_at == NOW
    assert item.reminded_before_at is None  # created overdue: no "due soon" mail

    assert list(actions.overdue_list(user=world.stranger)) == [item]
    page = signed_in(world.stranger).get(reverse("incidents:actions-overdue"))
    assert page.status_code == 200
    body = page.content.decode()
    assert f'id="action-{item.pk}" class="overdue"' in body
    assert "Add autoscaling to the ranker pool" in body


def test_the_before_due_reminder_goes_once_then_the_overdue_one_once(
    world,
    smtp,  # noqa: F811
    clock,
    settings,
):
    settings.CAPGOV_ACTION_REMINDER_DAYS = 2
    soon = add(world, title="Write the runbook", kind="process", due=TODAY + dt.timedelta(days=2))
    later = add(world, title="Buy capacity", kind="mitigate", due=TODAY + dt.timedelta(days=3))

    assert actions.actions_remind()["before"] == [soon.pk]
    assert actions.actions_remind()["before"] == []
    assert len(smtp.messages) == 1
    message = smtp.wait_for("olga@example.com")
    assert message["Subject"] == "[Capgov] Action item due 2026-12-04: Write the runbook"
    assert "due in 2 days, on 2026-12-04" in message.get_body(("plain",)).get_content()

    clock.move_to(NOW + dt.timedelta(days=1), tick=False)
    assert actions.actions_remind() == {
        "before": [later.pk],
        "overdue": [],
        "skipped": [],
        "failed": [],
    }
    clock.move_to(NOW + dt.timedelta(days=3), tick=False)  # the 5th: "soon" is overdue
    assert actions.actions_remind()["overdue"] == [soon.pk]
    assert actions.actions_remind()["overdue"] == []
    assert len(smtp.messages) == 3
    assert "[Capgov] Overdue action item" in smtp.messages[-1]["Subject"]

    # A closed item is never reminded.
    actions.action_close(action=later, by=world.author, status="done")
    clock.move_to(NOW + dt.timedelta(days=30), tick=False)
    assert actions.actions_remind()["overdue"] == []


def test_a_failed_send_is_not_marked_and_goes_out_on_the_next_run(
    world,
    smtp,  # noqa: F811
    settings,
):
    item = add(world)
    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = _free_port()  # nobody listens there
    assert actions.actions_remind()["failed"] == [item.pk]
    item.refresh_from_db()
    assert item.reminded_overdue_at is None

    settings.EMAIL_PORT = port
    assert action_items_remind_task() == {
        "before": [],
        "overdue": [item.pk],
        "skipped": [],
        "failed": [],
    }
    assert len(smtp.messages) == 1


def test_a_new_due_date_or_owner_means_a_new_reminder(world, mailoutbox):
    item = add(world, due=YESTERDAY)
    actions.actions_remind()
    assert len(mailoutbox) == 1
    item = actions.action_update(action=item, by=world.author, due=TODAY - dt.timedelta(days=2))
    assert item.reminded_overdue_at is None
    actions.actions_remind()
    assert len(mailoutbox) == 2
    actions.action_update(action=item, by=world.author, title="Autoscale the ranker pool")
    actions.actions_remind()
    assert len(mailoutbox) == 2  # the same date and owner: nothing new to say


def test_an_owner_without_an_address_is_skipped(world, mailoutbox):
    world.owner.email = ""
    world.owner.save()
    item = add(world)
    assert actions.actions_remind()["skipped"] == [item.pk]
    assert mailoutbox == []


def test_the_reminders_run_daily_from_beat(settings):
    entry = settings.CAPGOV_SCHEDULES["action-items-remind"]
    assert (
        entry["task"]
        == action_items_remind_task.name
        == ("incidents.tasks.action_items_remind_task")
    )
    assert entry["schedule"] == 24 * 60 * 60.0


# --- who may do what ------------------------------------------------------------------------


def test_authors_approvers_the_commander_and_admins_manage_items(world):
    for who in (world.author, world.approver, world.commander, world.admin):
        assert add(world, by=who, title=f"By {who.username}").title == f"By {who.username}"
    for who in (world.stranger, world.owner, world.reg.org.researcher):
        with pytest.raises(PermissionDeniedError, match="authors and approvers"):
            add(world, by=who)
    assert ActionItem.objects.count() == 4


def test_the_owner_may_mark_their_item_done_but_not_cancel_or_change_it(world):
    item = add(world)
    with pytest.raises(PermissionDeniedError):
        actions.action_close(action=item, by=world.owner, status="cancelled")
    with pytest.raises(PermissionDeniedError):
        actions.action_update(action=item, by=world.owner, title="Something easier")
    with pytest.raises(PermissionDeniedError):
        actions.action_close(action=item, by=world.stranger, status="done")
    done = actions.action_close(action=item, by=world.owner, status="done")
    assert (done.status, done.done_at) == (ActionStatus.DONE, NOW)
    with pytest.raises(ConflictError, match="already done"):
        actions.action_close(action=item, by=world.author, status="cancelled")
    with pytest.raises(ConflictError):
        actions.action_update(action=item, by=world.author, title="Reopen?")
    with pytest.raises(DomainError, match="done or as cancelled"):
        actions.action_close(action=add(world), by=world.author, status="open")


def test_items_stay_editable_after_the_post_mortem_is_published(world):
    PostMortem.objects.filter(pk=world.pm.pk).update(status=PostMortemStatus.PUBLISHED)
    world.pm.refresh_from_db()
    item = add(world, by=world.author)
    item = actions.action_update(action=item, by=world.approver, due=TODAY + dt.timedelta(days=9))
    assert item.due == TODAY + dt.timedelta(days=9)
    assert actions.action_close(action=item, by=world.commander, status="cancelled").done_at


def test_a_prevent_item_names_a_model_or_a_pool(world):
    assert add(world, subject=world.reg.model).subject == world.reg.model
    assert add(world, subject=world.reg.pool).subject == world.reg.pool
    with pytest.raises(DomainError, match="registered model or a capacity pool"):
        add(world, subject=world.reg.version)
    with pytest.raises(DomainError, match="registered model or a capacity pool"):
        add(world, subject=world.reg.org.research)
    # Other kinds may name any record, e.g. the version to roll back.
    assert add(world, kind="mitigate", subject=world.reg.version).subject == world.reg.version
    item = add(world, kind="mitigate", subject=world.reg.version)
    with pytest.raises(DomainError, match="prevent item's subject"):
        actions.action_update(action=item, by=world.author, kind="prevent")
    with pytest.raises(DomainError, match="title is empty"):
        add(world, title="   ")
    with pytest.raises(DomainError, match="kind must be one of"):
        add(world, kind="blame")
    world.owner.is_active = False
    world.owner.save()
    with pytest.raises(DomainError, match="inactive"):
        add(world)


# --- the deployment gate ----------------------------------------------------------------------


def warning_messages(verdict) -> list[str]:
    return [w.message for w in verdict.warnings if w.code == gate.PREVENT_ITEMS]


def test_an_open_prevent_item_on_a_model_shows_on_its_versions_gate(world):
    reg = world.reg
    make_deployable(reg)
    item = add(world, subject=reg.model, due=TODAY + dt.timedelta(days=3))
    add(world, kind="mitigate", title="Roll back", subject=reg.model)  # not a prevent item
    other = registry_services.model_register(
        by=reg.org.researcher,
        name="ctr",
        business_unit=reg.org.research,
        task="ranking",
        source="in-house",
        risk_tier="medium",
    )
    add(world, title="Cap the ctr model", subject=other)  # another model

    verdict = registry_services.deployment_gate(reg.version)
    expected = (
        "Open prevent action from incident 'H100 pool exhausted' (due 2026-12-05, owner Olga "
        "Owner): Add autoscaling to the ranker pool"
    )
    assert verdict.open
    assert warning_messages(verdict) == [expected]
    assert verdict.as_dict()["warnings"] == [{"code": "prevent_items", "message": expected}]

    api = APIClient()
    api.force_authenticate(reg.org.researcher)
    body = api.get(f"/api/v1/model-versions/{reg.version.pk}/gate/").json()
    assert body["deployable"] is True
    assert body["warnings"] == [{"code": "prevent_items", "message": expected}]

    page = signed_in(reg.org.researcher).get(
        reverse("registry:version-detail", args=[reg.version.pk])
    )
    assert page.status_code == 200
    panel = page.content.decode().split('id="gate"', 1)[1].split("</section>", 1)[0]
    assert 'id="gate-warnings"' in panel
    assert "Open prevent action from incident &#x27;H100 pool exhausted&#x27;" in panel
    assert "Ready to deploy" in panel

    actions.action_close(action=item, by=world.owner, status="done")
    assert registry_services.deployment_gate(reg.version).warnings == ()


def test_a_prevent_item_on_a_pool_shows_on_the_versions_that_use_it(world):
    reg = world.reg
    make_deployable(reg)  # its assessment is on the shared H100 pool
    on_pool = add(world, subject=reg.pool)
    elsewhere = CapacityPool.objects.create(
        code="a100",
        name="A100 pool",
        provider="aws",
        hardware_profile=reg.a100,
        accelerator_count=8,
    )
    add(world, title="Grow the A100 pool", subject=elsewhere)
    # A version without an assessment, served by an endpoint on the pool's instance type.
    served = registry_services.version_create(
        by=reg.org.researcher,
        model=RegisteredModel.objects.create(
            name="summariser",
            business_unit=reg.org.research,
            task="ranking",
            source="in-house",
            created_by=reg.org.researcher,
        ),
        version="1.0",
        artifact_uri="s3://models/summariser/1.0/",
        framework="PyTorch",
        precision="fp16",
        serving_runtime="vLLM 0.8",
        hardware_profile=reg.h100,
    )
    Endpoint.objects.create(
        provider="aws",
        account_id="111122223333",
        name="summariser-prod",
        resource_id="arn:aws:sagemaker:eu-west-1:111122223333:endpoint/summariser-prod",
        instance_type="ml.p5.xlarge",
        model_version=served,
    )
    idle = registry_services.version_create(
        by=reg.org.researcher,
        model=served.model,
        version="0.9",
        artifact_uri="s3://models/summariser/0.9/",
        framework="PyTorch",
        precision="fp16",
        serving_runtime="vLLM 0.8",
        hardware_profile=reg.h100,
    )

    versions = list(
        ModelVersion.objects.filter(pk__in=[reg.version.pk, served.pk, idle.pk]).select_related(
            "model", "hardware_profile"
        )
    )
    verdicts = registry_services.deployment_gates(versions)
    expected = (
        "Open prevent action from incident 'H100 pool exhausted' (due 2026-12-01, overdue, "
        "owner Olga Owner, on the pool Shared H100 pool): Add autoscaling to the ranker pool"
    )
    assert warning_messages(verdicts[reg.version.pk]) == [expected]
    assert warning_messages(verdicts[served.pk]) == [expected]
    assert warning_messages(verdicts[idle.pk]) == []
    actions.action_close(action=on_pool, by=world.author, status="cancelled")
    assert registry_services.deployment_gate(reg.version).warnings == ()


def test_where_the_requirement_blocks_on_prevent_items_the_version_cannot_deploy(world):
    reg = world.reg
    RegistrationRequirement.objects.create(
        name="Strict ranking",
        business_unit=reg.org.research,
        mandatory_metrics=["requests_per_s", "latency_p95_ms"],
        block_on_prevent_items=True,
    )
    make_deployable(reg)
    item = add(world, subject=reg.model)

    verdict = registry_services.deployment_gate(reg.version)
    assert not verdict.open
    assert gate_codes(verdict) == ["prevent_items"]
    assert verdict.warnings == ()
    assert not verdict.unmet[0].waivable

    ci = APIClient()
    ci.force_authenticate(reg.org.researcher)
    refused = ci.post(f"/api/v1/model-versions/{reg.version.pk}/deploy/")
    assert refused.status_code == 409
    body = refused.json()
    assert body["deployable"] is False
    assert body["unmet"] == [
        {
            "code": "prevent_items",
            "message": (
                "Open prevent action from incident 'H100 pool exhausted' (due 2026-12-01, "
                "overdue, owner Olga Owner): Add autoscaling to the ranker pool"
            ),
            "waivable": False,
        }
    ]
    assert "Add autoscaling to the ranker pool" in body["detail"]
    reg.version.refresh_from_db()
    assert reg.version.state == "approved"

    page = signed_in(reg.org.researcher).get(
        reverse("registry:version-detail", args=[reg.version.pk])
    )
    panel = page.content.decode().split('id="gate"', 1)[1].split("</section>", 1)[0]
    assert "Not ready to deploy" in panel
    assert 'data-code="prevent_items"' in panel

    actions.action_close(action=item, by=world.owner, status="done")
    assert registry_services.deployment_gate(reg.version).open
    deployed = ci.post(f"/api/v1/model-versions/{reg.version.pk}/deploy/")
    assert deployed.status_code == 200, deployed.json()
    assert deployed.json()["state"] == "deployed"


def test_the_gate_reads_prevent_items_in_a_fixed_number_of_queries(world):
    reg = world.reg
    make_deployable(reg)
    add(world, subject=reg.model)
    add(world, subject=reg.pool)

    def count(n_versions: int) -> int:
        versions = list(
            ModelVersion.objects.select_related("model", "hardware_profile").order_by("pk")[
                :n_versions
            ]
        )
        with CaptureQueriesContext(connection) as ctx:
            verdicts = registry_services.deployment_gates(versions)
        assert all(warning_messages(v) for v in verdicts.values())
        provided = [q for q in ctx.captured_queries if "incidents_actionitem" in q["sql"]]
        assert len(provided) == 1
        return len(ctx.captured_queries)

    few = count(1)
    for n in range(8):
        registry_services.version_create(
            by=reg.org.researcher,
            model=reg.model,
            version=f"4.{n}",
            artifact_uri="s3://x",
            framework="PyTorch",
            precision="fp16",
            serving_runtime="vLLM",
            hardware_profile=reg.h100,
        )
    assert count(9) == few


def test_without_open_prevent_items_the_gate_asks_once(world, django_assert_max_num_queries):
    versions = list(ModelVersion.objects.select_related("model", "hardware_profile"))
    with CaptureQueriesContext(connection) as ctx:
        actions.gate_prevent_items(versions, NOW)
    assert len(ctx.captured_queries) == 1
    with django_assert_max_num_queries(0):
        assert actions.gate_prevent_items([], NOW) == {}


# --- pages ------------------------------------------------------------------------------------


def test_authors_add_and_close_items_from_the_post_mortem(world):
    reg = world.reg
    client = signed_in(world.author)
    created = client.post(
        reverse("incidents:action-create", args=[world.incident.pk]),
        {
            "title": "Alert at 80 % pool use",
            "kind": "prevent",
            "owner": "olga",
            "due": "2026-12-20",
            "subject": f"pool:{reg.pool.pk}",
        },
    )
    item = ActionItem.objects.get()
    assert created.status_code == 302
    assert created["Location"] == (f"/incidents/{world.incident.pk}/postmortem/#action-{item.pk}")
    assert (item.owner, item.due, item.subject) == (world.owner, dt.date(2026, 12, 20), reg.pool)

    edit = client.get(reverse("incidents:action-update", args=[item.pk]))
    assert edit.status_code == 200
    assert f'value="pool:{reg.pool.pk}" selected' in edit.content.decode()
    saved = client.post(
        reverse("incidents:action-update", args=[item.pk]),
        {
            "title": "Alert at 75 % pool use",
            "kind": "prevent",
            "owner": "olga",
            "due": "2026-12-18",
            "subject": f"model:{reg.model.pk}",
        },
    )
    assert saved.status_code == 302
    item.refresh_from_db()
    assert (item.title, item.subject) == ("Alert at 75 % pool use", reg.model)

    bad = client.post(
        reverse("incidents:action-create", args=[world.incident.pk]),
        {"title": "No owner", "kind": "prevent", "owner": "", "due": "2026-12-20"},
    )
    assert bad.status_code == 400
    wrong = client.post(
        reverse("incidents:action-create", args=[world.incident.pk]),
        {
            "title": "Gate the version",
            "kind": "prevent",
            "owner": "olga",
            "due": "2026-12-20",
            "subject": f"version:{reg.version.pk}",
        },
    )
    assert wrong.status_code == 400
    assert "Select a valid choice" in wrong.content.decode()

    closed = signed_in(world.owner).post(
        reverse("incidents:action-close", args=[item.pk]),
        {"status": "done", "next": reverse("incidents:actions-overdue")},
    )
    assert closed.status_code == 302
    assert closed["Location"] == reverse("incidents:actions-overdue")
    item.refresh_from_db()
    assert item.status == ActionStatus.DONE


def test_others_get_403_and_nothing_changes(world):
    item = add(world)
    stranger = signed_in(world.stranger)
    create = stranger.post(
        reverse("incidents:action-create", args=[world.incident.pk]),
        {"title": "Mine", "kind": "process", "owner": "stan", "due": "2026-12-20"},
    )
    assert create.status_code == 403
    assert stranger.get(reverse("incidents:action-update", args=[item.pk])).status_code == 403
    assert (
        stranger.post(
            reverse("incidents:action-update", args=[item.pk]),
            {"title": "Changed", "kind": "process", "owner": "stan", "due": "2026-12-20"},
        ).status_code
        == 403
    )
    closing = stranger.post(reverse("incidents:action-close", args=[item.pk]), {"status": "done"})
    assert closing.status_code == 403
    cancelling = signed_in(world.owner).post(
        reverse("incidents:action-close", args=[item.pk]), {"status": "cancelled"}
    )
    assert cancelling.status_code == 403
    assert ActionItem.objects.get().title == item.title
    assert ActionItem.objects.get().status == ActionStatus.OPEN
    assert stranger.get(reverse("incidents:action-close", args=[item.pk])).status_code == 405

    for name, args in (("actions", []), ("actions-overdue", []), ("action-update", [item.pk])):
        response = Client().get(reverse(f"incidents:{name}", args=args))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_the_post_mortem_panel_shows_items_and_forms_to_those_allowed(world, rf):
    item = add(world, subject=world.reg.model)
    done = add(world, title="Page the pool owner", kind="mitigate", due=TODAY)
    actions.action_close(action=done, by=world.author, status="done")

    def panel(user) -> str:
        request = rf.get("/")
        request.user = user
        return render_to_string(
            "incidents/_actions.html",
            {"actions": actions.action_list(world.pm, user=user), "postmortem": world.pm},
            request=request,
        )

    html = panel(world.author)
    assert html.index("Add autoscaling") < html.index("Page the pool owner")  # open first
    assert f'id="action-{item.pk}" class="overdue"' in html
    assert f'<a href="/registry/models/{world.reg.model.pk}/">ranker</a>' in html
    assert "Add an action item" in html
    assert 'value="cancelled"' in html
    owner_view = panel(world.owner)
    assert "Add an action item" not in owner_view
    assert 'value="done"' in owner_view
    assert 'value="cancelled"' not in owner_view
    stranger_view = panel(world.stranger)
    assert "Add an action item" not in stranger_view
    assert 'value="done"' not in stranger_view
    assert "Add autoscaling to the ranker pool" in stranger_view


def test_the_post_mortem_page_includes_the_panel(world):
    add(world)
    page = signed_in(world.author).get(reverse("incidents:postmortem", args=[world.incident.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="actions"' in body
    assert "Add autoscaling to the ranker pool" in body
    assert reverse("incidents:action-create", args=[world.incident.pk]) in body


def _many(w: World, n: int) -> None:
    for i in range(n):
        add(
            w,
            title=f"Overdue item {i:02d}",
            due=YESTERDAY - dt.timedelta(days=i),
            subject=w.reg.model if i % 2 else w.reg.pool,
            owner=w.owner if i % 3 else w.stranger,
        )


def test_the_overdue_list_pages_and_leaves_out_the_rest(world):
    _many(world, 30)
    add(world, title="Not yet due", due=TODAY)
    actions.action_close(action=add(world, title="Closed late"), by=world.author, status="done")
    client = signed_in(world.stranger)
    first = client.get(reverse("incidents:actions-overdue")).content.decode()
    assert "30 overdue items" in first
    assert "Overdue item 29" in first  # the longest overdue first
    assert "Overdue item 04" not in first
    assert "Not yet due" not in first
    assert "Closed late" not in first
    second = client.get(reverse("incidents:actions-overdue"), {"page": 2}).content.decode()
    assert "Overdue item 04" in second
    assert "Page 2 of 2" in second


def test_the_lists_take_a_fixed_number_of_queries(world, django_assert_max_num_queries):
    client = signed_in(world.author)
    _many(world, 3)

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(path).status_code == 200
        return len(ctx.captured_queries)

    paths = [reverse("incidents:actions-overdue"), reverse("incidents:actions") + "?kind=prevent"]
    few = [queries(p) for p in paths]
    _many(world, 25)
    for path in paths:
        with django_assert_max_num_queries(12):
            assert client.get(path).status_code == 200
    assert [queries(p) for p in paths] == few


def test_the_all_items_list_filters(world):
    _many(world, 3)  # items 00 (stan), 01 and 02 (olga)
    add(world, title="Soon", kind="process", due=TODAY + dt.timedelta(days=5))
    closed = add(world, title="Finished", kind="mitigate")
    actions.action_close(action=closed, by=world.author, status="done")
    client = signed_in(world.stranger)
    url = reverse("incidents:actions")

    def titles(**params) -> list[str]:
        body = client.get(url, params).content.decode()
        return sorted(
            t
            for t in ("Overdue item 00", "Overdue item 01", "Overdue item 02", "Soon", "Finished")
            if t in body
        )

    assert titles() == [
        "Finished",
        "Overdue item 00",
        "Overdue item 01",
        "Overdue item 02",
        "Soon",
    ]
    assert titles(status="done") == ["Finished"]
    assert titles(kind="process") == ["Soon"]
    assert titles(owner="stan") == ["Overdue item 00"]
    assert titles(overdue="on") == ["Overdue item 00", "Overdue item 01", "Overdue item 02"]
    assert titles(overdue="on", owner="olga") == ["Overdue item 01", "Overdue item 02"]
    refused = client.get(url, {"status": "lost"})
    assert refused.status_code == 200
    assert titles(status="lost") == []


def test_the_api_schema_documents_the_gate_warnings(db):
    from drf_spectacular.generators import SchemaGenerator

    schemas = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    for name in ("GateVerdict", "GateClosed"):
        warnings = schemas[name]["properties"]["warnings"]
        assert warnings["items"] == {"$ref": "#/components/schemas/GateWarning"}
    assert set(schemas["GateWarning"]["properties"]) == {"code", "message"}


def test_a_policy_that_blocks_on_a_warning_turns_it_into_an_unmet_requirement():
    verdict = gate.GateVerdict(policy="p", unmet=())
    warning = gate.GateWarning(gate.PREVENT_ITEMS, "Open prevent action")
    other = gate.GateWarning("other", "Something to know")
    lenient = gate.with_provided(verdict, gate.DEFAULT_POLICY, warnings=[warning, other])
    assert lenient.open
    assert lenient.warnings == (warning, other)
    strict = gate.Policy(
        name="Strict",
        mandatory_metrics=(),
        max_benchmark_age_days=90,
        assessment_required=False,
        blocking_warnings=frozenset({gate.PREVENT_ITEMS}),
    )
    blocked = gate.with_provided(verdict, strict, warnings=[warning, other])
    assert blocked.unmet == (gate.Unmet(gate.PREVENT_ITEMS, "Open prevent action"),)
    assert blocked.warnings == (other,)
    assert blocked.as_dict()["warnings"] == [{"code": "other", "message": "Something to know"}]


def test_a_reminder_claimed_by_a_concurrent_run_is_not_sent_again(world, mailoutbox):
    item = add(world)
    # Another run marked it between this run's read and its claim.
    ActionItem.objects.filter(pk=item.pk).update(reminded_overdue_at=NOW)
    assert not actions._remind(item, "overdue", "reminded_overdue_at", NOW, TODAY)
    assert mailoutbox == []


def test_changing_an_item_keeps_a_subject_the_form_does_not_offer(world):
    item = add(world, kind="mitigate", title="Roll back", subject=world.reg.version)
    saved = signed_in(world.author).post(
        reverse("incidents:action-update", args=[item.pk]),
        {"title": "Roll back to 2.0", "kind": "mitigate", "owner": "olga", "due": "2026-12-09"},
    )
    assert saved.status_code == 302
    item.refresh_from_db()
    assert (item.title, item.subject) == ("Roll back to 2.0", world.reg.version)
