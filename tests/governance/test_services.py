from governance.choices import Role
from governance.services import person_upsert
from tests.factories import BusinessUnitFactory


def test_person_upsert_is_idempotent_and_keeps_a_changed_password(db):
    research = BusinessUnitFactory(code="RES")
    first = person_upsert(
        username="rhea",
        email="r@example.com",
        password="one-two-three-4",
        roles=[Role.ML_ENGINEER],
        business_units=[research],
    )
    first.set_password("changed-by-rhea-5")
    first.save()
    again = person_upsert(
        username="rhea",
        email="r@example.com",
        password="one-two-three-4",
        roles=[Role.ML_ENGINEER, Role.APPROVER],
        business_units=[research],
    )
    assert again.pk == first.pk
    assert again.check_password("changed-by-rhea-5")
    assert again.role_set == {Role.ML_ENGINEER, Role.APPROVER}
    assert again.scoped_business_unit_ids == {research.pk}


def test_a_freeze_started_in_the_admin_is_a_decision(org, client):
    from governance.models import Decision, DeploymentFreeze
    from tests.factories import PASSWORD

    org.admin.is_staff = True
    org.admin.save(update_fields=["is_staff"])
    client.login(username=org.admin.username, password=PASSWORD)
    response = client.post(
        "/admin/governance/deploymentfreeze/add/",
        {"business_unit": org.research.pk, "reason": "Security incident INC-42"},
    )
    assert response.status_code == 302
    freeze = DeploymentFreeze.objects.get()
    assert freeze.created_by == org.admin
    assert Decision.objects.get(kind="freeze").rationale == "Security incident INC-42"
    again = client.post(
        "/admin/governance/deploymentfreeze/add/",
        {"business_unit": org.research.pk, "reason": "Twice"},
    )
    assert "already under a deployment freeze" in again.content.decode()


def test_install_schedules_adds_defaults_and_keeps_edits(db, capsys):
    from django.core.management import call_command
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    call_command("install_schedules")
    task = PeriodicTask.objects.get(name="sync-endpoints")
    assert (task.task, task.interval.every, task.args) == (
        "costs.tasks.syncs_schedule_task",
        3600,
        '["endpoints"]',
    )
    task.interval = IntervalSchedule.objects.create(every=600, period="seconds")
    task.save()
    call_command("install_schedules")
    assert PeriodicTask.objects.get(name="sync-endpoints").interval.every == 600
    assert "kept as they were" in capsys.readouterr().out
    call_command("install_schedules", "--reset")
    assert PeriodicTask.objects.get(name="sync-endpoints").interval.every == 3600


def test_favicon_ico_points_at_the_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("favicon.svg")


def test_policy_currency_in_the_admin_is_checked_like_requests(db):
    from governance.admin import ApprovalPolicyForm

    form = ApprovalPolicyForm(
        data={"name": "X", "priority": 1, "currency": "12$", "mode": "sequential"}
    )
    assert not form.is_valid()
    assert "ISO 4217" in str(form.errors["currency"])
