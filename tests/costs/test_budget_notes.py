"""An approver reads what an estimate would take of the unit's remaining budget."""

import datetime as dt
from decimal import Decimal

import time_machine
from django.core import mail

from costs import services
from costs.notes import budget_share_note
from governance.choices import Role
from governance.models import ApprovalPolicy, PolicyStep
from governance.services import approval_request_create, approval_request_submit
from tests.factories import UserFactory


def request_for(org, cost: str):
    return approval_request_create(
        by=org.researcher,
        kind="fine_tuning",
        title="Fine-tune the ranker",
        business_unit=org.research,
        estimated_cost=Decimal(cost),
        accelerator="H100",
        accelerator_count=64,
        duration_hours=Decimal(72),
    )


@time_machine.travel(dt.datetime(2026, 10, 20, 12, tzinfo=dt.UTC))
def test_budget_share_of_the_remaining_month(october):
    # Research spent 3.75 USD in October (see the october fixture).
    services.budget_save(
        name="Research",
        business_unit=october.research,
        amount=Decimal("10.00"),
        currency="USD",
        by=october.finance,
    )
    note = budget_share_note(request_for(october, "2.50"))
    assert (
        note == "40 % of Research's remaining budget for October 2026 (6.25 USD left of 10.00 USD)."
    )
    spent = budget_share_note(request_for(october, "20.00"))
    assert (
        spent
        == "320 % of Research's remaining budget for October 2026 (6.25 USD left of 10.00 USD)."
    )


@time_machine.travel(dt.datetime(2026, 10, 20, 12, tzinfo=dt.UTC))
def test_approval_mail_carries_the_budget_share(october, django_capture_on_commit_callbacks):
    services.budget_save(
        name="Research",
        business_unit=october.research,
        amount=Decimal("10.00"),
        currency="USD",
        by=october.finance,
    )
    policy = ApprovalPolicy.objects.create(name="Everything", min_cost=Decimal(0))
    PolicyStep.objects.create(policy=policy, order=1, role=Role.APPROVER)
    UserFactory(username="alex", roles=[Role.APPROVER])
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        approval_request_submit(request=request_for(october, "2.50"), by=october.researcher)
    [message] = mail.outbox
    assert "40 % of Research's remaining budget for October 2026" in message.body
    assert "40 % of Research&#x27;s remaining budget for October 2026" in message.alternatives[0][0]


def test_no_budget_no_note(org):
    assert budget_share_note(request_for(org, "100")) is None
