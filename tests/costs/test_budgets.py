"""Budgets: spend against a monthly amount, alerts once per threshold, freezes on a breach."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from costs import budgets, selectors, services
from costs.models import AlertMeasure, Budget, BudgetAlert
from costs.tasks import budget_alerts_notify_task, budgets_evaluate_task
from governance.celery import app as celery_app
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.selectors import freezes_in_force
from governance.services import business_unit_owner_set, freeze_lift, freeze_start
from registry import services as registry_services
from registry.models import HardwareProfile
from tests.factories import Org, focus_line, write_focus

NOV = dt.date(2026, 11, 1)
DEC = dt.date(2026, 12, 1)


# --- Helpers shared with the page and API tests -----------------------------------------------


def bill(folder: Path, lines: list[dict[str, str]], *, name: str = "bill.csv"):
    """Import a billing file; a later file of the same account and month replaces it."""
    path = write_focus(folder / name, lines)
    result = services.billing_import(path=path)
    assert result.status == "succeeded", result.error
    return result


def research(cost: str, day: str = "2026-11-05", **kwargs) -> dict[str, str]:
    tags = kwargs.pop("tags", {"team": "research"})
    period = kwargs.pop("period", day[:8] + "01")
    return focus_line(cost=cost, tags=tags, day=day, period=period, **kwargs)


def ads(cost: str, day: str = "2026-11-05", **kwargs) -> dict[str, str]:
    period = kwargs.pop("period", day[:8] + "01")
    return focus_line(
        cost=cost, tags={"team": "ads"}, day=day, period=period, resource="ads-1", **kwargs
    )


def setup_units(org: Org) -> Org:
    """Rules for both units, and Rhea as Research's owner (she gets the mails)."""
    services.allocation_rule_save(
        business_unit=org.research, tag_key="team", tag_values=["research"], priority=10
    )
    services.allocation_rule_save(
        business_unit=org.ads, tag_key="team", tag_values=["ads"], priority=20
    )
    business_unit_owner_set(business_unit=org.research, owner=org.researcher)
    org.research.refresh_from_db()
    return org


def budget_for(org: Org, **kwargs) -> Budget:
    values = {
        "name": "Research GPUs",
        "business_unit": org.research,
        "amount": Decimal("1000.00"),
        "currency": "USD",
        "by": org.finance,
        **kwargs,
    }
    return services.budget_save(**values)


@pytest.fixture
def units(org):
    return setup_units(org)


@pytest.fixture
def late_november():
    with time_machine.travel(dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC), tick=False):
        yield


@pytest.fixture
def evaluate(django_capture_on_commit_callbacks):
    """Evaluate and run what it queues after the commit (the mails), as a worker would."""

    def run(month: dt.date | None = None):
        with django_capture_on_commit_callbacks(execute=True):
            return services.budgets_evaluate(month=month)

    return run


# --- The arithmetic ---------------------------------------------------------------------------


def test_projection_extends_spend_to_date_over_the_whole_month():
    assert budgets.projection(
        spend=Decimal("41000"), month=NOV, data_until=dt.date(2026, 11, 20)
    ) == Decimal("61500")
    assert budgets.projection(
        spend=Decimal("3.75"), month=dt.date(2026, 10, 1), data_until=dt.date(2026, 10, 6)
    ) == Decimal("19.375")


def test_projection_needs_data_and_stops_at_the_month_end():
    assert budgets.projection(spend=Decimal(5), month=NOV, data_until=None) is None
    assert budgets.projection(spend=Decimal(5), month=NOV, data_until=dt.date(2026, 10, 31)) is None
    late = budgets.projection(spend=Decimal(5), month=NOV, data_until=dt.date(2026, 12, 2))
    assert late == Decimal(5)


def test_thresholds_are_compared_exactly():
    amount = Decimal("50000")
    assert budgets.reached(Decimal("40000"), amount, 80)
    assert not budgets.reached(Decimal("39999.9999999999"), amount, 80)
    assert budgets.whole_percent(Decimal("49999.99"), amount) == 99


