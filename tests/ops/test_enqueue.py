"""``governance.celery.enqueue``: a stopped broker never turns the write that asked for work
into a 500; what was written stays, and the warning names the task that was not queued.

The failure is injected where Celery hands a message to the broker (``Task.apply_async``
raising kombu's ``OperationalError``, what a refused Redis connection gives).
"""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from kombu.exceptions import OperationalError as BrokerUnreachableError

from governance.celery import app as celery_app
from governance.celery import enqueue
from governance.choices import RequestStatus
from governance.tasks import approval_link_mail_task
from tests.factories import PASSWORD
from tests.governance.test_approvals import approvals_org, policy_make, request_make


def refused(*args, **kwargs):
    raise BrokerUnreachableError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.fixture
def broker_down(monkeypatch, not_eager):
    monkeypatch.setattr(approval_link_mail_task, "apply_async", refused)


def test_enqueue_says_false_and_names_the_task_when_the_broker_is_down(broker_down, caplog):
    with caplog.at_level(logging.WARNING, logger="governance.celery"):
        assert enqueue(approval_link_mail_task, "link-1") is False
    [record] = [r for r in caplog.records if r.name == "governance.celery"]
    assert "governance.tasks.approval_link_mail_task(('link-1',)) not queued" in record.message


def test_enqueue_says_true_when_the_broker_takes_the_task(monkeypatch, not_eager):
    sent = []
    monkeypatch.setattr(
        approval_link_mail_task,
        "apply_async",
        lambda args=None, kwargs=None, **_: sent.append(args),
    )
    assert enqueue(approval_link_mail_task, "link-1") is True
    assert sent == [("link-1",)]


def test_an_eager_task_s_own_error_is_not_swallowed(monkeypatch):
    assert celery_app.conf.task_always_eager
    monkeypatch.setattr(approval_link_mail_task, "apply_async", refused)
    with pytest.raises(BrokerUnreachableError):
        enqueue(approval_link_mail_task, "link-1")


def test_submitting_with_the_broker_down_succeeds_and_keeps_the_request(
    client, db, broker_down, django_capture_on_commit_callbacks, caplog
):
    people = approvals_org()
    policy_make(min_cost=Decimal("20000.00"))
    draft = request_make(people)
    client.login(username=people.rhea.username, password=PASSWORD)

    with (
        caplog.at_level(logging.WARNING, logger="governance.celery"),
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        response = client.post(reverse("governance:request-submit", args=[draft.pk]))

    assert response.status_code == 302  # not a 500 from the commit's mail callbacks
    draft.refresh_from_db()
    assert draft.status == RequestStatus.PENDING
    assert len(callbacks) == 2  # one mail per approver of the first step, neither queued
    assert [r.message.split("(")[0] for r in caplog.records if r.name == "governance.celery"] == [
        "governance.tasks.approval_link_mail_task"
    ] * 2
    assert mail.outbox == []


def test_after_a_refusal_the_broker_is_left_alone_for_a_pause(monkeypatch, not_eager, caplog):
    """A request queueing a mail per unit does not wait for a dead broker once per mail."""
    from governance import celery as governance_celery

    offered = []

    def down(*args, **kwargs):
        offered.append(args)
        refused()

    monkeypatch.setattr(approval_link_mail_task, "apply_async", down)
    clock = [1000.0]
    monkeypatch.setattr(governance_celery.time, "monotonic", lambda: clock[0])
    assert [enqueue(approval_link_mail_task, f"link-{i}") for i in range(50)] == [False] * 50
    assert len(offered) == 1  # one attempt; the other 49 were not offered
    assert "was unreachable a moment ago" in caplog.records[-1].message

    clock[0] += governance_celery.BROKER_PAUSE_SECONDS + 1
    monkeypatch.setattr(approval_link_mail_task, "apply_async", lambda *a, **k: offered.append(a))
    assert enqueue(approval_link_mail_task, "link-50") is True
    assert enqueue(approval_link_mail_task, "link-51") is True
    assert len(offered) == 3
