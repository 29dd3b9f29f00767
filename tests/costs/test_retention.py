"""Data retention: pruning raw billing detail past its policy into monthly aggregates keeps
every month's chargeback to the cent, never touches closed statements or the audit history,
and is atomic per month and idempotent; usage metrics and benchmark files; the report."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from functools import partial

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db.models import Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from costs import chargeback, retention, selectors, services
from costs.models import (
    AllocationPolicy,
    BillingImport,
    CapacityQuota,
    ChargebackPeriod,
    CostRow,
    DataClass,
    Forecast,
    ForecastPoint,
    RetentionPolicy,
    RetentionRun,
    SharedPool,
    SlaPenaltyPolicy,
    Statement,
    StatementLine,
)
from costs.tasks import retention_prune_task
from governance.exceptions import PermissionDeniedError
from governance.models import ServiceLevelObjective, SloMeasurement
from registry.models import (
    BenchmarkPoint,
    CapacityPool,
    EfficiencyBenchmark,
    Endpoint,
    EndpointUsage,
    HardwareProfile,
    PoolUsage,
)
from tests.costs.conftest import CHECKOUT, import_file
from tests.costs.test_samples import SAMPLES
from tests.factories import BusinessUnitFactory, UserFactory, focus_line
from tests.registry.conftest import registry, upload  # noqa: F401

SEP, OCT, NOV = dt.date(2026, 9, 1), dt.date(2026, 10, 1), dt.date(2026, 11, 1)
# keep 400 days from here: before 2026-11-05 is past the policy, so September and October are
# wholly past it and November only in part.
TODAY = dt.date(2027, 12, 10)
CUTOFF = dt.date(2026, 11, 5)


# --- Reading what must not change --------------------------------------------------------------


def chargeback_of(month: dt.date) -> dict:
    """Every figure of the month's statements as computed now (draft or not), to the cent."""
    result = chargeback.statements_compute(month)
    assert not result.error, result.error
    return {
        currency: {
            "month_total": cur.month_total,
            "unallocated": cur.unallocated,
            "unallocated_adjustment": cur.unallocated_adjustment,
            "statements": {
                s.unit.code: (s.total, [(line.kind, line.label, line.amount) for line in s.lines])
                for s in cur.statements
            },
        }
        for currency, cur in result.currencies.items()
    }


def explorer_of(month: dt.date) -> dict:
    """The chargeback page's view: each unit's amount per currency, by service and category."""
    result = selectors.chargeback_get(user=None, month=month)
    return {
        currency: {
            line.code: (line.amount, dict(line.by_service), dict(line.by_charge_category))
            for line in cur.lines
        }
        for currency, cur in result.currencies.items()
    }


def stored_statements() -> tuple[list, list, list]:
    return (
        list(ChargebackPeriod.objects.order_by("pk").values()),
        list(Statement.objects.order_by("pk").values()),
        list(StatementLine.objects.order_by("pk").values()),
    )


def audit_rows() -> dict[str, list[dict]]:
    present, _ = retention.audit_models()
    return {
        model._meta.label: list(model.objects.order_by("pk").values()) for model, _, _ in present
    }


def assert_audit_untouched(before: dict[str, list[dict]]) -> None:
    """Every audit row there before is still there, unchanged (pruning may add entries: the
    audit log records the note it leaves on a billing import)."""
    after = audit_rows()
    assert set(after) == set(before)
    for label, rows in before.items():
        kept = {row["id"]: row for row in after[label]}
        assert [kept.get(row["id"]) for row in rows] == rows, label


def exact_sums() -> dict:
    return {
        (row["billing_period"], row["currency"]): (row["b"], row["e"], row["l"], row["q"])
        for row in CostRow.objects.values("billing_period", "currency")
        .annotate(
            b=Sum("billed_cost"), e=Sum("effective_cost"), l=Sum("list_cost"), q=Sum("quantity")
        )
        .order_by()
    }


def allow(data_class: str, keep_days: int = 400) -> RetentionPolicy:
    policy = retention.retention_policies_ensure()[data_class]
    policy.prune = True
    policy.keep_days = keep_days
    policy.save()
    return policy