def test_standing_counts_the_freeze_threshold_among_actual_thresholds():
    standing = budgets.standing(
        month=NOV,
        amount=Decimal(1000),
        currency="USD",
        spend=Decimal(900),
        data_until=dt.date(2026, 11, 30),
        thresholds=[50, 80],
        forecast_thresholds=[100],
        freeze_at=90,
    )
    assert standing.crossings == (
        budgets.Crossing("actual", 50),
        budgets.Crossing("actual", 80),
        budgets.Crossing("actual", 90),
    )
    assert standing.breached
    assert standing.projection == Decimal(900)


def test_thresholds_parse_explains_a_bad_value():
    assert budgets.thresholds_parse(["100", " 50%", "80", "50", ""]) == [50, 80, 100]
    with pytest.raises(ValueError, match="whole percentage"):
        budgets.thresholds_parse(["eighty"])
    with pytest.raises(ValueError, match="outside"):
        budgets.thresholds_parse([0])


def test_tag_matching_follows_the_allocation_rules():
    assert budgets.tag_matches({"user:Project": " LLM "}, key="project", value="llm")
    assert budgets.tag_matches({"resourceTags/user:project": "llm"}, key="Project", value="LLM")
    assert not budgets.tag_matches({"project": "evals"}, key="project", value="llm")
    assert budgets.tag_matches({}, key="", value="")


def test_cumulative_runs_to_the_last_day_with_data():
    daily = {dt.date(2026, 11, 1): Decimal(2), dt.date(2026, 11, 3): Decimal(5)}
    points = budgets.cumulative(daily, month=NOV, data_until=dt.date(2026, 11, 3))
    assert [v for _, v in points] == [Decimal(2), Decimal(2), Decimal(7)]


# --- Saving budgets ---------------------------------------------------------------------------


def test_budget_save_keeps_a_budget_with_sorted_thresholds(units):
    budget = budget_for(units, thresholds=["100", "50", "80", "80"], notify=["cfo@example.com"])
    assert budget.thresholds == [50, 80, 100]
    assert budget.forecast_thresholds == [50, 80, 100]
    assert budget.freeze_at_percent == 100
    assert budget.notify == ["cfo@example.com"]
    assert budget.created_by == units.finance


def test_only_finance_and_admins_set_budgets_not_the_units_owner(units):
    # The owner could otherwise raise their own budget or switch its freeze off.
    with pytest.raises(PermissionDeniedError, match="Only finance and platform admins"):
        budget_for(units, by=units.researcher)
    with pytest.raises(PermissionDeniedError):
        budget_for(units, name="Mine", by=units.ads_engineer)
    budget_for(units, by=units.admin)


def test_a_freeze_threshold_set_after_its_alert_still_freezes(
    units, tmp_path, late_november, evaluate
):
    from costs.models import Budget
    from governance.selectors import freezes_in_force

    budget = budget_for(units, freeze_at_percent=None)
    bill(tmp_path, [research("1200.00", day="2026-11-30")])
    evaluate()
    assert not freezes_in_force(business_unit_ids=[units.research.pk])
    Budget.objects.filter(pk=budget.pk).update(freeze_at_percent=100)
    evaluate()
    assert freezes_in_force(business_unit_ids=[units.research.pk])


