"""Month sums cached under a stamp of what they depend on: the same numbers, read once, and
never stale after an import, a replaced or deleted import, or a rule change."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from costs import selectors, services
from costs.models import Budget, CostRow
from tests.costs.conftest import OCT, import_file
from tests.factories import focus_line

NOV = dt.date(2026, 11, 1)


@pytest.fixture
def cached(settings):
    settings.CAPGOV_COST_CACHE_SECONDS = 900
    cache.clear()
    yield
    cache.clear()


def amounts(user=None, month=OCT) -> dict[str, D]:
    usd = selectors.chargeback_get(user=user, month=month).currencies["USD"]
    return {line.code: line.amount for line in usd.lines}


def cost_queries(read) -> int:
    """Queries that read cost rows (the stamps read only imports, rules and tag sets)."""
    with CaptureQueriesContext(connection) as ctx:
        read()
    return sum('FROM "costs_costrow"' in q["sql"] for q in ctx.captured_queries)


def test_cached_sums_equal_the_live_ones(october, settings, cached):
    months = [OCT]
    live = {}
    settings.CAPGOV_COST_CACHE_SECONDS = 0
    for user in (None, october.researcher):
        live[user] = (
            selectors.chargeback_get(user=user, month=OCT).as_dict(),
            selectors.chargeback_months(user=user),
            selectors.monthly_by_unit(user=user, months=months),
            selectors.chargeback_daily(user=user, month=OCT),
        )
    settings.CAPGOV_COST_CACHE_SECONDS = 900
    for _ in range(2):  # the first fills the cache, the second reads it
        for user in (None, october.researcher):
            assert live[user] == (
                selectors.chargeback_get(user=user, month=OCT).as_dict(),
                selectors.chargeback_months(user=user),
                selectors.monthly_by_unit(user=user, months=months),
                selectors.chargeback_daily(user=user, month=OCT),
            )


def test_the_second_read_does_not_add_up_the_rows_again(october, cached):
    assert cost_queries(lambda: selectors.chargeback_get(user=None, month=OCT)) == 1
    assert cost_queries(lambda: selectors.chargeback_get(user=None, month=OCT)) == 0
    assert cost_queries(lambda: selectors.monthly_by_unit(user=None, months=[OCT])) == 0


def test_an_import_of_the_month_shows_at_once(october, cached, tmp_path):
    assert amounts()["RES"] == D("3.75")
    import_file(
        tmp_path / "october-more.csv",
        [focus_line(cost="5.00", tags={"team": "research"}, account="999988887777")],
    )
    assert amounts()["RES"] == D("8.75")


def test_a_replaced_and_a_deleted_import_show_at_once(october, cached, tmp_path):
    lines = [focus_line(cost="5.00", tags={"team": "research"}, account="999988887777")]
    first = import_file(tmp_path / "a.csv", lines)
    assert amounts()["RES"] == D("8.75")
    lines = [focus_line(cost="7.00", tags={"team": "research"}, account="999988887777")]
    second = import_file(tmp_path / "b.csv", lines)
    assert amounts()["RES"] == D("10.75"), "the re-import replaced the first one's rows"
    services.billing_import_delete(billing_import=second)
    assert not CostRow.objects.filter(billing_import=first).exists()
    assert amounts()["RES"] == D("3.75")


def test_a_rule_change_re_attributes_at_once(october, cached):
    assert amounts()["UNALLOCATED"] == D("2.00")
    services.allocation_rule_save(
        business_unit=october.research, tag_key="team", tag_values=["mystery"], priority=5
    )
    assert amounts()["RES"] == D("5.75")
    assert "UNALLOCATED" not in amounts()


def test_another_months_import_leaves_this_month_cached(october, cached, tmp_path):
    selectors.chargeback_get(user=None, month=OCT)
    import_file(
        tmp_path / "november.csv",
        [focus_line(cost="4.00", tags={"team": "research"}, day="2026-11-03", period="2026-11-01")],
    )
    assert cost_queries(lambda: selectors.chargeback_get(user=None, month=OCT)) == 0
    assert amounts(month=NOV) == {"RES": D("4.00")}
    assert selectors.chargeback_months(user=None) == [NOV, OCT]


def test_a_cache_that_does_not_answer_costs_speed_not_the_page(october, cached, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    for name in ("get", "set", "get_many", "set_many"):
        monkeypatch.setattr(cache, name, down)
    assert amounts() == {"ADS": D("10.01"), "RES": D("3.75"), "UNALLOCATED": D("2.00")}
    assert selectors.monthly_by_unit(user=None, months=[OCT])["USD"]["RES"] == {OCT: D("3.75")}


def test_budget_spend_is_cached_and_follows_imports(october, cached, tmp_path):
    budget = Budget.objects.create(
        name="Research", business_unit=october.research, amount=D(100), currency="USD"
    )
    with time_machine.travel(dt.datetime(2026, 10, 20, tzinfo=dt.UTC), tick=False):
        assert selectors.budget_spend(budgets=[budget], month=OCT)[budget.pk].spend == D("3.75")
        assert cost_queries(lambda: selectors.budget_spend(budgets=[budget], month=OCT)) == 0
        import_file(
            tmp_path / "more.csv",
            [focus_line(cost="1.00", tags={"team": "research"}, account="999988887777")],
        )
        assert selectors.budget_spend(budgets=[budget], month=OCT)[budget.pk].spend == D("4.75")


def test_charts_of_equal_sums_are_built_once(cached):
    built = []
    series = {"RES": {OCT: D("1.00")}}

    def build():
        built.append(1)
        return {"data": []}

    for _ in range(2):
        assert selectors.cost_series_cached("figure", series, build, "USD") == {"data": []}
    selectors.cost_series_cached("figure", {"RES": {OCT: D("2.00")}}, build, "USD")
    assert len(built) == 2


def test_the_cost_row_count_is_cached_and_follows_imports(october, cached, tmp_path):
    rows = selectors.cost_row_list(user=None)
    assert rows.count() == 4
    assert cost_queries(lambda: selectors.cost_row_list(user=None).count()) == 0
    assert selectors.cost_row_list(user=october.researcher).count() == 2
    import_file(
        tmp_path / "more.csv",
        [focus_line(cost="1.00", tags={"team": "research"}, account="999988887777")],
    )
    assert selectors.cost_row_list(user=None).count() == 5
    assert selectors.cost_row_list(user=october.researcher).count() == 3
    assert selectors.cost_row_list(user=None).none().count() == 0


def test_month_totals_and_month_keyed_results_follow_imports(october, cached, tmp_path):
    assert selectors.cost_month_totals(month=OCT) == {"USD": D("15.755")}
    seen = []

    def compute():
        seen.append(1)
        return len(seen)

    assert selectors.cost_months_cached(("thing",), [OCT], compute) == 1
    assert selectors.cost_months_cached(("thing",), [OCT], compute) == 1
    import_file(
        tmp_path / "more.csv",
        [focus_line(cost="1.00", tags={"team": "research"}, account="999988887777")],
    )
    assert selectors.cost_month_totals(month=OCT) == {"USD": D("16.755")}
    assert selectors.cost_months_cached(("thing",), [OCT], compute) == 2


def test_an_import_sums_its_months_into_the_cache_for_the_first_visitor(
    october, cached, tmp_path, django_capture_on_commit_callbacks
):
    Budget.objects.create(
        name="Research", business_unit=october.research, amount=D(100), currency="USD"
    )
    with django_capture_on_commit_callbacks(execute=True):
        import_file(
            tmp_path / "more.csv",
            [focus_line(cost="1.00", tags={"team": "research"}, account="999988887777")],
        )

    def first_visit():
        selectors.chargeback_months(user=None)
        selectors.chargeback_get(user=None, month=OCT)
        selectors.chargeback_daily(user=None, month=OCT)
        budgets = list(selectors.budget_active_list(month=OCT))
        selectors.budget_spend(budgets=budgets, month=OCT)

    assert cost_queries(first_visit) == 0
    assert amounts()["RES"] == D("4.75")


def test_nothing_is_warmed_when_the_sums_are_not_cached(october, settings):
    settings.CAPGOV_COST_CACHE_SECONDS = 0
    assert selectors.cost_cache_warm(months=[OCT]) == 0


def test_warming_keeps_what_is_read_cached_past_its_lifetime(october, cached):
    def first_visit():
        selectors.chargeback_get(user=None, month=OCT)
        selectors.chargeback_daily(user=None, month=OCT)

    with time_machine.travel(dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC), tick=False) as clock:
        assert selectors.cost_cache_warm() == 1  # every month with costs: October
        assert cost_queries(first_visit) == 0
        clock.shift(dt.timedelta(seconds=600))
        assert selectors.cost_cache_warm() == 1  # found, and kept another 900 s
        clock.shift(dt.timedelta(seconds=600))  # 1,200 s after it was summed
        assert cost_queries(first_visit) == 0
        clock.shift(dt.timedelta(seconds=901))  # not warmed for a whole lifetime
        assert cost_queries(first_visit) > 0


def test_a_rule_change_warms_every_month_in_a_worker_once_it_commits(
    october, cached, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.allocation_rule_save(
            business_unit=october.research,
            tag_key="cost-center",
            tag_values=["4410"],
            priority=1,
            by=october.finance,
        )
    assert cost_queries(lambda: selectors.chargeback_get(user=None, month=OCT)) == 0
    assert amounts()["RES"] == D("13.76")


def test_the_schedule_warms_three_times_a_lifetime_in_production_only():
    from governance import settings as defaults

    entry = defaults.CAPGOV_SCHEDULES.get("cost-cache-warm")
    if defaults.CAPGOV_COST_CACHE_SECONDS <= 0:
        assert entry is None
    else:
        assert entry["schedule"] == max(60.0, defaults.CAPGOV_COST_CACHE_SECONDS / 3)
    assert "costs.tasks.cost_cache_warm_task" in defaults.CAPGOV_BULK_TASKS


def test_a_page_reads_the_cost_stamps_once_however_many_sums_it_shows(october, cached, client):
    def stamp_reads(response_of) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert response_of().status_code == 200
        return sum(
            "MAX(updated_at) FROM costs_allocationrule" in q["sql"] for q in ctx.captured_queries
        )

    client.force_login(october.finance)
    client.get("/")  # the sums are cached; what is left to read is the stamps
    assert stamp_reads(lambda: client.get("/")) == 1

    # Outside a read-only request (a task, a write), every read of the sums checks them.
    with CaptureQueriesContext(connection) as ctx:
        selectors.chargeback_get(user=None, month=OCT)
        selectors.chargeback_daily(user=None, month=OCT)
    assert sum("FROM costs_allocationrule" in q["sql"] for q in ctx.captured_queries) == 2


def test_two_months_one_import_stored_are_kept_apart(db, cached, tmp_path):
    import_file(
        tmp_path / "two-months.csv",
        [
            focus_line(cost="1.00", day="2026-10-05", period="2026-10-01"),
            focus_line(cost="2.00", day="2026-11-05", period="2026-11-01"),
        ],
    )
    # One import stored both months, so their stamps are equal: the months tell them apart.
    assert selectors.cost_months_cached(("thing",), [OCT], lambda: "october") == "october"
    assert selectors.cost_months_cached(("thing",), [NOV], lambda: "november") == "november"
    assert selectors.cost_month_totals(month=NOV) == {"USD": D("2.00")}


def test_the_command_warms_every_month_for_the_first_visitor(october, cached):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("cost_cache_warm", stdout=out)
    assert out.getvalue().startswith("Warmed 1 month(s)")
    assert cost_queries(lambda: selectors.chargeback_get(user=None, month=OCT)) == 0


def test_a_starting_worker_queues_a_warm_when_the_cache_is_on(cached, monkeypatch):
    from costs import tasks

    queued = []
    monkeypatch.setattr(tasks, "enqueue", lambda task, *args: queued.append(task.name))
    tasks._recover_on_worker_start()
    assert queued == ["costs.tasks.work_recover_task", "costs.tasks.cost_cache_warm_task"]