# --- The seeded example: tags, shared pools, credits, a penalty and a quota --------------------


def _month_lines(period: dt.date, days: list[int]) -> list[dict]:
    lines = []
    for day in days:
        line = partial(focus_line, day=f"{period:%Y-%m}-{day:02d}", period=f"{period:%Y-%m-%d}")
        lines += [
            line(cost=f"{day * 3}.1234567891", tags={"team": "a"}, resource="a-gpu"),
            line(
                cost=f"{day * 2}.3333333333",
                tags={"Team": "A"},
                resource="a-cpu",
                service="Amazon EC2",
            ),
            line(cost=f"{10 + day}.0049999999", tags={"team": "b"}, resource=CHECKOUT),
            line(cost=f"{day}.6666666667", tags={"team": "c"}, resource="c-gpu"),
            line(cost="7.1111111111", tags={"team": "plat"}, resource="control-plane"),
            line(cost="1.0000000001", tags={"team": "nobody"}, resource="orphan"),
            line(cost="-0.7777777777", category="Credit", resource="a-gpu"),
        ]
    return lines


@pytest.fixture(autouse=True)
def _no_lockout_records(settings):
    # django-axes records each sign-in with the client's address; the test client sends none,
    # and PostgreSQL refuses the "unknown" that governance.throttle.client_ip puts in its place.
    settings.AXES_ENABLED = False


@pytest.fixture
def seeded(db, tmp_path):
    """September and October 2026 published and closed, November a draft: units A, B, C and a
    platform team PLAT whose overhead (and Unallocated) is shared; credits that follow the
    usage they correct; B's checkout endpoint missing its availability SLO; C over its quota on
    the H100 pool. Two billing accounts in October."""
    units = {code: BusinessUnitFactory(code=code, name=f"Unit {code}") for code in "ABC"}
    units["PLAT"] = BusinessUnitFactory(code="PLAT", name="Platform")
    for code, unit in units.items():
        services.allocation_rule_save(
            business_unit=unit, tag_key="team", tag_values=[code.lower()], priority=10
        )
    finance = UserFactory(username="fin", roles=["finance"])
    for period, days in ((SEP, [2, 9, 15, 23, 30]), (OCT, [1, 5, 12, 19, 31]), (NOV, range(1, 21))):
        import_file(tmp_path / f"{period:%m}.csv", _month_lines(period, list(days)))
    import_file(
        tmp_path / "oct-other-account.csv",
        [
            focus_line(
                cost=f"{d}.5",
                tags={"team": "c"},
                resource="c-x",
                account="999988887777",
                day=f"2026-10-{d:02d}",
            )
            for d in (3, 4, 20)
        ],
    )
    policy = AllocationPolicy.objects.create(name="FY26", first_month=SEP, basis="billed")
    SharedPool.objects.create(
        policy=policy, name="Platform overhead", source_unit=units["PLAT"], method="proportional"
    )
    SharedPool.objects.create(policy=policy, name="Untagged", method="even")

    Endpoint.objects.create(
        provider="aws",
        account_id="111122223333",
        name="checkout",
        resource_id=CHECKOUT,
        business_unit=units["B"],
    )
    slo = ServiceLevelObjective.objects.create(
        name="checkout-availability",
        service="checkout",
        indicator="availability",
        target=D("99.9"),
        provider=units["PLAT"],
    )
    SlaPenaltyPolicy.objects.create(slo=slo)
    hardware = HardwareProfile.objects.create(name="1 x H100", accelerator="H100")
    pool = CapacityPool.objects.create(
        code="h100",
        name="H100 pool",
        provider="aws",
        hardware_profile=hardware,
        accelerator_count=64,
        owner=units["PLAT"],
    )
    CapacityQuota.objects.create(
        business_unit=units["C"],
        pool=pool,
        first_month=SEP,
        gpu_hours=100,
        unit_price=D("2.00"),
        currency="USD",
        multiplier=D("1.5"),
    )
    day = SEP
    while day < dt.date(2026, 11, 21):
        SloMeasurement.objects.create(slo=slo, day=day, value=D("99.5"), good=1990, total=2000)
        PoolUsage.objects.create(
            pool=pool, business_unit=units["C"], day=day, gpu_hours=D("10.125")
        )
        day += dt.timedelta(days=1)
    for month in (SEP, OCT):
        chargeback.period_publish(month=month, by=finance)
        chargeback.period_close(month=month, by=finance)
    return {"units": units, "finance": finance, "pool": pool}