def test_budget_save_refuses_two_budgets_for_the_same_months(units):
    budget_for(units, last_month=dt.date(2026, 11, 1))
    with pytest.raises(ConflictError, match="already covers"):
        budget_for(units, name="Again", first_month=dt.date(2026, 10, 1))
    budget_for(units, name="Next year", first_month=dt.date(2026, 12, 1))
    budget_for(units, name="LLM", tag_key="project", tag_value="llm")
    budget_for(units, name="In euros", currency="EUR")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tag_key": "project"}, "both a tag key and a value"),
        ({"amount": Decimal("0")}, "above zero"),
        ({"amount": Decimal("10.5"), "currency": "JPY"}, "more decimals than JPY"),
        ({"currency": "dollars"}, "ISO 4217"),
        ({"thresholds": ["lots"]}, "whole percentage"),
        ({"freeze_at_percent": 0}, "freeze threshold"),
        ({"first_month": DEC, "last_month": NOV}, "before the first month"),
        ({"notify": ["not an address"]}, "not an e-mail address"),
        ({"name": "  "}, "name"),
    ],
)
def test_budget_save_says_what_is_wrong(units, kwargs, message):
    with pytest.raises(DomainError, match=message):
        budget_for(units, **kwargs)


# --- Spend ------------------------------------------------------------------------------------


def test_budget_spend_counts_the_unit_in_the_budget_currency_only(units, tmp_path):
    bill(
        tmp_path,
        [
            research("600.00"),
            research("1.25", day="2026-11-07"),
            ads("99.00"),
            research("700.00", currency="EUR", account="999988887777", day="2026-11-09"),
        ],
    )
    usd = budget_for(units)
    eur = budget_for(units, name="Research EUR", currency="EUR")
    spend = selectors.budget_spend(budgets=[usd, eur], month=NOV)
    assert spend[usd.pk] == selectors.BudgetSpend(Decimal("601.25"), dt.date(2026, 11, 7))
    assert spend[eur.pk] == selectors.BudgetSpend(Decimal("700.00"), dt.date(2026, 11, 9))


def test_a_tag_narrowed_budget_counts_only_its_tag(units, tmp_path):
    bill(
        tmp_path,
        [
            research("300.00", tags={"team": "research", "project": "llm"}, resource="a"),
            research("200.00", tags={"team": "research", "user:Project": "LLM"}, resource="b"),
            research("400.00", tags={"team": "research", "project": "evals"}, resource="c"),
            research("50.00", resource="d"),
            ads("70.00"),
        ],
    )
    llm = budget_for(units, name="LLM", tag_key="Project", tag_value="llm")
    whole = budget_for(units)
    spend = selectors.budget_spend(budgets=[llm, whole], month=NOV)
    assert spend[llm.pk].spend == Decimal("500.00")
    assert spend[whole.pk].spend == Decimal("950.00")
    assert sum(selectors.budget_daily(budget=llm, month=NOV).values()) == Decimal("500.00")


def test_an_effective_cost_budget_counts_the_effective_cost(units, tmp_path):
    bill(tmp_path, [research("100.00", effective="62.50")])
    billed = budget_for(units)
    effective = budget_for(
        units, name="Effective", basis="effective", tag_key="team", tag_value="research"
    )
    spend = selectors.budget_spend(budgets=[billed, effective], month=NOV)
    assert spend[billed.pk].spend == Decimal("100.00")
    assert spend[effective.pk].spend == Decimal("62.50")


# --- Evaluation, alerts and mails -------------------------------------------------------------


def test_each_threshold_is_mailed_once_a_month(units, tmp_path, late_november, evaluate):
    budget = budget_for(units, forecast_thresholds=[])
    bill(tmp_path, [research("550.00", day="2026-11-30")])
    first = evaluate()
    assert [(a.measure, a.threshold) for a in first.alerts] == [("actual", 50)]
    assert len(mail.outbox) == 1

    assert evaluate().alerts == []
    assert len(mail.outbox) == 1, "a second evaluation sends nothing"

    bill(tmp_path, [research("850.00", day="2026-11-30")])
    evaluate()
    evaluate()
    assert len(mail.outbox) == 2
    assert list(BudgetAlert.objects.filter(budget=budget).values_list("threshold", flat=True)) == [
        80,
        50,
    ]
    message = mail.outbox[1]
    assert message.to == ["rhea@example.com"]
    assert "Research has spent 85 % of its 1,000.00 USD budget for 2026-11 (850.00 USD)" in (
        message.body
    )
    assert freezes_in_force(business_unit_ids=[units.research.pk]) == {}


