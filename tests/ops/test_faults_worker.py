"""A worker killed mid-run: its import or sync is marked failed, and the next run recovers.

A killed worker leaves its run "running" with nobody behind it; the every-minute
``work_recover_task`` (and each worker's start) finds it once it has been running longer than
any task may (``CAPGOV_ABANDONED_AFTER_SECONDS``, past the task time limit).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from costs import services, sync, tasks
from costs.models import BillingImport, CloudAccount, ImportStatus, SyncRun, SyncStatus


@pytest.fixture
def adapter(monkeypatch):
    """A prices sync that succeeds (the real adapters are loaded first, then this one)."""
    sync.adapters()
    calls = []

    def prices(*, account, window, run):
        calls.append(run.pk)
        return sync.SyncResult(rows=3, detail={"prices": 3})

    monkeypatch.setitem(sync.SYNCS, ("aws", "prices"), prices)
    return calls


@pytest.fixture
def account(db):
    return CloudAccount.objects.create(name="Prod", provider="aws", account_id="111122223333")


def killed(account: CloudAccount, minutes_ago: float) -> SyncRun:
    """A run whose worker was killed: still "running", started ``minutes_ago``."""
    started = timezone.now() - dt.timedelta(minutes=minutes_ago)
    return SyncRun.objects.create(
        account=account, kind="prices", status=SyncStatus.RUNNING, started_at=started, attempts=1
    )


def abandoned_minutes(settings) -> float:
    return settings.CAPGOV_ABANDONED_AFTER_SECONDS / 60 + 1


def test_a_run_of_a_killed_worker_is_marked_failed_by_the_sweep(account, settings):
    dead = killed(account, abandoned_minutes(settings))
    alive = SyncRun.objects.create(
        account=CloudAccount.objects.create(name="Dev", provider="aws", account_id="222233334444"),
        kind="prices",
        status=SyncStatus.RUNNING,
        started_at=timezone.now() - dt.timedelta(minutes=2),
    )

    result = tasks.work_recover_task.run()

    assert result["syncs_abandoned"] == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, dead.error) == (SyncStatus.FAILED, sync.ABANDONED)
    assert dead.finished_at is not None
    assert alive.status == SyncStatus.RUNNING, "a run within the time limit may still be working"


def test_the_next_run_after_a_killed_one_succeeds(
    account, adapter, settings, django_capture_on_commit_callbacks
):
    dead = killed(account, abandoned_minutes(settings))

    with django_capture_on_commit_callbacks(execute=True):
        run = sync.sync_run_create(account=account, kind="prices")
    run.refresh_from_db()

    assert (run.status, run.rows) == (SyncStatus.SUCCEEDED, 3)
    assert adapter == [run.pk]
    dead.refresh_from_db()
    assert dead.status == SyncStatus.FAILED, "claiming the next run releases the dead one"


def test_a_recent_killed_run_keeps_the_next_one_waiting_instead_of_running_twice(account, adapter):
    killed(account, minutes_ago=1)
    with pytest.raises(sync.SyncRetryableError, match="is running"):
        sync.sync_run_execute(run=SyncRun.objects.create(account=account, kind="prices"))
    assert adapter == [], "never two runs of one account and kind at once"


def test_an_import_of_a_killed_worker_is_marked_failed(db, settings):
    started = timezone.now() - dt.timedelta(seconds=settings.CAPGOV_ABANDONED_AFTER_SECONDS + 60)
    dead = BillingImport.objects.create(
        file_name="big.csv", file_path="/nowhere", status=ImportStatus.RUNNING, started_at=started
    )
    fresh = BillingImport.objects.create(
        file_name="new.csv",
        file_path="/nowhere",
        status=ImportStatus.RUNNING,
        started_at=timezone.now(),
    )

    assert services.billing_imports_recover()["imports_abandoned"] == 1
    dead.refresh_from_db()
    fresh.refresh_from_db()
    assert dead.status == ImportStatus.FAILED
    assert "nothing of it was stored" in dead.error
    assert fresh.status == ImportStatus.RUNNING


def test_the_sweep_limit_must_outlast_the_task_time_limit(monkeypatch):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import governance.settings

    monkeypatch.setenv("CELERY_TASK_TIME_LIMIT", "600")
    monkeypatch.setenv("CAPGOV_ABANDONED_AFTER_SECONDS", "300")
    with pytest.raises(ImproperlyConfigured, match="CAPGOV_ABANDONED_AFTER_SECONDS"):
        importlib.reload(governance.settings)
    monkeypatch.undo()
    importlib.reload(governance.settings)
