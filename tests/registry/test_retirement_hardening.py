"""Regression tests for what an attack on retirement found (each names the finding)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import time_machine

from governance.choices import Role
from registry import extensions
from registry.admin import RetirementPolicyForm
from registry.models import CaseStatus, RetirementCase, RetirementPolicy, RetirementStep
from registry.retirement_services import (
    _restore_evidence,
    case_restore,
    retirement_cases_due,
    retirement_evaluate,
)
from tests.factories import UserFactory
from tests.registry.conftest import NOW, FakeActuator, make_policy


def opened(capture) -> RetirementCase:
    with time_machine.travel(NOW, tick=False), capture(execute=True):
        (case,) = retirement_evaluate().opened
    return case


def due(days: int = 8):
    with time_machine.travel(NOW + dt.timedelta(days=days), tick=False):
        return retirement_cases_due()


class Exploding(FakeActuator):
    def scale_min(self, endpoint, *, min_instances):
        raise KeyError("VariantName")


def test_an_unexpected_actuator_error_is_recorded_not_raised(
    org, idle, monkeypatch, django_capture_on_commit_callbacks
):
    """Finding 2: it escaped as a 500 and rolled the failure record back."""
    monkeypatch.setitem(extensions._actuators, "aws", Exploding)
    make_policy()
    case = opened(django_capture_on_commit_callbacks)
    due()
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN
    assert case.last_error == "KeyError: 'VariantName'"
    assert not case.steps.get(kind="scale_min").succeeded


class Odd(FakeActuator):
    def scale_min(self, endpoint, *, min_instances):
        return {"when": dt.datetime(2026, 10, 1, tzinfo=dt.UTC), "cost": D("1.5")}


def test_an_answer_that_is_not_json_is_stored_as_text(
    org, idle, monkeypatch, django_capture_on_commit_callbacks
):
    """Finding 3."""
    monkeypatch.setitem(extensions._actuators, "aws", Odd)
    make_policy()
    case = opened(django_capture_on_commit_callbacks)
    due()
    case.refresh_from_db()
    assert case.status == CaseStatus.RETIRED
    assert case.steps.get(kind="scale_min").response == {
        "when": "2026-10-01T00:00:00Z",
        "cost": "1.5",
    }


def test_a_switched_off_policy_or_a_keep_tag_added_later_stops_the_action(
    org, idle, fake_cloud, django_capture_on_commit_callbacks
):
    """Finding 4 (a, b)."""
    policy = make_policy()
    case = opened(django_capture_on_commit_callbacks)
    endpoint = idle["quiet"]
    endpoint.tags = {**endpoint.tags, "capgov:keep": "true"}
    endpoint.save()
    due()
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED
    assert "it is now tagged capgov:keep=true" in case.steps.last().text
    assert fake_cloud.calls == []
    assert policy.cases.count() == 1


def test_a_case_is_closed_when_its_own_policy_no_longer_flags_it(
    org, idle, fake_cloud, django_capture_on_commit_callbacks
):
    """Finding 4 (c): idle under another policy is not enough."""
    strict = make_policy(name="Strict", min_monthly_cost=D("100"))
    case = opened(django_capture_on_commit_callbacks)
    assert case.policy == strict
    make_policy(name="A notify", action="notify", min_monthly_cost=D("1"))
    strict.min_monthly_cost = D("100000")
    strict.save()
    with time_machine.travel(NOW + dt.timedelta(hours=1), tick=False):
        retirement_evaluate()
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED
    assert "No longer a candidate" in case.steps.last().text


def test_restore_merges_what_partial_attempts_kept(
    org, idle, fake_cloud, django_capture_on_commit_callbacks
):
    """Finding 1: a retry after a partial undeploy only saw what was still deployed."""
    make_policy()
    case = opened(django_capture_on_commit_callbacks)
    first = {"kept": {"deployedModels": [{"id": "222"}], "trafficSplit": {"111": 80, "222": 20}}}
    second = {"kept": {"deployedModels": [{"id": "111"}], "trafficSplit": {"111": 100}}}
    for at, succeeded, response in ((1, False, first), (2, True, second)):
        RetirementStep.objects.create(
            case=case,
            kind="delete",
            at=NOW + dt.timedelta(hours=at),
            succeeded=succeeded,
            response=response,
        )
    evidence = _restore_evidence(case)
    assert [m["id"] for m in evidence["kept"]["deployedModels"]] == ["111", "222"]
    assert evidence["kept"]["trafficSplit"] == {"111": 80, "222": 20}


class RestoreFails(FakeActuator):
    def restore(self, endpoint, *, evidence):
        raise extensions.ActuatorError("SageMaker CreateEndpoint failed: ResourceLimitExceeded")


def test_a_failed_restore_says_so(
    org, idle, fake_cloud, monkeypatch, client, django_capture_on_commit_callbacks
):
    """Finding 10."""
    from tests.factories import PASSWORD

    make_policy()
    case = opened(django_capture_on_commit_callbacks)
    due()
    monkeypatch.setitem(extensions._actuators, "aws", RestoreFails)
    admin = UserFactory(username="root", roles=[Role.PLATFORM_ADMIN])
    assert case_restore(case=case, by=admin).status == CaseStatus.RETIRED
    client.login(username="root", password=PASSWORD)
    page = client.post(
        f"/registry/retirement/cases/{case.pk}/restore/", follow=True
    ).content.decode()
    assert "Restoring quiet failed: SageMaker CreateEndpoint failed: ResourceLimitExceeded" in page


def test_one_case_that_was_decided_meanwhile_does_not_stop_the_run(
    org, idle, fake_cloud, django_capture_on_commit_callbacks
):
    """Finding 8."""
    make_policy()
    case = opened(django_capture_on_commit_callbacks)
    RetirementCase.objects.filter(pk=case.pk).update(status=CaseStatus.KEPT)
    assert due().acted == []


def test_policy_admin_form_checks_the_filters(db):
    """Finding 6."""
    form = RetirementPolicyForm(
        data={
            "name": "Bad",
            "window_days": 14,
            "max_daily_invocations": 0,
            "min_monthly_cost": "-5",
            "currency": "usd",
            "grace_days": 7,
            "reminder_days": 9,
            "action": "scale_min",
            "min_instances": 0,
            "exempt_tag_key": "capgov:keep",
            "exempt_tag_value": "true",
            "providers": '"aws"',
            "environments": "[1]",
            "tags": '["team"]',
        }
    )
    assert not form.is_valid()
    assert set(form.errors) >= {
        "providers",
        "environments",
        "tags",
        "min_monthly_cost",
        "max_daily_invocations",
        "min_instances",
        "reminder_days",
    }
    assert RetirementPolicy.objects.count() == 0
