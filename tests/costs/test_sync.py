"""The sync framework: queued runs, one at a time, readable failures, no credentials kept."""

import datetime as dt

import pytest
from django.db import IntegrityError

from costs import sync
from costs.models import CloudAccount, SyncRun
from governance.exceptions import DomainError, PermissionDeniedError

CALLS = []


@pytest.fixture
def fake_adapter(monkeypatch):
    """A sync that does what the test tells it to (the real one is put back after)."""
    sync.adapters()  # load the real ones first, so they cannot replace the fake later
    behaviour = {"raise": None, "rows": 7}

    def adapter(*, account, window, run):
        CALLS.append((account.pk, window))
        if behaviour["raise"] is not None:
            raise behaviour["raise"]
        return sync.SyncResult(rows=behaviour["rows"], detail={"days": 3})

    monkeypatch.setitem(sync.SYNCS, ("aws", "prices"), adapter)
    yield behaviour
    CALLS.clear()


@pytest.fixture
def account(db):
    return CloudAccount.objects.create(name="Prod", provider="aws", account_id="111122223333")


def run_now(account, org, django_capture_on_commit_callbacks, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        run = sync.sync_run_create(account=account, kind="prices", by=org.admin, **kwargs)
    run.refresh_from_db()
    return run


def test_sync_run_records_rows_and_window(
    account, org, fake_adapter, django_capture_on_commit_callbacks
):
    run = run_now(
        account,
        org,
        django_capture_on_commit_callbacks,
        start=dt.date(2026, 11, 1),
        end=dt.date(2026, 12, 1),
    )
    assert (run.status, run.rows, run.detail) == ("succeeded", 7, {"days": 3})
    assert run.started_at
    assert run.finished_at
    window = sync.SyncWindow(dt.date(2026, 11, 1), dt.date(2026, 12, 1))
    assert [(account.pk, window)] == CALLS


def test_sync_run_failure_is_readable_and_scrubbed(
    account, org, fake_adapter, django_capture_on_commit_callbacks
):
    fake_adapter["raise"] = sync.SyncError(
        "AccessDenied for AKIAABCDEFGHIJKLMNOP: aws_secret_access_key=abc123/xyz; grant ce:Get*"
    )
    run = run_now(account, org, django_capture_on_commit_callbacks)
    assert run.status == "failed"
    assert "AKIAABCDEFGHIJKLMNOP" not in run.error
    assert "abc123" not in run.error
    assert "grant ce:Get*" in run.error


def test_unexpected_errors_fail_the_run_too(
    account, org, fake_adapter, django_capture_on_commit_callbacks
):
    fake_adapter["raise"] = ValueError("token=s3cr3t broke")
    run = run_now(account, org, django_capture_on_commit_callbacks)
    assert run.status == "failed"
    assert "ValueError" in run.error
    assert "s3cr3t" not in run.error


def test_throttled_runs_retry_and_give_up_marked_failed(
    account, org, fake_adapter, django_capture_on_commit_callbacks
):
    from governance.celery import app

    fake_adapter["raise"] = sync.SyncRetryableError("ThrottlingException: Rate exceeded")
    # As in the demo: an eager retry runs again at once instead of raising.
    app.conf.task_eager_propagates = False
    try:
        run = run_now(account, org, django_capture_on_commit_callbacks)
    finally:
        app.conf.task_eager_propagates = True
    # Eager Celery runs the retries at once; the last one gives up.
    assert run.status == "failed"
    assert "Gave up after retries" in run.error
    assert len(CALLS) == 6


def test_two_runs_of_one_account_and_kind_never_overlap(account, fake_adapter):
    SyncRun.objects.create(account=account, kind="prices", status="running")
    with pytest.raises(IntegrityError):
        SyncRun.objects.create(account=account, kind="prices", status="running")


def test_a_queued_run_waits_while_another_runs(account, fake_adapter):
    SyncRun.objects.create(account=account, kind="prices", status="running")
    waiting = SyncRun.objects.create(account=account, kind="prices")
    with pytest.raises(sync.SyncRetryableError, match="is running"):
        sync.sync_run_execute(run=waiting)
    waiting.refresh_from_db()
    assert waiting.status == "queued"
    assert CALLS == []


def test_only_platform_admins_start_syncs(account, org, fake_adapter):
    with pytest.raises(PermissionDeniedError):
        sync.sync_run_create(account=account, kind="prices", by=org.finance)
    with pytest.raises(DomainError, match="no 'nope' sync"):
        sync.sync_run_create(account=account, kind="nope", by=org.admin)


def test_schedule_queues_each_active_account_once(
    account, fake_adapter, django_capture_on_commit_callbacks
):
    CloudAccount.objects.create(name="Off", provider="aws", account_id="2", is_active=False)
    SyncRun.objects.create(account=account, kind="prices", status="queued")
    assert sync.syncs_schedule(kind="prices") == []
    SyncRun.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        [run] = sync.syncs_schedule(kind="prices")
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_default_windows():
    today = dt.date(2026, 12, 3)
    assert sync.default_window("costs", today) == sync.SyncWindow(
        dt.date(2026, 11, 1), dt.date(2026, 12, 4)
    )
    assert sync.default_window("endpoints", today) == sync.SyncWindow(
        dt.date(2026, 11, 19), dt.date(2026, 12, 3)
    )
    assert sync.default_window("prices", today) is None


def test_sync_pages_are_for_platform_admins(
    account, org, client, fake_adapter, django_capture_on_commit_callbacks
):
    from tests.factories import PASSWORD

    client.login(username=org.finance.username, password=PASSWORD)
    assert client.get("/costs/syncs/").status_code == 403
    client.login(username=org.admin.username, password=PASSWORD)
    page = client.get("/costs/syncs/").content.decode()
    assert "Run a sync now" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/costs/syncs/", {"account": account.pk, "kind": "prices"})
    assert response.status_code == 302
    run = SyncRun.objects.get()
    assert run.status == "succeeded"
    detail = client.get(response["Location"]).content.decode()
    assert "Rows written" in detail
    bad = client.post("/costs/syncs/", {"account": account.pk, "kind": "billing_accounts"})
    assert bad.status_code == 400
    assert "no &#x27;billing_accounts&#x27; sync" in bad.content.decode()


def test_sync_run_list_has_no_n_plus_one(account, org, client, django_assert_max_num_queries):
    from tests.factories import PASSWORD

    for _ in range(5):
        SyncRun.objects.create(account=account, kind="prices", status="failed", error="x")
    client.login(username=org.admin.username, password=PASSWORD)
    with django_assert_max_num_queries(10):
        assert client.get("/costs/syncs/").status_code == 200


def test_sync_api_queues_runs_for_platform_admins_only(
    account, org, fake_adapter, django_capture_on_commit_callbacks
):
    from rest_framework.test import APIClient

    admin, finance = APIClient(), APIClient()
    admin.force_authenticate(org.admin)
    finance.force_authenticate(org.finance)
    assert finance.get("/api/v1/sync-runs/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post("/api/v1/sync-runs/", {"account": account.pk, "kind": "prices"})
    assert response.status_code == 202
    [run] = admin.get("/api/v1/sync-runs/?status=succeeded").json()["results"]
    assert (run["account"], run["rows"]) == ("Prod", 7)
    accounts = admin.get("/api/v1/cloud-accounts/").json()["results"]
    assert "aws_role_arn" not in accounts[0]


def test_a_run_abandoned_by_a_crashed_worker_does_not_block_the_next(
    account, fake_adapter, settings
):
    from django.utils import timezone

    long_ago = timezone.now() - dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 600)
    stuck = SyncRun.objects.create(
        account=account, kind="prices", status="running", started_at=long_ago
    )
    waiting = SyncRun.objects.create(account=account, kind="prices")
    assert sync.sync_run_execute(run=waiting).status == "succeeded"
    stuck.refresh_from_db()
    assert stuck.status == "failed"
    assert "Abandoned" in stuck.error