def test_the_mail_reads_as_the_issue_asks_with_text_html_and_a_link(
    units, tmp_path, evaluate, settings
):
    settings.CAPGOV_BASE_URL = "https://capgov.example.org/"
    budget = budget_for(units, amount=Decimal("50000.00"), notify=["cfo@example.com"])
    bill(tmp_path, [research("41000.00", day="2026-11-20")])
    with time_machine.travel(dt.datetime(2026, 11, 21, 6, tzinfo=dt.UTC), tick=False):
        evaluate()
    assert len(mail.outbox) == 1, "all thresholds reached at once go in one message"
    message = mail.outbox[0]
    assert message.to == ["rhea@example.com", "cfo@example.com"]
    assert (
        message.subject == "[Capgov] Research has reached 80 % of budget Research GPUs for 2026-11"
    )
    headline = (
        "Research has spent 82 % of its 50,000.00 USD budget for 2026-11 (41,000.00 USD); "
        "projected month-end 61,500.00 USD"
    )
    link = f"https://capgov.example.org/costs/budgets/{budget.pk}/?month=2026-11"
    assert headline in message.body
    assert link in message.body
    assert "simple trend: spend to date / 20 days with data x 30 days" in message.body
    assert "plus the unit's cost forecast for the rest of the month" in message.body
    html, mime = message.alternatives[0]
    assert mime == "text/html"
    assert headline in html
    assert f'href="{link}"' in html
    alerts = BudgetAlert.objects.filter(budget=budget)
    assert {(a.measure, a.threshold) for a in alerts} == {
        ("actual", 50),
        ("actual", 80),
        ("forecast", 50),
        ("forecast", 80),
        ("forecast", 100),
    }
    assert all(a.sent_at and a.recipients == message.to for a in alerts)
    assert {a.spend for a in alerts} == {Decimal("41000.00")}
    assert {a.projection for a in alerts} == {Decimal("61500.00")}


def test_the_forecast_alert_fires_before_the_actual_one(units, tmp_path, evaluate):
    budget = budget_for(units)
    bill(tmp_path, [research("410.00", day="2026-11-10")])
    with time_machine.travel(dt.datetime(2026, 11, 11, tzinfo=dt.UTC), tick=False):
        result = evaluate()
    assert [(a.measure, a.threshold) for a in result.alerts] == [
        ("forecast", 50),
        ("forecast", 80),
        ("forecast", 100),
    ]
    assert result.alerts[0].projection == Decimal("1230.00")
    assert result.freezes == []
    assert mail.outbox[0].subject == (
        "[Capgov] Research is on course for 100 % of budget Research GPUs for 2026-11"
    )
    assert not budget.alerts.filter(measure=AlertMeasure.ACTUAL).exists()


def _version(org: Org):
    hardware = HardwareProfile.objects.create(
        name="1 x H100 80GB", accelerator="NVIDIA H100 80GB", accelerator_count=1
    )
    model = registry_services.model_register(
        by=org.researcher,
        name="ranker",
        business_unit=org.research,
        task="ranking",
        source="in-house",
        risk_tier="medium",
    )
    return registry_services.version_create(
        by=org.researcher,
        model=model,
        version="2.1-int8",
        artifact_uri="s3://models/ranker/2.1-int8/",
        framework="PyTorch",
        precision="int8",
        serving_runtime="vLLM 0.8",
        hardware_profile=hardware,
    )


def _freeze_messages(version) -> list[str]:
    return [
        u.message for u in registry_services.deployment_gate(version).unmet if u.code == "freeze"
    ]


