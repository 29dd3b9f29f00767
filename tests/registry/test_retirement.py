"""Retirement without a cloud: the verdict's rules, exemptions, reminders and the actions'
bookkeeping (a fake actuator stands in for SageMaker; tests/costs/test_retirement_aws.py
runs the same flow against moto)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from governance.choices import Role
from governance.exceptions import DomainError, PermissionDeniedError
from registry.models import (
    CaseStatus,
    EndpointUsage,
    RetirementCase,
    RetirementExemption,
)
from registry.retirement import evaluate
from registry.retirement_services import (
    case_act,
    case_keep,
    link_read,
    link_use,
    retirement_cases_due,
    retirement_evaluate,
)
from tests.factories import UserFactory
from tests.registry.conftest import NOW, TODAY, make_policy, usage_days

UTC = dt.UTC


def verdict(**overrides):
    usage = {TODAY - dt.timedelta(days=n): 0 for n in range(1, 15)}
    args = {
        "today": TODAY,
        "window_days": 14,
        "max_daily_invocations": 1,
        "min_monthly_cost": D("1000"),
        "policy_currency": "USD",
        "usage": usage,
        "created": dt.date(2026, 9, 1),
        "tags": {},
        "exempt_tag": ("capgov:keep", "true"),
        "exemption": None,
        "monthly_cost": D("2190.00"),
        "currency": "USD",
    }
    return evaluate(**{**args, **overrides})


def test_idle_costly_is_a_candidate():
    result = verdict()
    assert result.idle
    assert (
        result.reason
        == "Idle: 0 requests in 14 days (under 1 every day), costs 2,190.00 USD a month."
    )


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"created": dt.date(2026, 10, 10)}, "Younger than the 14-day window (created 2026-10-10)"),
        ({"created": None}, "Its age is unknown"),
        ({"tags": {"CapGov:Keep": " TRUE "}}, "Tagged capgov:keep=true"),
        (
            {"exemption": (dt.date(2026, 11, 1), "Launch in November")},
            "Kept by its owner until 2026-11-01",
        ),
        ({"monthly_cost": D("12.00")}, "under the policy's minimum of 1,000.00 USD"),
        ({"monthly_cost": None}, "its cost is unknown"),
        ({"currency": "EUR"}, "billed in EUR"),
    ],
)
def test_why_not(overrides, reason):
    result = verdict(**overrides)
    assert not result.idle
    assert reason in result.reason


def test_missing_usage_is_not_zero_traffic():
    usage = {TODAY - dt.timedelta(days=n): 0 for n in range(1, 15) if n != 5}
    result = verdict(usage=usage)
    assert not result.idle
    assert "missing for 1 of the 14 days (first 2026-10-15)" in result.reason
    assert "missing data is not zero traffic" in result.reason
    assert verdict(usage={}).reason.startswith("Usage is missing for 14 of the 14 days")


def test_busy_on_one_day_is_in_use():
    usage = {TODAY - dt.timedelta(days=n): 0 for n in range(1, 15)}
    usage[TODAY - dt.timedelta(days=3)] = 40
    assert verdict(usage=usage).reason.startswith("In use: up to 40 requests a day")


# --- The services ---------------------------------------------------------------------------


def evaluate_at(when, capture):
    with time_machine.travel(when, tick=False), capture(execute=True):
        return retirement_evaluate()


def test_scale_to_min_saves_three_quarters(
    org, idle, fake_cloud, django_capture_on_commit_callbacks
):
    make_policy()
    result = evaluate_at(NOW, django_capture_on_commit_callbacks)
    (case,) = result.opened
    assert case.endpoint == idle["quiet"]
    assert case.monthly_cost == D("4380.00")
    assert "estimated: 4 x ml.g5.2xlarge at 1.50 USD/h x 730 h" in case.evidence["cost_basis"]
    with time_machine.travel(NOW + dt.timedelta(days=8), tick=False):
        retirement_cases_due()
    case.refresh_from_db()
    assert case.status == CaseStatus.RETIRED
    assert case.monthly_saving == D("3285.00")  # 3 of 4 instances
    assert fake_cloud.calls == [("scale_min", "quiet")]
    idle["quiet"].refresh_from_db()
    assert idle["quiet"].instance_count == 1


def test_keep_link_exempts_until_it_expires(
    org, idle, fake_cloud, mailoutbox, django_capture_on_commit_callbacks
):
    make_policy(action="delete")
    (case,) = evaluate_at(NOW, django_capture_on_commit_callbacks).opened
    body = mailoutbox[0].body
    keep_url = body.split("Keep it (you will give a reason and an end date):\n")[1].split()[0]
    link = link_read(keep_url.rstrip("/").rsplit("/", 1)[1])
    assert link.action == "keep"
    with time_machine.travel(NOW + dt.timedelta(hours=2), tick=False):
        link_use(link=link, until=dt.date(2026, 11, 15), reason="Black Friday reserve")
    case.refresh_from_db()
    assert case.status == CaseStatus.KEPT
    exemption = RetirementExemption.objects.get()
    assert (exemption.until, exemption.granted_by) == (dt.date(2026, 11, 15), org.ads.owner)
    # While the exemption lasts, no case; the verdict says why.
    for day in (1, 10, 25):
        usage_days(idle["quiet"], TODAY + dt.timedelta(days=day), 0)
        assert (
            evaluate_at(NOW + dt.timedelta(days=day), django_capture_on_commit_callbacks).opened
            == []
        )
    idle["quiet"].refresh_from_db()
    assert (
        "Kept by its owner until 2026-11-15: Black Friday reserve"
        in idle["quiet"].retirement_verdict["reason"]
    )
    # Once it has expired, the idle endpoint is a candidate again.
    usage_days(idle["quiet"], TODAY + dt.timedelta(days=27), 0)
    assert (
        len(evaluate_at(NOW + dt.timedelta(days=27), django_capture_on_commit_callbacks).opened)
        == 1
    )
    assert fake_cloud.calls == []


def test_reminder_once_before_the_grace_period_ends(
    org, idle, fake_cloud, mailoutbox, django_capture_on_commit_callbacks
):
    make_policy(reminder_days=2)
    evaluate_at(NOW, django_capture_on_commit_callbacks)
    for hours in (24, 5 * 24 + 1, 5 * 24 + 5):
        with (
            time_machine.travel(NOW + dt.timedelta(hours=hours), tick=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            retirement_cases_due()
    reminders = [m for m in mailoutbox if m.subject.startswith("[Capgov] Reminder:")]
    assert len(reminders) == 1
    assert "grace period of this case ends on 2026-10-27" in reminders[0].body


def test_notify_only_policy_changes_nothing(
    org, idle, fake_cloud, django_capture_on_commit_callbacks
):
    make_policy(action="notify")
    evaluate_at(NOW, django_capture_on_commit_callbacks)
    with time_machine.travel(NOW + dt.timedelta(days=8), tick=False):
        retirement_cases_due()
    case = RetirementCase.objects.get()
    assert case.status == CaseStatus.CLOSED
    assert fake_cloud.calls == []
    assert "only notifies" in case.steps.last().text


def test_a_busy_again_endpoint_closes_its_case(
    org, idle, fake_cloud, django_capture_on_commit_callbacks
):
    make_policy()
    (case,) = evaluate_at(NOW, django_capture_on_commit_callbacks).opened
    EndpointUsage.objects.filter(endpoint=idle["quiet"], day=TODAY).delete()
    EndpointUsage.objects.create(endpoint=idle["quiet"], day=TODAY, invocations=900)
    evaluate_at(NOW + dt.timedelta(days=1), django_capture_on_commit_callbacks)
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED
    assert "No longer a candidate: In use" in case.steps.last().text


def test_only_the_unit_decides(org, idle, fake_cloud, django_capture_on_commit_callbacks):
    make_policy()
    (case,) = evaluate_at(NOW, django_capture_on_commit_callbacks).opened
    with pytest.raises(PermissionDeniedError):
        case_keep(case=case, by=org.researcher, until=dt.date(2026, 12, 1), reason="mine")
    with pytest.raises(DomainError, match="Say why"):
        case_keep(case=case, by=org.ads_engineer, until=dt.date(2026, 12, 1), reason=" ")
    with pytest.raises(PermissionDeniedError):
        case_act(case=case, by=org.ads_engineer)
    admin = UserFactory(username="root", roles=[Role.PLATFORM_ADMIN])
    case_act(case=case, by=admin)
    assert fake_cloud.calls == [("scale_min", "quiet")]
