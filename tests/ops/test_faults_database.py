"""PostgreSQL restarts under an import: nothing of it is kept, it says it failed, it re-runs.

The restart is injected where the rows are written (the COPY / bulk insert raising the
driver's ``OperationalError``, what a server shutting down sends), and the first attempts to
record the failure meet a server still starting up.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import OperationalError, connection
from django.db.models import QuerySet
from django.utils import timezone

from costs import services
from costs.models import BillingImport, CostRow, ImportStatus
from costs.selectors import chargeback_get
from tests.factories import focus_line, write_focus

OCT = dt.date(2026, 10, 1)
SHUTDOWN = "terminating connection due to administrator command\nSSL connection closed"


@pytest.fixture
def bill(tmp_path):
    return write_focus(
        tmp_path / "oct.csv",
        [
            focus_line(cost="600.00", tags={"team": "a"}, resource="a-gpu"),
            focus_line(cost="300.00", tags={"team": "b"}, resource="b-gpu"),
        ],
    )


@pytest.fixture
def restart(monkeypatch):
    """The server goes away during the bulk write; the next ``starting`` writes fail too."""
    state = {"starting": 2, "pauses": []}
    real_update = QuerySet.update

    def bulk_insert(frame):
        raise connection.Database.OperationalError(SHUTDOWN)

    def update(queryset, **fields):
        if fields.get("status") == ImportStatus.FAILED and state["starting"]:
            state["starting"] -= 1
            raise OperationalError("the database system is starting up")
        return real_update(queryset, **fields)

    monkeypatch.setattr(services, "_bulk_insert", bulk_insert)
    monkeypatch.setattr(QuerySet, "update", update)
    monkeypatch.setattr(services.time, "sleep", state["pauses"].append)
    return state


@pytest.mark.django_db(transaction=True)
def test_an_import_that_loses_the_database_fails_whole_and_says_so(bill, restart):
    record = services.billing_import(path=bill)

    record.refresh_from_db()
    assert record.status == ImportStatus.FAILED
    assert "the database stopped answering while it was imported" in record.error
    assert "terminating connection due to administrator command" in record.error
    assert "import the file again" in record.error
    assert not CostRow.objects.filter(billing_import=record).exists(), "nothing partial"
    assert restart["pauses"] == list(services.DATABASE_RETRY_PAUSES[:2]), "waited for it twice"


@pytest.mark.django_db(transaction=True)
def test_the_failed_import_runs_again_once_the_database_is_back(bill, restart, monkeypatch):
    failed = services.billing_import(path=bill)
    monkeypatch.undo()

    again = services.billing_import(path=bill)

    assert again.status == ImportStatus.SUCCEEDED, again.error
    assert CostRow.objects.filter(billing_import=again).count() == 2
    assert not CostRow.objects.filter(billing_import=failed).exists()
    assert chargeback_get(user=None, month=OCT).currencies["USD"].total == Decimal("900.00")


@pytest.mark.django_db(transaction=True)
def test_a_database_that_stays_away_leaves_the_import_to_the_sweep(bill, monkeypatch):
    monkeypatch.setattr(
        services, "_bulk_insert", lambda frame: (_ for _ in ()).throw(OperationalError("gone"))
    )
    real_update = QuerySet.update

    def update(queryset, **fields):
        if fields.get("status") == ImportStatus.FAILED:
            raise OperationalError("could not connect to server: Connection refused")
        return real_update(queryset, **fields)

    monkeypatch.setattr(QuerySet, "update", update)
    monkeypatch.setattr(services.time, "sleep", lambda seconds: None)
    with pytest.raises(OperationalError):
        services.billing_import(path=bill)
    monkeypatch.undo()
    record = BillingImport.objects.get()
    assert record.status == ImportStatus.RUNNING, "the worker could not say how it ended"

    later = timezone.now() + dt.timedelta(seconds=services.settings.CAPGOV_ABANDONED_AFTER_SECONDS)
    assert services.billing_imports_recover(now=later + dt.timedelta(seconds=1)) == {
        "imports_abandoned": 1,
        "imports_resent": 0,
    }
    record.refresh_from_db()
    assert record.status == ImportStatus.FAILED
    assert record.error.startswith("Abandoned: the worker stopped")
    assert not CostRow.objects.exists()


def test_inside_a_callers_transaction_the_failure_is_not_retried(db):
    """A sync imports inside its own transaction: that transaction is lost with the connection,
    so there is nothing to record the failure in; the error goes up to the sync."""
    calls = []

    def write():
        calls.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    with pytest.raises(OperationalError):
        services._write_despite_restart(write)
    assert calls == [1]