def test_seeded_example_has_what_the_proof_needs(seeded):
    october = chargeback.statements_compute(OCT)
    c = october.statement("C")
    assert c.subtotal("surcharge") > 0  # over the quota
    assert october.statement("B").subtotal("penalty") < 0  # the SLO missed
    assert october.statement("A").subtotal("credit") < 0  # credits followed a-gpu
    assert october.statement("A").subtotal("shared") > 0  # platform overhead and Untagged
    assert CostRow.objects.filter(billing_period=OCT).count() > 30


def test_pruning_keeps_every_months_chargeback_to_the_cent(seeded):
    months = (SEP, OCT, NOV)
    before = {m: chargeback_of(m) for m in months}
    explorer = {m: explorer_of(m) for m in months}
    stored = stored_statements()
    audit = audit_rows()
    sums = exact_sums()
    november_rows = list(CostRow.objects.filter(billing_period=NOV).order_by("pk").values())
    detail_rows = CostRow.objects.filter(billing_period__in=[SEP, OCT]).count()
    allow(DataClass.BILLING_DETAIL)
    allow(DataClass.USAGE_METRICS)

    runs = retention.retention_prune_all(today=TODAY)

    billing = next(r for r in runs if r.data_class == DataClass.BILLING_DETAIL)
    assert not billing.error
    assert billing.cutoff == CUTOFF
    assert not billing.dry_run
    assert sorted(m["month"] for m in billing.months) == ["2026-09", "2026-10", "2026-10"]
    aggregated = CostRow.objects.filter(billing_period__in=[SEP, OCT]).count()
    assert billing.rows_removed == detail_rows
    assert billing.rows_added == aggregated < detail_rows
    assert billing.bytes_freed > 0
    assert set(
        CostRow.objects.filter(billing_period__in=[SEP, OCT]).values_list("usage_date", flat=True)
    ) == {SEP, OCT}
    assert any("has usage days from 2026-11-05 on" in s["reason"] for s in billing.skipped)

    for month in months:
        assert chargeback_of(month) == before[month], month
        assert explorer_of(month) == explorer[month], month
    assert exact_sums() == sums  # costs and quantities summed exactly
    assert stored_statements() == stored  # closed months' statements untouched
    assert_audit_untouched(audit)  # the audit history untouched
    assert list(CostRow.objects.filter(billing_period=NOV).order_by("pk").values()) == (
        november_rows
    )
    # The draft month carries no adjustment for the closed ones: nothing changed in them.
    november = chargeback.statements_compute(NOV)
    assert not [
        line
        for cur in november.currencies.values()
        for s in cur.statements
        for line in s.lines
        if line.kind == "adjustment"
    ]
    # Pool usage: one row per pool, unit and month for September and October; the surcharges
    # read the same monthly sums.
    usage = next(r for r in runs if r.data_class == DataClass.USAGE_METRICS)
    assert not usage.error
    compacted = PoolUsage.objects.filter(day__lt=NOV)
    assert list(compacted.values_list("day", "gpu_hours", "source").order_by("day")) == [
        (SEP, D("303.750"), retention.MONTHLY_SOURCE),
        (OCT, D("313.875"), retention.MONTHLY_SOURCE),
    ]
    assert PoolUsage.objects.filter(day__gte=NOV).count() == 20
    assert any("runs past the cutoff" in s["reason"] for s in usage.skipped)
    # SLO measurements stay day by day: the penalty reads each day.
    assert SloMeasurement.objects.filter(day__lt=NOV).count() == 61
    assert any("SloMeasurement" in s["item"] for s in usage.skipped)
    note = BillingImport.objects.filter(warnings__icontains="monthly aggregate").first()
    assert note is not None