def test_a_breach_freezes_the_unit_and_the_gate_refuses_its_deployments(
    units, tmp_path, late_november, evaluate
):
    version = _version(units)
    assert _freeze_messages(version) == []
    budget_for(units)
    bill(tmp_path, [research("1000.00", day="2026-11-30"), ads("5000.00", day="2026-11-30")])
    result = evaluate()
    [freeze] = result.freezes
    assert freeze.reason == "Budget Research GPUs: 100 % of 1,000.00 USD spent in 2026-11"
    assert freeze.created_by is None
    assert freezes_in_force(business_unit_ids=[units.research.pk, units.ads.pk]) == {
        units.research.pk: freeze
    }
    enforcement = BudgetAlert.objects.get(is_enforcement=True)
    assert (enforcement.threshold, enforcement.freeze) == (100, freeze)
    [message] = _freeze_messages(version)
    assert message.startswith("Research is under a deployment freeze since 2026-11-30 12:00 UTC")
    assert message.endswith("Budget Research GPUs: 100 % of 1,000.00 USD spent in 2026-11")
    assert mail.outbox[0].subject == (
        "[Capgov] Research is under a deployment freeze: budget Research GPUs reached"
    )
    assert "Deployments of Research are frozen from now on" in mail.outbox[0].body


def test_a_lifted_freeze_stays_lifted_that_month_and_next_month_starts_fresh(
    units, tmp_path, late_november, evaluate
):
    version = _version(units)
    budget = budget_for(units)
    bill(tmp_path, [research("1000.00", day="2026-11-30")])
    [freeze] = evaluate().freezes
    freeze_lift(freeze=freeze, by=units.admin, reason="Exception approved for the launch.")
    assert _freeze_messages(version) == []

    bill(tmp_path, [research("1300.00", day="2026-11-30")])
    again = evaluate()
    assert again.freezes == []
    assert again.alerts == []
    assert freezes_in_force(business_unit_ids=[units.research.pk]) == {}
    assert _freeze_messages(version) == []
    mails_in_november = len(mail.outbox)

    with time_machine.travel(dt.datetime(2026, 12, 3, 8, tzinfo=dt.UTC), tick=False):
        bill(tmp_path, [research("200.00", day="2026-12-02")], name="december.csv")
        december = evaluate()
        assert {(a.month, a.measure, a.threshold) for a in december.alerts} == {
            (DEC, "forecast", 50),
            (DEC, "forecast", 80),
            (DEC, "forecast", 100),
        }
        assert december.freezes == []
        bill(tmp_path, [research("1000.00", day="2026-12-02")], name="december.csv")
        [december_freeze] = evaluate().freezes
    assert december_freeze.reason == "Budget Research GPUs: 100 % of 1,000.00 USD spent in 2026-12"
    assert len(mail.outbox) == mails_in_november + 2
    assert budget.alerts.filter(month=NOV).count() == 6


def test_a_unit_already_frozen_is_not_frozen_twice(units, tmp_path, late_november, evaluate):
    manual = freeze_start(business_unit=units.research, reason="Incident review", by=units.admin)
    budget_for(units, forecast_thresholds=[])
    bill(tmp_path, [research("1000.00", day="2026-11-30")])
    result = evaluate()
    assert result.freezes == []
    enforcement = BudgetAlert.objects.get(is_enforcement=True)
    assert enforcement.freeze is None
    assert freezes_in_force(business_unit_ids=[units.research.pk]) == {units.research.pk: manual}
    assert "already under a deployment freeze" in mail.outbox[0].body
    assert "Incident review" in mail.outbox[0].body


def test_a_budget_that_never_freezes_only_alerts(units, tmp_path, late_november, evaluate):
    budget_for(units, freeze_at_percent=None)
    bill(tmp_path, [research("2000.00", day="2026-11-30")])
    result = evaluate()
    assert result.freezes == []
    assert len(result.alerts) == 6
    assert not BudgetAlert.objects.filter(is_enforcement=True).exists()


