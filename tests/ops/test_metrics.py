"""/metrics: who may read it, and that the domain's numbers move with what really happened
(an import, an approval, a mail, a freeze, an escalation, a queue filling up)."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal as D

import pytest
import redis
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from costs.models import CloudAccount, SyncRun
from governance import services
from governance.choices import Role
from governance.models import ApprovalRequest, MailCount
from tests.conftest import REQUIRE_SERVICES
from tests.costs.conftest import import_file
from tests.factories import PASSWORD, focus_line
from tests.governance.test_approvals import approvals_org, policy_make, request_make

NOW = dt.datetime(2026, 10, 5, 9, 0, tzinfo=dt.UTC)
SCRAPE_TOKEN = "scrape-token-9f3b7c1e5d"
REDIS_URL = os.environ.get("CAPGOV_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
Samples = dict[tuple[str, frozenset], float]


def scrape(client: Client | None = None) -> Samples:
    client = client or Client(HTTP_AUTHORIZATION=f"Bearer {SCRAPE_TOKEN}")
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def people(db, settings, time_machine):
    time_machine.move_to(NOW, tick=False)
    settings.CAPGOV_METRICS_TOKEN = SCRAPE_TOKEN
    # The real chain: Capgov's counting backend in front of the test outbox.
    settings.EMAIL_BACKEND = "governance.mail_backend.CountingEmailBackend"
    settings.CAPGOV_EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return approvals_org()


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


# --- access ----------------------------------------------------------------------------------


def test_metrics_need_the_scrape_token_or_a_platform_admin(people, settings):
    assert Client().get("/metrics").status_code == 403
    wrong = Client(HTTP_AUTHORIZATION="Bearer not-the-token").get("/metrics")
    assert wrong.status_code == 403
    assert b"CAPGOV_METRICS_TOKEN" in wrong.content
    assert Client(HTTP_AUTHORIZATION=f"Token {SCRAPE_TOKEN}").get("/metrics").status_code == 403
    assert signed_in(people.fiona).get("/metrics").status_code == 403, "finance is not enough"
    assert scrape(signed_in(people.pat)), "a platform admin reads them signed in"
    assert scrape()
    settings.CAPGOV_METRICS_TOKEN = ""
    empty = Client(HTTP_AUTHORIZATION="Bearer ").get("/metrics")
    assert empty.status_code == 403, "no token configured: no bearer access at all"


def test_metrics_include_django_prometheus_request_and_process_metrics(people):
    scrape()
    samples = scrape()
    names = {name for name, _ in samples}
    assert "django_http_requests_total_by_method_total" in names
    assert "django_http_requests_latency_seconds_by_view_method_count" in names
    assert value(samples, "django_http_requests_total_by_method_total", method="GET") >= 1
    if connection.vendor == "postgresql":  # the counting backend is PostgreSQL's only
        assert "django_db_execute_total" in names
        assert "django_db_query_duration_seconds_count" in names


# --- the done-when: an import and an approval move the numbers ------------------------------


def test_metrics_move_after_a_billing_import_and_an_approval(people, committed, tmp_path, clock):
    before = scrape()
    assert value(before, "capgov_billing_imports", status="succeeded") == 0
    assert value(before, "capgov_approval_requests_pending") == 0

    result = import_file(
        tmp_path / "october.csv",
        [
            focus_line(cost="1.25", tags={"team": "research"}, resource="res-gpu-1"),
            focus_line(cost="2.50", tags={"team": "ads"}, resource="ads-gpu-1"),
            focus_line(cost="4.00", tags={"team": "ads"}, resource="ads-gpu-2", day="2026-10-06"),
        ],
    )
    policy_make(steps=((Role.APPROVER, 1, 24),))
    job = request_make(people)
    with committed():
        services.approval_request_submit(request=job, by=people.rhea)
    clock.move_to(NOW + dt.timedelta(hours=2))

    waiting = scrape()
    assert value(waiting, "capgov_billing_imports", status="succeeded") == 1
    assert value(waiting, "capgov_billing_import_duration_seconds_count", status="succeeded") == 1
    assert value(waiting, "capgov_billing_rows_ingested_total", source="focus") == (
        result.rows_stored
    )
    assert result.rows_stored == 3
    assert value(waiting, "capgov_billing_rows_read_total", source="focus") == 3
    assert value(waiting, "capgov_approval_requests_pending") == 1
    assert value(waiting, "capgov_approval_steps_pending") == 1
    assert value(waiting, "capgov_approval_request_oldest_pending_seconds") == 2 * 3600
    assert value(waiting, "capgov_approval_step_oldest_pending_seconds") == 2 * 3600
    # Alex and Bea were each mailed their links, through the counting backend.
    assert len(mail.outbox) == 2
    assert value(waiting, "capgov_emails_total", outcome="sent") == 2

    with committed():
        services.approval_vote_cast(step=job.steps.get(), by=people.alex, approve=True)
    job.refresh_from_db()
    assert job.status == "approved"

    after = scrape()
    assert value(after, "capgov_approval_requests_pending") == 0
    assert value(after, "capgov_approval_steps_pending") == 0
    assert value(after, "capgov_approval_request_oldest_pending_seconds") == 0
    assert value(after, "capgov_emails_total", outcome="sent") == 3, "the outcome to Rhea"
    assert value(after, "capgov_emails_total", outcome="failed") == 0


@pytest.fixture
def clock(time_machine):
    return time_machine


def test_a_failed_import_is_counted_as_failed(people, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,billing,file\n1,2,3,4\n")
    from costs import services as cost_services

    assert cost_services.billing_import(path=bad).status == "failed"
    samples = scrape()
    assert value(samples, "capgov_billing_imports", status="failed") == 1
    assert value(samples, "capgov_billing_imports", status="succeeded") == 0
    assert value(samples, "capgov_billing_import_duration_seconds_count", status="failed") == 1


def test_sync_runs_by_kind_status_and_duration_buckets(people):
    account = CloudAccount.objects.create(name="prod", provider="aws", account_id="111122223333")
    started = NOW - dt.timedelta(hours=1)
    for seconds, status, rows in ((3, "succeeded", 120), (45, "succeeded", 80), (400, "failed", 0)):
        SyncRun.objects.create(
            account=account,
            kind="costs",
            status=status,
            started_at=started,
            finished_at=started + dt.timedelta(seconds=seconds),
            rows=rows,
        )
    SyncRun.objects.create(account=account, kind="endpoints", status="queued")
    samples = scrape()
    assert value(samples, "capgov_sync_runs", kind="costs", status="succeeded") == 2
    assert value(samples, "capgov_sync_runs", kind="costs", status="failed") == 1
    assert value(samples, "capgov_sync_runs", kind="endpoints", status="queued") == 1
    assert value(samples, "capgov_sync_runs", kind="prices", status="running") == 0
    assert value(samples, "capgov_sync_rows_total", kind="costs") == 200
    ok = {"kind": "costs", "status": "succeeded"}
    bucket = "capgov_sync_run_duration_seconds_bucket"
    assert value(samples, bucket, le="1.0", **ok) == 0
    assert value(samples, bucket, le="5.0", **ok) == 1
    assert value(samples, bucket, le="60.0", **ok) == 2
    assert value(samples, bucket, le="+Inf", **ok) == 2
    assert value(samples, "capgov_sync_run_duration_seconds_sum", **ok) == 48
    failed = {"kind": "costs", "status": "failed"}
    assert value(samples, bucket, le="300.0", **failed) == 0
    assert value(samples, bucket, le="600.0", **failed) == 1


# --- freezes, escalations, mails ---------------------------------------------------------------


def test_open_freezes_escalations_and_conflicts(people, committed, clock):
    policy_make(steps=((Role.APPROVER, 1, 24),))
    with committed():
        services.approval_request_submit(request=request_make(people), by=people.rhea)
    freeze = services.freeze_start(business_unit=people.ads, reason="Q4 spend", by=people.pat)
    services.freeze_start(
        business_unit=people.research, reason="Budget breach", by=None, origin="budget"
    )
    from governance.services.conflicts import conflict_raise, conflicts_escalate

    conflict_raise(
        title="H100 pool in November",
        description="Both units need the whole pool for two weeks.",
        business_units=[people.research, people.ads],
        by=people.pat,
    )
    samples = scrape()
    assert value(samples, "capgov_deployment_freezes_open", origin="person") == 1
    assert value(samples, "capgov_deployment_freezes_open", origin="budget") == 1
    assert value(samples, "capgov_approval_steps_escalated") == 0
    assert value(samples, "capgov_capacity_conflicts", status="open", escalation_level="0") == 1

    clock.move_to(NOW + dt.timedelta(hours=49))
    with committed():
        assert services.approval_steps_escalate() == 1
        assert conflicts_escalate() == 1
    services.freeze_lift(freeze=freeze, by=people.pat, reason="Spend is back on plan.")
    samples = scrape()
    assert value(samples, "capgov_deployment_freezes_open", origin="person") == 0
    assert value(samples, "capgov_approval_steps_escalated") == 1
    assert value(samples, "capgov_approval_escalations_total") == 1
    assert (
        value(samples, "capgov_capacity_conflicts", status="escalated", escalation_level="1") == 1
    )
    assert value(samples, "capgov_capacity_conflicts", status="open", escalation_level="0") == 0


class RefusingBackend(BaseEmailBackend):
    """A mail server that is down."""

    def send_messages(self, email_messages):
        raise ConnectionRefusedError("SMTP server at localhost:25 refused the connection")


def test_a_mail_the_server_refuses_is_counted_as_failed(people, settings):
    settings.CAPGOV_EMAIL_BACKEND = "tests.ops.test_metrics.RefusingBackend"
    with pytest.raises(ConnectionRefusedError):
        mail.send_mail("Approval needed", "body", None, ["alex@example.com"])
    samples = scrape()
    assert value(samples, "capgov_emails_total", outcome="failed") == 1
    assert value(samples, "capgov_emails_total", outcome="sent") == 0
    assert MailCount.objects.get().day == NOW.date()


def test_mail_counts_add_up_on_todays_row(people):
    for _ in range(3):
        mail.send_mail("Hello", "body", None, ["a@example.com"])
    row = MailCount.objects.get()
    assert (row.day, row.outcome, row.count) == (NOW.date(), "sent", 3)


def test_metrics_read_every_process_s_work_from_the_database(people):
    # A worker process wrote these rows; this process never counted anything in memory.
    MailCount.objects.create(day=NOW.date() - dt.timedelta(days=1), outcome="sent", count=40)
    MailCount.objects.create(day=NOW.date(), outcome="sent", count=2)
    ApprovalRequest.objects.create(
        kind="fine_tuning",
        title="Filed by another process",
        business_unit=people.research,
        requested_by=people.rhea,
        estimated_cost=D("10.00"),
        status="pending",
        submitted_at=NOW - dt.timedelta(minutes=30),
    )
    samples = scrape()
    assert value(samples, "capgov_emails_total", outcome="sent") == 42
    assert value(samples, "capgov_approval_requests_pending") == 1
    assert value(samples, "capgov_approval_request_oldest_pending_seconds") == 1800


# --- Celery queue depth ----------------------------------------------------------------------


@pytest.fixture
def broker(settings):
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError:
        if REQUIRE_SERVICES:
            raise
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    keys = ["celery", "bulk", "celery\x06\x163"]
    client.delete(*keys)
    settings.CELERY_BROKER_URL = REDIS_URL
    settings.CELERY_TASK_ALWAYS_EAGER = False
    yield client
    client.delete(*keys)
    client.close()


def test_queue_depth_is_the_length_of_the_redis_queues(people, broker):
    broker.rpush("celery", "t1", "t2", "t3")
    broker.rpush("celery\x06\x163", "t4")  # a priority-3 message lives in its own list
    broker.rpush("bulk", "import-1")
    samples = scrape()
    assert value(samples, "capgov_celery_broker_up") == 1
    assert value(samples, "capgov_celery_queue_length", queue="celery") == 4
    assert value(samples, "capgov_celery_queue_length", queue="bulk") == 1


def test_queue_depth_is_absent_when_tasks_run_eagerly(people, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    names = {name for name, _ in scrape()}
    assert "capgov_celery_queue_length" not in names
    assert "capgov_celery_broker_up" not in names


def test_an_unreachable_broker_is_reported_and_the_rest_still_served(people, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    samples = scrape()
    assert value(samples, "capgov_celery_broker_up") == 0
    assert ("capgov_approval_requests_pending", frozenset()) in samples


def test_a_scrape_costs_a_bounded_number_of_queries(people, django_assert_max_num_queries):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {SCRAPE_TOKEN}")
    with django_assert_max_num_queries(14):
        assert client.get("/metrics").status_code == 200


def test_with_several_workers_the_shared_directory_feeds_the_request_metrics(
    people, tmp_path, monkeypatch
):
    # gunicorn workers write their request metrics to PROMETHEUS_MULTIPROC_DIR; the scrape
    # adds those files up (none yet here) and the domain's metrics still come from the database.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    samples = scrape()
    names = {name for name, _ in samples}
    assert "capgov_approval_requests_pending" in names
    assert not any(name.startswith("python_gc_") for name in names), "not this process's own"


# --- across processes: a real worker does the work, the web process reports it ----------------


def _wait_for(check, seconds: float = 60) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the worker did not finish in time"
        time.sleep(0.2)


@pytest.mark.e2e
def test_work_done_by_a_worker_process_shows_in_the_web_processes_metrics(
    transactional_db, settings, tmp_path
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from costs import services as cost_services
    from costs.models import BillingImport
    from tests.e2e.conftest import celery_worker
    from tests.factories import write_focus

    settings.CAPGOV_METRICS_TOKEN = SCRAPE_TOKEN
    people = approvals_org()
    policy_make(steps=((Role.APPROVER, 1, 24),))
    worker_env = {
        "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        # The worker sends through Capgov's counting backend in front of this one.
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }
    with celery_worker(worker_env):
        path = write_focus(tmp_path / "oct.csv", [focus_line(cost="42.42"), focus_line(cost="1")])
        upload = SimpleUploadedFile("oct.csv", path.read_bytes(), content_type="text/csv")
        record = cost_services.billing_import_create(uploaded_file=upload, by=people.fiona)
        services.approval_request_submit(request=request_make(people), by=people.rhea)
        _wait_for(lambda: BillingImport.objects.get(pk=record.pk).is_finished)
        _wait_for(lambda: sum(MailCount.objects.values_list("count", flat=True)) >= 2)
        samples = scrape()
    assert value(samples, "capgov_billing_imports", status="succeeded") == 1
    assert value(samples, "capgov_billing_import_duration_seconds_count", status="succeeded") == 1
    assert value(samples, "capgov_billing_rows_ingested_total", source="focus") >= 1
    assert value(samples, "capgov_emails_total", outcome="sent") == 2, "Alex's and Bea's links"
    assert value(samples, "capgov_approval_requests_pending") == 1
    assert value(samples, "capgov_celery_broker_up") == 1
