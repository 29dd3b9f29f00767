"""What an attack on the cloud sync found, kept fixed."""

import datetime as dt
import logging

import pytest
from django.db import IntegrityError
from django.utils import timezone

from costs import clients, sync
from costs.models import CloudAccount, SyncRun
from governance.exceptions import ConflictError, DomainError


@pytest.fixture(autouse=True)
def _real_adapters_loaded():
    # Loaded before a test swaps one for a fake, so loading cannot undo the swap.
    sync.adapters()


@pytest.fixture
def account(db):
    return CloudAccount.objects.create(name="Prod", provider="aws", account_id="111122223333")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (
            '"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADAN\\n'
            '-----END PRIVATE KEY-----"',
            "MIIEvQ",
        ),
        ("<SecretAccessKey>wJalrXUtnFEMI/K7MDENG</SecretAccessKey>", "wJalrXUtnFEMI"),
        ("{'SecretAccessKey': 'wJalrXUtnFEMI/K7MDENG'}", "wJalrXUtnFEMI"),
        ("<SessionToken>FwoGZXIvYXdzEJr</SessionToken>", "FwoGZXIvYXdzEJr"),
        ("Authorization: Bearer ya29.a0SECRETTOKEN", "a0SECRETTOKEN"),
        ("proxy https://user:p4ssw0rd@proxy.example:8080 refused", "p4ssw0rd"),
        ('password = "multi word secret"', "word secret"),
        ("https://acct.blob.core.windows.net/x?sv=1&sig=abcDEF123", "abcDEF123"),
        ("X-Goog-Api-Key=AIzaSySECRET", "AIzaSySECRET"),
    ],
)
def test_scrub_removes_credential_shapes(text, secret):
    assert secret not in sync.scrub(text)


def test_scrub_reaches_inside_run_detail():
    detail = {"warnings": ["aws_secret_access_key=abc123"], "nested": {"x": "Bearer ya29.tok"}}
    cleaned = sync.scrub_detail(detail)
    assert "abc123" not in str(cleaned)
    assert "ya29.tok" not in str(cleaned)


def test_env_reference_never_echoes_the_variables_value(account, monkeypatch, settings):
    settings.CAPGOV_GCP_API_ENDPOINT = ""
    monkeypatch.setenv("DATABASE_URL", "postgres://capgov:Hunter2Pass@db.internal:5432/capgov")
    account.gcp_credentials = "env:DATABASE_URL"
    with pytest.raises(FileNotFoundError) as raised:
        clients.gcp_credentials(account)
    assert "Hunter2Pass" not in str(raised.value)
    assert "$DATABASE_URL" in str(raised.value)


def test_unexpected_errors_are_logged_scrubbed(account, monkeypatch, caplog):
    def adapter(*, account, window, run):
        raise ValueError("aws_secret_access_key=SUPERSECRET123 exploded")

    monkeypatch.setitem(sync.SYNCS, ("aws", "prices"), adapter)
    run = SyncRun.objects.create(account=account, kind="prices")
    with caplog.at_level(logging.DEBUG):
        sync.sync_run_execute(run=run)
    assert "SUPERSECRET123" not in caplog.text
    assert "SUPERSECRET123" not in SyncRun.objects.get().error


def test_the_schedule_frees_runs_that_will_never_finish(account, monkeypatch, settings):
    monkeypatch.setitem(sync.SYNCS, ("aws", "prices"), lambda **kw: sync.SyncResult(rows=0))
    long_ago = timezone.now() - dt.timedelta(days=3)
    stuck = SyncRun.objects.create(
        account=account, kind="prices", status="running", started_at=long_ago
    )
    lost = SyncRun.objects.create(account=account, kind="prices")
    SyncRun.objects.filter(pk=lost.pk).update(created_at=long_ago)
    assert len(sync.syncs_schedule(kind="prices")) == 1
    stuck.refresh_from_db()
    lost.refresh_from_db()
    assert (stuck.status, lost.status) == ("failed", "failed")
    assert "Lost" in lost.error


def test_a_cost_kind_the_account_does_not_read_is_refused(account, org):
    with pytest.raises(ConflictError, match="count them twice"):
        sync.sync_run_create(account=account, kind="cur", by=org.admin)


def test_one_record_per_cloud_account(account):
    with pytest.raises(IntegrityError):
        CloudAccount.objects.create(name="Again", provider="aws", account_id="111122223333")


def test_periods_are_bounded(account, org, monkeypatch):
    monkeypatch.setitem(sync.SYNCS, ("aws", "prices"), lambda **kw: sync.SyncResult(rows=0))
    with pytest.raises(DomainError, match="at most 400 days"):
        sync.sync_run_create(
            account=account,
            kind="prices",
            by=org.admin,
            start=dt.date(1900, 1, 1),
            end=dt.date(2199, 1, 1),
        )


def test_account_fields_are_validated(account):
    from django.core.exceptions import ValidationError

    account.cost_source = "bigquery"
    account.cost_allocation_tags = "team,env"
    with pytest.raises(ValidationError) as raised:
        account.full_clean()
    assert set(raised.value.message_dict) == {"cost_source", "cost_allocation_tags"}


def test_beat_schedules_in_the_admin_are_for_platform_admins(org, client):
    from tests.factories import PASSWORD

    for user in (org.finance, org.admin):
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    client.login(username=org.finance.username, password=PASSWORD)
    assert client.get("/admin/django_celery_beat/periodictask/add/").status_code == 403
    assert client.get("/admin/costs/cloudaccount/").status_code == 403
    client.login(username=org.admin.username, password=PASSWORD)
    assert client.get("/admin/django_celery_beat/periodictask/").status_code == 200
    assert client.get("/admin/costs/cloudaccount/add/").status_code == 200
    assert client.get("/admin/costs/syncrun/add/").status_code == 403