def test_a_budget_outside_its_months_is_not_evaluated(units, tmp_path, late_november, evaluate):
    budget_for(units, first_month=DEC)
    bill(tmp_path, [research("2000.00", day="2026-11-30")])
    assert evaluate().budgets == 0
    assert not BudgetAlert.objects.exists()


def test_an_alert_with_nobody_to_tell_is_kept_unsent(units, tmp_path, late_november, evaluate):
    services.budget_save(
        name="Ads", business_unit=units.ads, amount=Decimal(100), currency="USD", by=units.finance
    )
    bill(tmp_path, [ads("60.00", day="2026-11-30")])
    [alert] = [a for a in evaluate().alerts if a.measure == "actual"]
    alert.refresh_from_db()
    assert alert.sent_at is None
    assert alert.recipients == []
    assert mail.outbox == []


def test_the_notify_task_sends_each_alert_once(units, tmp_path, late_november):
    budget_for(units, forecast_thresholds=[])
    bill(tmp_path, [research("600.00", day="2026-11-30")])
    [alert] = services.budgets_evaluate().alerts  # mails wait for the commit
    assert mail.outbox == []
    assert budget_alerts_notify_task.delay([alert.pk]).get() == 1
    assert budget_alerts_notify_task.delay([alert.pk]).get() == 0
    assert len(mail.outbox) == 1


def test_a_successful_import_evaluates_the_budgets_of_its_month(
    units, tmp_path, late_november, django_capture_on_commit_callbacks
):
    budget_for(units)
    with django_capture_on_commit_callbacks(execute=True):
        bill(tmp_path, [research("900.00", day="2026-11-30")])
    assert BudgetAlert.objects.filter(measure="actual").count() == 2
    assert len(mail.outbox) == 1


def test_an_import_of_an_old_month_evaluates_nothing(
    units, tmp_path, late_november, django_capture_on_commit_callbacks
):
    budget_for(units)
    with django_capture_on_commit_callbacks(execute=True):
        bill(tmp_path, [research("900.00", day="2026-09-30")])
    assert not BudgetAlert.objects.exists()


def test_the_evaluate_task_takes_a_month_and_is_scheduled_daily(units, tmp_path, late_november):
    budget_for(units)
    bill(tmp_path, [research("900.00", day="2026-11-30")])
    assert budgets_evaluate_task.delay("2026-10").get() == 0
    assert budgets_evaluate_task.delay().get() == 4  # 50 and 80 %, actual and forecast
    entry = settings.CAPGOV_SCHEDULES["budgets-evaluate"]
    assert entry["task"] == budgets_evaluate_task.name
    assert entry["task"] in celery_app.tasks


def test_evaluation_reads_spend_in_the_same_queries_however_many_budgets(
    units, tmp_path, late_november
):
    bill(tmp_path, [research("10.00", day="2026-11-30"), ads("10.00", day="2026-11-30")])
    budget_for(units)
    services.budgets_evaluate()  # nothing reached; the next runs only read

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            services.budgets_evaluate()
        return len(ctx)

    few = count()
    for n in range(6):
        budget_for(units, name=f"Project {n}", tag_key="project", tag_value=f"p{n}")
        services.budget_save(
            name=f"Ads {n}",
            business_unit=units.ads,
            amount=Decimal(1000 + n),
            currency=("USD", "EUR")[n % 2],
            basis=("billed", "effective")[n % 2],
            tag_key="env",
            tag_value=f"e{n}",
        )
    # Budgets, spend, tag sets, the forecasts' remaining days (whole-unit billed budgets), alerts.
    assert count() == few == 5


def test_evaluate_budgets_command_reports_what_it_did(units, tmp_path, late_november, capsys):
    from django.core.management import call_command

    budget_for(units)
    bill(tmp_path, [research("1200.00", day="2026-11-30")])
    call_command("evaluate_budgets", "--month", "2026-11")
    out = capsys.readouterr().out
    assert out.startswith("2026-11: 1 budgets,")
    assert "1 units frozen" in out