def test_pruning_again_changes_nothing(seeded):
    allow(DataClass.BILLING_DETAIL)
    allow(DataClass.USAGE_METRICS)
    retention.retention_prune_all(today=TODAY)
    rows = list(CostRow.objects.order_by("pk").values())
    usage = list(PoolUsage.objects.order_by("pk").values())

    again = retention.retention_prune_all(today=TODAY)

    assert [(r.rows_removed, r.rows_added) for r in again] == [(0, 0)] * 4
    assert list(CostRow.objects.order_by("pk").values()) == rows
    assert list(PoolUsage.objects.order_by("pk").values()) == usage


def test_a_failure_mid_month_leaves_that_month_as_it_was(seeded, monkeypatch):
    allow(DataClass.BILLING_DETAIL)
    before = {m: chargeback_of(m) for m in (SEP, OCT)}
    september = list(CostRow.objects.filter(billing_period=SEP).order_by("pk").values())
    october = list(CostRow.objects.filter(billing_period=OCT).order_by("pk").values())
    real = CostRow.objects.bulk_create
    calls = []

    def failing(objects, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # October's first slice: after its daily rows were deleted
            raise RuntimeError("disk full")
        return real(objects, **kwargs)

    monkeypatch.setattr(CostRow.objects, "bulk_create", failing)
    run = retention.retention_prune(data_class=DataClass.BILLING_DETAIL, today=TODAY)

    assert "Stopped at 2026-10 of import" in run.error
    assert "disk full" in run.error
    assert [m["month"] for m in run.months] == ["2026-09"]
    assert list(CostRow.objects.filter(billing_period=OCT).order_by("pk").values()) == october
    assert CostRow.objects.filter(billing_period=SEP).count() < len(september)
    assert {m: chargeback_of(m) for m in (SEP, OCT)} == before
    # Fixed, the next run finishes October and leaves September alone.
    monkeypatch.setattr(CostRow.objects, "bulk_create", real)
    rerun = retention.retention_prune(data_class=DataClass.BILLING_DETAIL, today=TODAY)
    assert not rerun.error
    assert sorted(m["month"] for m in rerun.months) == ["2026-10", "2026-10"]
    assert {m: chargeback_of(m) for m in (SEP, OCT)} == before


def test_dry_run_changes_nothing_and_says_what_it_would_do(seeded):
    rows = list(CostRow.objects.order_by("pk").values())
    run = retention.retention_prune(data_class=DataClass.BILLING_DETAIL, dry_run=True, today=TODAY)
    assert run.dry_run
    assert not run.error
    assert run.rows_removed == CostRow.objects.filter(billing_period__in=[SEP, OCT]).count()
    assert 0 < run.rows_added < run.rows_removed
    assert list(CostRow.objects.order_by("pk").values()) == rows
    # A dry run does not count as done: the report still lists the detail as past policy.
    report = {r.data_class: r for r in retention.retention_report(today=TODAY)}
    assert report[DataClass.BILLING_DETAIL].past_rows > 0


def test_pruning_off_in_the_policy_prunes_nothing(seeded):
    rows = CostRow.objects.count()
    run = retention.retention_prune(data_class=DataClass.BILLING_DETAIL, today=TODAY)
    assert run.rows_removed == 0
    assert "pruning is off in its policy" in run.skipped[0]["reason"]
    assert CostRow.objects.count() == rows
    # The daily task skips it without a run.
    runs_before = RetentionRun.objects.count()
    assert retention_prune_task.delay().get() == 0
    assert RetentionRun.objects.count() == runs_before


def test_audit_history_is_never_pruned(seeded):
    audit = audit_rows()
    assert "governance.Decision" in audit
    policy = retention.retention_policies_ensure()[DataClass.AUDIT_HISTORY]
    policy.keep_days = 1
    policy.save()
    run = retention.retention_prune(data_class=DataClass.AUDIT_HISTORY, today=TODAY)
    assert run.rows_removed == 0
    assert "never pruned" in run.skipped[0]["reason"]
    assert_audit_untouched(audit)
    with pytest.raises(Exception, match="never pruned"):
        retention.retention_policy_update(policy=policy, by=None, keep_days=10, prune=True)


def test_only_platform_admins_prune(seeded):
    with pytest.raises(PermissionDeniedError):
        retention.retention_prune(data_class=DataClass.BILLING_DETAIL, by=seeded["finance"])


def test_report_lists_what_is_past_policy_with_its_storage_and_cost(seeded, settings):
    settings.CAPGOV_STORAGE_PRICE_PER_GB_MONTH = D("1000")
    reports = {r.data_class: r for r in retention.retention_report(today=TODAY)}
    billing = reports[DataClass.BILLING_DETAIL]
    assert billing.cutoff == CUTOFF
    past = CostRow.objects.filter(usage_date__lt=CUTOFF)
    assert billing.past_rows == past.count()
    assert billing.oldest == dt.date(2026, 9, 2)
    assert billing.bytes > 0
    assert 0 < billing.past_bytes < billing.bytes
    assert billing.methods in (["dbstat"], ["estimate"], ["postgresql"])
    assert billing.past_cost == (D(billing.past_bytes) / retention.GIB * 1000).quantize(
        retention.COST_PLACES
    )
    usage = reports[DataClass.USAGE_METRICS]
    pool = next(t for t in usage.tables if "PoolUsage" in t.label)
    assert pool.past_rows == PoolUsage.objects.filter(day__lt=CUTOFF).count()
    audit = reports[DataClass.AUDIT_HISTORY]
    assert not audit.prunable
    assert any("Decision" in t.label for t in audit.tables)

    allow(DataClass.BILLING_DETAIL)
    retention.retention_prune(data_class=DataClass.BILLING_DETAIL, today=TODAY)
    after = {r.data_class: r for r in retention.retention_report(today=TODAY)}
    billing = after[DataClass.BILLING_DETAIL]
    # What is left past policy is November's first days (its month is not wholly past).
    assert (
        billing.past_rows
        == CostRow.objects.filter(billing_period=NOV, usage_date__lt=CUTOFF).count()
    )
    assert billing.aggregated_rows == CostRow.objects.filter(billing_period__in=[SEP, OCT]).count()


def test_policies_are_seeded_once_and_never_overwritten(db):
    policies = retention.retention_policies_ensure()
    assert {k: p.keep_days for k, p in policies.items()} == {
        "billing_detail": 400,
        "benchmark_artifacts": 730,
        "usage_metrics": 400,
        "audit_history": 2555,
    }
    assert not any(p.prune for p in policies.values())
    RetentionPolicy.objects.filter(data_class="billing_detail").update(keep_days=90)
    assert retention.retention_policies_ensure()["billing_detail"].keep_days == 90
    assert RetentionPolicy.objects.count() == 4


def test_forecast_points_of_old_days_are_deleted(seeded):
    forecast = Forecast.objects.create(
        kind="unit",
        business_unit=seeded["units"]["A"],
        measure="cost",
        currency="USD",
        generated_at=timezone.now(),
    )
    for day in (dt.date(2026, 10, 1), dt.date(2026, 11, 4), CUTOFF, dt.date(2027, 12, 1)):
        ForecastPoint.objects.create(forecast=forecast, day=day, expected=1, lower=0, upper=2)
    allow(DataClass.USAGE_METRICS)
    run = retention.retention_prune(data_class=DataClass.USAGE_METRICS, today=TODAY)
    assert sorted(forecast.points.values_list("day", flat=True)) == [CUTOFF, dt.date(2027, 12, 1)]
    assert {"table": "costs.ForecastPoint", "before": "2026-11-05", "rows": 2, "aggregates": 0} in (
        run.months
    )


def test_endpoint_usage_is_kept(seeded):
    endpoint = Endpoint.objects.get(name="checkout")
    EndpointUsage.objects.create(endpoint=endpoint, day=OCT, invocations=10)
    allow(DataClass.USAGE_METRICS)
    run = retention.retention_prune(data_class=DataClass.USAGE_METRICS, today=TODAY)
    assert EndpointUsage.objects.filter(day=OCT).exists()
    assert any(
        "EndpointUsage" in s["item"] and "days with usage" in s["reason"] for s in run.skipped
    )


# --- Benchmark artifacts -------------------------------------------------------------------------


def test_benchmark_files_past_policy_go_and_their_points_stay(registry, client):  # noqa: F811
    old = upload(registry, file_name="old.json")
    new = upload(registry, file_name="new.json")
    EfficiencyBenchmark.objects.filter(pk=old.pk).update(
        uploaded_at=timezone.now() - dt.timedelta(days=800)
    )
    size = default_storage.size(old.raw_file.name)
    allow(DataClass.BENCHMARK_ARTIFACTS, keep_days=730)

    run = retention.retention_prune(data_class=DataClass.BENCHMARK_ARTIFACTS)

    assert run.rows_removed == 1
    assert run.bytes_freed == size
    assert not default_storage.exists(old.raw_file.name)
    assert default_storage.exists(new.raw_file.name)
    old.refresh_from_db()
    assert BenchmarkPoint.objects.filter(benchmark=old).count() == 3
    assert "Raw file removed on" in old.warnings[-1]
    client.force_login(registry.org.researcher)
    page = client.get(f"/registry/benchmarks/{old.pk}/raw/")
    assert page.status_code == 404
    again = retention.retention_prune(data_class=DataClass.BENCHMARK_ARTIFACTS)
    assert again.rows_removed == 0
    old.refresh_from_db()
    assert sum("Raw file removed" in w for w in old.warnings) == 1


# --- The command ---------------------------------------------------------------------------------


def test_command_dry_run_of_one_class(seeded, capsys, time_machine):
    time_machine.move_to(dt.datetime(2027, 12, 10, 6, tzinfo=dt.UTC), tick=False)
    rows = CostRow.objects.count()
    call_command("retention_prune", "--dry-run", "--class", "billing_detail")
    out = capsys.readouterr().out
    assert "Raw billing detail (before 2026-11-05): would remove" in out
    assert CostRow.objects.count() == rows
    assert RetentionRun.objects.get().dry_run


# --- The real billing samples --------------------------------------------------------------------


@pytest.mark.parametrize(("relative", "fmt"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_pruning_the_real_samples_keeps_every_months_chargeback(
    billing_samples, org, relative, fmt
):
    services.allocation_rules_load(
        text="rules:\n"
        "  - {business_unit: RES, tag: application, values: [databricks], priority: 10}\n"
        "  - {business_unit: ADS, tag: environment, values: [prod, dev], priority: 20}\n"
        "  - {business_unit: ADS, tag: costCategory/cost_env, values: [prod], priority: 30}\n"
    )
    result = services.billing_import(path=billing_samples / relative, fmt="auto")
    assert result.status == "succeeded", result.error
    policy = AllocationPolicy.objects.create(name="p", first_month=dt.date(2000, 1, 1))
    SharedPool.objects.create(policy=policy, name="Untagged", method="even").recipients.set(
        [org.research, org.ads]
    )
    months = sorted(set(CostRow.objects.values_list("billing_period", flat=True)))
    before = {m: chargeback_of(m) for m in months}
    explorer = {m: explorer_of(m) for m in months}
    groups = (
        CostRow.objects.annotate(month=TruncMonth("usage_date"))
        .values("billing_import_id", "billing_period", "month", *retention.COST_GROUP_COLUMNS)
        .distinct()
        .count()
    )
    rows = CostRow.objects.count()
    allow(DataClass.BILLING_DETAIL)

    run = retention.retention_prune(data_class=DataClass.BILLING_DETAIL, today=dt.date(2100, 1, 1))

    assert not run.error
    assert run.rows_removed - run.rows_added == rows - CostRow.objects.count()
    assert CostRow.objects.count() == groups  # one row per group and usage month
    for month in months:
        assert chargeback_of(month) == before[month], month
        assert explorer_of(month) == explorer[month], month
    again = retention.retention_prune(
        data_class=DataClass.BILLING_DETAIL, today=dt.date(2100, 1, 1)
    )
    assert (again.rows_removed, again.rows_added, again.months) == (0, 0, [])
