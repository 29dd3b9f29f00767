"""The data-retention audit page: who sees it, editing policies, dry runs and pruning now."""

import datetime as dt

import pytest

from costs import chargeback, retention
from costs.models import CostRow, DataClass, RetentionPolicy, RetentionRun
from governance.choices import Role
from tests.costs.conftest import OCT
from tests.factories import PASSWORD, UserFactory

NOW = dt.datetime(2027, 12, 10, 6, tzinfo=dt.UTC)  # 400 days back: 2026-11-05


@pytest.fixture(autouse=True)
def _no_lockout_records(settings):
    # django-axes records each sign-in with the client's address; the test client sends none,
    # and PostgreSQL refuses the "unknown" that governance.throttle.client_ip puts in its place.
    settings.AXES_ENABLED = False


@pytest.fixture
def world(abc, time_machine):
    """October 2026's bill (A, B, C and the platform's overhead), a year and more ago."""
    time_machine.move_to(NOW, tick=False)
    abc["admin"] = UserFactory(username="plat-admin", roles=[Role.PLATFORM_ADMIN])
    abc["member"] = UserFactory(username="a-member", units=[abc["A"]])
    return abc


@pytest.fixture
def signed_in(client):
    def sign_in(user):
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return sign_in


@pytest.mark.parametrize("url", ["/costs/retention/", "/costs/retention/runs/1/"])
def test_retention_pages_require_sign_in(client, db, url):
    assert client.get(url).status_code == 302


def test_retention_page_is_for_finance_and_platform_admins(world, signed_in):
    assert signed_in(world["member"]).get("/costs/retention/").status_code == 403


def test_finance_reads_storage_and_what_is_past_policy(world, signed_in):
    page = signed_in(world["finance"]).get("/costs/retention/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Raw billing detail" in html
    assert "before 2026-11-05 is past policy" in html
    rows = CostRow.objects.count()
    assert f'<td class="num" data-field="past-rows">{rows}</td>' in html
    assert "2026-10-05" in html  # the oldest usage day past the policy
    assert "0.10 USD per GB" in html
    assert "Audit history" in html
    assert "never pruned" in html
    assert "Prune now" not in html  # finance reads; platform admins act
    assert "Save policy" not in html


def test_platform_admin_edits_a_policy(world, signed_in):
    client = signed_in(world["admin"])
    html = client.get("/costs/retention/").content.decode()
    assert "Save policy" in html
    assert "Prune now" in html
    policy = RetentionPolicy.objects.get(data_class=DataClass.BILLING_DETAIL)
    prefix = f"policy-{policy.pk}"
    response = client.post(
        f"/costs/retention/policies/{policy.pk}/",
        {f"{prefix}-keep_days": "500", f"{prefix}-prune": "on", f"{prefix}-notes": "Finance ok"},
        follow=True,
    )
    assert "Policy saved" in response.content.decode()
    policy.refresh_from_db()
    assert (policy.keep_days, policy.prune, policy.notes) == (500, True, "Finance ok")

    bad = client.post(
        f"/costs/retention/policies/{policy.pk}/", {f"{prefix}-keep_days": "0"}, follow=True
    )
    assert "not changed" in bad.content.decode()
    policy.refresh_from_db()
    assert policy.keep_days == 500


def test_audit_history_cannot_be_set_to_prune(world, signed_in):
    client = signed_in(world["admin"])
    client.get("/costs/retention/")
    policy = RetentionPolicy.objects.get(data_class=DataClass.AUDIT_HISTORY)
    prefix = f"policy-{policy.pk}"
    client.post(
        f"/costs/retention/policies/{policy.pk}/",
        {f"{prefix}-keep_days": "3650", f"{prefix}-prune": "on"},
    )
    policy.refresh_from_db()
    assert policy.keep_days == 3650
    assert not policy.prune


def test_finance_cannot_change_policies_or_prune(world, signed_in):
    client = signed_in(world["finance"])
    client.get("/costs/retention/")
    policy = RetentionPolicy.objects.get(data_class=DataClass.BILLING_DETAIL)
    prefix = f"policy-{policy.pk}"
    assert (
        client.post(
            f"/costs/retention/policies/{policy.pk}/", {f"{prefix}-keep_days": "1"}
        ).status_code
        == 403
    )
    assert client.post("/costs/retention/run/", {"action": "prune"}).status_code == 403
    assert RetentionRun.objects.count() == 0


def test_dry_run_then_prune_now_from_the_page(world, signed_in):
    client = signed_in(world["admin"])
    before = chargeback.statements_compute(OCT).currencies["USD"].statements
    rows = CostRow.objects.count()
    response = client.post(
        "/costs/retention/run/", {"action": "dry_run", "data_class": "billing_detail"}, follow=True
    )
    assert f"Dry run: would remove {rows} rows or files" in response.content.decode()
    assert CostRow.objects.count() == rows
    run = RetentionRun.objects.get()
    assert run.dry_run

    # Pruning is off by default: nothing changes, and the run says why.
    client.post("/costs/retention/run/", {"action": "prune", "data_class": "billing_detail"})
    assert CostRow.objects.count() == rows
    refused = RetentionRun.objects.order_by("-pk").first()
    assert "pruning is off" in refused.skipped[0]["reason"]

    policy = retention.retention_policies_ensure()[DataClass.BILLING_DETAIL]
    policy.prune = True
    policy.save()
    client.post("/costs/retention/run/", {"action": "prune", "data_class": ""})
    pruned = RetentionRun.objects.filter(data_class=DataClass.BILLING_DETAIL).order_by("-pk")[0]
    assert pruned.rows_removed == rows
    after = chargeback.statements_compute(OCT).currencies["USD"].statements
    assert [(s.unit.code, s.total) for s in after] == [(s.unit.code, s.total) for s in before]

    detail = client.get(f"/costs/retention/runs/{pruned.pk}/").content.decode()
    assert "2026-10 of" in detail
    assert f"import #{pruned.months[0]['billing_import']}" in detail
    page = signed_in(world["finance"]).get("/costs/retention/").content.decode()
    assert "monthly aggregate" in page


def test_run_form_refuses_an_unknown_class(world, signed_in):
    client = signed_in(world["admin"])
    response = client.post(
        "/costs/retention/run/", {"action": "prune", "data_class": "everything"}, follow=True
    )
    assert "Choose a dry run or prune now" in response.content.decode()
    assert RetentionRun.objects.count() == 0


def test_retention_page_queries_are_bounded(world, signed_in, django_assert_max_num_queries):
    for _ in range(25):
        retention.retention_prune(data_class=DataClass.BILLING_DETAIL, dry_run=True)
    client = signed_in(world["finance"])
    with django_assert_max_num_queries(40):
        assert client.get("/costs/retention/").status_code == 200


def test_admin_lists_every_policy_and_refuses_audit_pruning(world, client):
    world["admin"].is_staff = True
    world["admin"].save()
    assert client.login(username="plat-admin", password=PASSWORD)
    RetentionPolicy.objects.all().delete()
    assert client.get("/admin/costs/retentionpolicy/").status_code == 200
    assert RetentionPolicy.objects.count() == 4
    audit = RetentionPolicy.objects.get(data_class=DataClass.AUDIT_HISTORY)
    response = client.post(
        f"/admin/costs/retentionpolicy/{audit.pk}/change/",
        {"keep_days": "2555", "prune": "on", "notes": ""},
    )
    assert response.status_code == 200
    assert "never pruned" in response.content.decode()
    audit.refresh_from_db()
    assert not audit.prune
