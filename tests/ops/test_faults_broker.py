"""The broker (Redis) is down: pages and uploads keep working, the work waits and is sent again.

The failure is injected where Celery hands a message to the broker (``Task.apply_async``
raising kombu's ``OperationalError``, what a refused Redis connection gives); tasks are not
eager here, so the real ``enqueue`` path runs.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachableError

from costs import services, sync, tasks
from costs.models import BillingImport, Budget, BudgetAlert, CloudAccount, ImportStatus
from governance import celery as governance_celery
from governance.celery import app as celery_app
from tests.factories import PASSWORD, OrgFactory, focus_line, write_focus


class Broker:
    """Stands in for the broker at the publish boundary: down (refuses) or up (records)."""

    def __init__(self) -> None:
        self._up = False
        self.sent: list[tuple[str, tuple]] = []

    @property
    def up(self) -> bool:
        return self._up

    @up.setter
    def up(self, value: bool) -> None:
        self._up = value
        if value:  # back, and for longer than enqueue's pause after a refusal
            governance_celery._broker_down_until = 0.0

    def publish(self, task):
        def apply_async(args=None, kwargs=None, **options):
            if not self.up:
                raise BrokerUnreachableError("Error 111 connecting to 127.0.0.1:6379. Refused.")
            self.sent.append((task.name, tuple(args or ())))

        return apply_async


@pytest.fixture
def broker(monkeypatch, not_eager):
    fake = Broker()
    for task in (
        tasks.billing_import_run_task,
        tasks.sync_run_task,
        tasks.budget_alerts_notify_task,
        tasks.budgets_evaluate_task,
        tasks.work_recover_task,
    ):
        monkeypatch.setattr(task, "apply_async", fake.publish(task))
    return fake


@pytest.fixture
def org(db):
    return OrgFactory.build_org()


def upload(tmp_path) -> SimpleUploadedFile:
    path = write_focus(tmp_path / "oct.csv", [focus_line(cost="12.50", tags={"team": "research"})])
    return SimpleUploadedFile("oct.csv", path.read_bytes(), content_type="text/csv")


def post(client, on_commit, url: str, data: dict):
    """A request as in production: the callbacks it leaves for the commit run."""
    with on_commit(execute=True):
        return client.post(url, data)


def test_upload_with_the_broker_down_is_kept_and_says_it_waits(
    client, org, broker, tmp_path, django_capture_on_commit_callbacks
):
    client.login(username=org.finance.username, password=PASSWORD)

    response = post(
        client,
        django_capture_on_commit_callbacks,
        "/costs/imports/",
        {"file": upload(tmp_path), "format": "auto"},
    )

    billing_import = BillingImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == billing_import.get_absolute_url()
    assert (billing_import.status, billing_import.stage) == (
        ImportStatus.QUEUED,
        services.WAITING_FOR_QUEUE,
    )
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "waiting for the task queue" in page.content.decode()
    assert client.get("/").status_code == 200, "pages that enqueue nothing are unaffected"


def test_a_waiting_import_is_sent_once_the_broker_is_back(
    client, org, broker, tmp_path, django_capture_on_commit_callbacks
):
    client.login(username=org.finance.username, password=PASSWORD)
    post(
        client,
        django_capture_on_commit_callbacks,
        "/costs/imports/",
        {"file": upload(tmp_path), "format": "auto"},
    )
    billing_import = BillingImport.objects.get()

    assert tasks.work_recover_task.run()["imports_resent"] == 0, "still down: it keeps waiting"
    broker.up = True
    result = tasks.work_recover_task.run()

    assert result["imports_resent"] == 1
    assert broker.sent == [("costs.tasks.billing_import_run_task", (billing_import.pk,))]
    billing_import.refresh_from_db()
    assert (billing_import.status, billing_import.stage) == (ImportStatus.QUEUED, "")
    assert tasks.work_recover_task.run()["imports_resent"] == 0, "sent once, not every minute"


def test_the_upload_api_answers_202_with_the_broker_down(
    client, org, broker, tmp_path, django_capture_on_commit_callbacks
):
    client.login(username=org.finance.username, password=PASSWORD)

    response = post(
        client,
        django_capture_on_commit_callbacks,
        "/api/v1/imports/",
        {"file": upload(tmp_path), "format": "auto"},
    )

    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert BillingImport.objects.get().stage == services.WAITING_FOR_QUEUE


def test_a_sync_started_with_the_broker_down_waits_and_is_sent_later(
    org, broker, django_capture_on_commit_callbacks
):
    sync.adapters()
    account = CloudAccount.objects.create(name="Prod", provider="aws", account_id="111122223333")
    with django_capture_on_commit_callbacks(execute=True):
        run = sync.sync_run_create(account=account, kind="prices", by=org.admin)
    run.refresh_from_db()
    assert (run.status, run.error) == ("queued", sync.WAITING_FOR_QUEUE)

    broker.up = True
    assert sync.sync_runs_recover()["syncs_resent"] == 1
    run.refresh_from_db()
    assert (run.status, run.error) == ("queued", "")
    assert broker.sent == [("costs.tasks.sync_run_task", (run.pk,))]


def test_budget_mails_that_never_reached_the_broker_are_queued_again(org, broker):
    org.research.owner = org.finance
    org.research.save()
    budget = Budget.objects.create(
        name="Research", business_unit=org.research, amount=Decimal(100), currency="USD"
    )
    now = timezone.now()
    alert = BudgetAlert.objects.create(
        budget=budget,
        month=now.date().replace(day=1),
        measure="actual",
        threshold=80,
        amount=Decimal(100),
        currency="USD",
        spend=Decimal(85),
        created_at=now - dt.timedelta(minutes=10),
    )

    assert services.budget_alerts_resend() == 0, "the broker is still down"
    broker.up = True
    assert services.budget_alerts_resend() == 1
    assert broker.sent == [("costs.tasks.budget_alerts_notify_task", ([alert.pk],))]


def test_enqueue_with_eager_tasks_lets_the_task_errors_through(db):
    assert celery_app.conf.task_always_eager, "the suite runs tasks eagerly, propagating errors"
    with pytest.raises(BillingImport.DoesNotExist):
        tasks.enqueue(tasks.billing_import_run_task, 999_999)
