"""Data retention: how long each class of data is kept, what it takes and costs to store,
what is kept past its policy, and pruning it.

Four classes, each with its own policy (:class:`costs.models.RetentionPolicy`):

- **Raw billing detail** — the daily cost rows. Past the policy, a billing month of an import
  (all of whose rows are older than the cutoff) is replaced by monthly aggregates: one row per
  group of every column the statements, exports and explorer read, dated the first day of the
  usage month, costs and quantities summed exactly. Every month's chargeback stays the same to
  the cent; closed months' stored statements are never touched.
- **Benchmark artifacts** — the uploaded result files. Past the policy the file is deleted; the
  parsed points stay, and the benchmark says when and why its file went.
- **Usage metrics** — decided per table (see :data:`USAGE_TABLES`): pool usage is compacted to
  one row per pool, unit and month (the overage surcharge reads monthly sums); forecast points
  of past days are deleted (nothing reads them later: anomalies keep their own figures);
  endpoint usage and SLO measurements are kept and only listed, because their readers need the
  days (days with usage, first and last request; each day's SLO attainment).
- **Audit history** — approval events and votes, decisions, board votes, version transitions,
  retirement steps, incident timelines and the audit log. Never pruned: only listed.

Storage is ``pg_total_relation_size`` on PostgreSQL, SQLite's ``dbstat`` where it is compiled
in, else an estimate from the row count; the page says which. Pruning is off by default; a dry
run computes everything and changes nothing; every run is recorded (:class:`RetentionRun`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache

from django.apps import apps
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, models, transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from costs.budgets import month_of, next_month
from costs.models import (
    BillingImport,
    CostRow,
    DataClass,
    ForecastPoint,
    RetentionPolicy,
    RetentionRun,
)
from costs.services import _COPY_COLUMNS, _lock_slices
from governance.choices import Role
from governance.exceptions import DomainError, PermissionDeniedError
from governance.models import SloMeasurement, User
from registry.models import EfficiencyBenchmark, EndpointUsage, PoolUsage

logger = logging.getLogger(__name__)

DEFAULT_KEEP_DAYS = {
    DataClass.BILLING_DETAIL: 400,
    DataClass.BENCHMARK_ARTIFACTS: 730,
    DataClass.USAGE_METRICS: 400,
    DataClass.AUDIT_HISTORY: 2555,
}
DEFAULT_NOTES = {
    DataClass.BILLING_DETAIL: "Daily cost rows; past the policy a month is kept as monthly "
    "aggregates, so every month's chargeback stays the same to the cent.",
    DataClass.BENCHMARK_ARTIFACTS: "Uploaded benchmark result files; the parsed points are kept.",
    DataClass.USAGE_METRICS: "Pool usage becomes monthly sums, past forecast days are deleted; "
    "endpoint usage and SLO measurements are kept.",
    DataClass.AUDIT_HISTORY: "Seven years. Never pruned by Capgov: listed only.",
}
# PoolUsage rows written in place of a month's daily rows.
MONTHLY_SOURCE = "retention-monthly"
COST_SUMS = ("billed_cost", "effective_cost", "list_cost", "quantity")
# Columns a monthly aggregate of billing detail keeps as they are: every column an import
# stores but its import and month (kept per slice), the usage day (which becomes the month's
# first day) and the summed amounts.
COST_GROUP_COLUMNS = tuple(
    c
    for c in _COPY_COLUMNS
    if c not in {"billing_import_id", "billing_period", "usage_date", *COST_SUMS}
)
GIB = Decimal(1024**3)
COST_PLACES = Decimal("0.0001")


# --- Policies -----------------------------------------------------------------------------------


def retention_policies_ensure() -> dict[str, RetentionPolicy]:
    """Every data class has a policy: the defaults are added where one is missing, and an
    existing policy is never changed (so an edited policy survives every call)."""
    policies = {p.data_class: p for p in RetentionPolicy.objects.all()}
    for data_class, days in DEFAULT_KEEP_DAYS.items():
        if data_class not in policies:
            policies[data_class], _ = RetentionPolicy.objects.get_or_create(
                data_class=data_class,
                defaults={"keep_days": days, "prune": False, "notes": DEFAULT_NOTES[data_class]},
            )
    return {dc: policies[dc] for dc in DEFAULT_KEEP_DAYS}


def _require_platform_admin(by: User | None, action: str) -> None:
    if by is not None and not by.has_role(Role.PLATFORM_ADMIN):
        raise PermissionDeniedError(f"Only platform admins may {action}.")


def retention_policy_update(
    *, policy: RetentionPolicy, by: User | None, keep_days: int, prune: bool, notes: str = ""
) -> RetentionPolicy:
    """Change how long a class is kept and whether the daily task prunes it."""
    _require_platform_admin(by, "change retention policies")
    if keep_days < 1:
        raise DomainError(f"Keep data at least 1 day (got {keep_days}).")
    if prune and policy.data_class == DataClass.AUDIT_HISTORY:
        raise DomainError(
            "Audit history is never pruned: its policy lists what is past it and nothing more."
        )
    policy.keep_days = keep_days
    policy.prune = prune
    policy.notes = notes
    policy.save()
    return policy


def policy_cutoff(policy: RetentionPolicy, today: dt.date) -> dt.date:
    """Data dated before this day is past the policy."""
    return today - dt.timedelta(days=policy.keep_days)


# --- Storage ------------------------------------------------------------------------------------


def storage_price() -> tuple[Decimal, str]:
    return (
        Decimal(settings.CAPGOV_STORAGE_PRICE_PER_GB_MONTH),
        settings.CAPGOV_STORAGE_PRICE_CURRENCY,
    )


def storage_cost(size: int) -> Decimal:
    """What ``size`` bytes cost a month at the configured price per GB (1024³ bytes)."""
    price, _ = storage_price()
    return (Decimal(size) / GIB * price).quantize(COST_PLACES)


_FIELD_BYTES = {
    "AutoField": 4,
    "BigAutoField": 8,
    "BigIntegerField": 8,
    "BooleanField": 1,
    "DateField": 4,
    "DateTimeField": 8,
    "DecimalField": 12,
    "FloatField": 8,
    "ForeignKey": 8,
    "IntegerField": 4,
    "PositiveBigIntegerField": 8,
    "PositiveIntegerField": 4,
    "PositiveSmallIntegerField": 2,
    "SmallIntegerField": 2,
    "OneToOneField": 8,
}
ROW_OVERHEAD_BYTES = 24


def row_bytes_estimate(model: type[models.Model]) -> int:
    """A rough size of one row: fixed-width columns at their width, text at a typical length."""
    size = ROW_OVERHEAD_BYTES
    for f in model._meta.concrete_fields:
        kind = f.get_internal_type()
        if kind in _FIELD_BYTES:
            size += _FIELD_BYTES[kind]
        elif kind == "CharField":
            size += min(f.max_length or 32, 32)
        else:  # text, JSON, files
            size += 64
    return size


@dataclass(frozen=True)
class TableSize:
    bytes: int
    method: str  # "postgresql", "dbstat" or "estimate"


def table_size(model: type[models.Model], rows: int) -> TableSize:
    """The bytes ``model``'s table takes with its indexes (and TOAST on PostgreSQL)."""
    table = model._meta.db_table
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_total_relation_size(%s::regclass)", [table])
            return TableSize(int(cursor.fetchone()[0] or 0), "postgresql")
    if connection.vendor == "sqlite" and _dbstat_available():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN "
                "(SELECT name FROM sqlite_master WHERE tbl_name = %s)",
                [table],
            )
            return TableSize(int(cursor.fetchone()[0] or 0), "dbstat")
    return TableSize(rows * row_bytes_estimate(model), "estimate")


@cache
def _dbstat_available() -> bool:
    """Whether this SQLite has the ``dbstat`` virtual table (a compile-time option)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM dbstat LIMIT 1")
    except DatabaseError:
        return False
    return True


STORAGE_METHODS = {
    "postgresql": "PostgreSQL pg_total_relation_size (table, indexes and TOAST), shared out by "
    "rows",
    "dbstat": "SQLite dbstat (pages of the table and its indexes), shared out by rows",
    "estimate": "an estimate from the row count (this SQLite has no dbstat)",
    "files": "the uploaded files' sizes on disk",
}


# --- What is kept past the policy ------------------------------------------------------------


@dataclass
class TableReport:
    """One table (or the benchmark files) of a data class: size, and what is past the policy."""

    label: str
    rows: int
    bytes: int
    past_rows: int
    past_bytes: int
    oldest: dt.date | None
    handling: str
    method: str
    aggregated_rows: int = 0  # monthly aggregates already kept in place of daily detail

    @property
    def monthly_cost(self) -> Decimal:
        return storage_cost(self.bytes)

    @property
    def past_cost(self) -> Decimal:
        return storage_cost(self.past_bytes)


@dataclass
class ClassReport:
    policy: RetentionPolicy
    cutoff: dt.date
    tables: list[TableReport] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)  # tables looked for and not installed

    @property
    def data_class(self) -> str:
        return self.policy.data_class

    @property
    def prunable(self) -> bool:
        return self.policy.data_class != DataClass.AUDIT_HISTORY

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    @property
    def past_rows(self) -> int:
        return sum(t.past_rows for t in self.tables)

    @property
    def past_bytes(self) -> int:
        return sum(t.past_bytes for t in self.tables)

    @property
    def aggregated_rows(self) -> int:
        return sum(t.aggregated_rows for t in self.tables)

    @property
    def oldest(self) -> dt.date | None:
        days = [t.oldest for t in self.tables if t.oldest]
        return min(days) if days else None

    @property
    def monthly_cost(self) -> Decimal:
        return storage_cost(self.bytes)

    @property
    def past_cost(self) -> Decimal:
        return storage_cost(self.past_bytes)

    @property
    def methods(self) -> list[str]:
        return sorted({t.method for t in self.tables})


def _share(size: int, part: int, whole: int) -> int:
    return size * part // whole if whole else 0


def _as_date(value: dt.date | dt.datetime | None) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date()
    return value


def _table(
    model: type[models.Model],
    *,
    label: str,
    past: Q,
    date_field: str,
    handling: str,
    aggregated: Q | None = None,
) -> TableReport:
    stats = model.objects.aggregate(
        rows=Count("pk"),
        past=Count("pk", filter=past),
        oldest=Min(date_field, filter=past),
        **({"aggregated": Count("pk", filter=aggregated)} if aggregated is not None else {}),
    )
    size = table_size(model, stats["rows"])
    return TableReport(
        label=label,
        rows=stats["rows"],
        bytes=size.bytes,
        past_rows=stats["past"],
        past_bytes=_share(size.bytes, stats["past"], stats["rows"]),
        oldest=_as_date(stats["oldest"]),
        handling=handling,
        method=size.method,
        aggregated_rows=stats.get("aggregated") or 0,
    )


def _compacted_slices() -> set[tuple[int, str]]:
    """(import id, billing period) slices that pruning already turned into monthly aggregates."""
    done = set()
    for months in RetentionRun.objects.filter(
        data_class=DataClass.BILLING_DETAIL, dry_run=False
    ).values_list("months", flat=True):
        for entry in months or []:
            if "billing_import" in entry and "billing_period" in entry:
                done.add((entry["billing_import"], entry["billing_period"]))
    return done


def _billing_slices(cutoff: dt.date) -> list[dict]:
    """Per (import, billing period) with rows before the cutoff: rows, past rows, oldest and
    newest usage day — one grouped query."""
    return list(
        CostRow.objects.values("billing_import_id", "billing_period")
        .annotate(
            rows=Count("pk"),
            past=Count("pk", filter=Q(usage_date__lt=cutoff)),
            oldest=Min("usage_date"),
            newest=Max("usage_date"),
        )
        .filter(past__gt=0)
        .order_by("billing_period", "billing_import_id")
    )


def _billing_report(report: ClassReport) -> None:
    total = CostRow.objects.count()
    size = table_size(CostRow, total)
    compacted = _compacted_slices()
    past = aggregated = 0
    oldest = None
    for s in _billing_slices(report.cutoff):
        if (s["billing_import_id"], f"{s['billing_period']:%Y-%m-%d}") in compacted:
            aggregated += s["rows"]
            continue
        past += s["past"]
        oldest = min(oldest, s["oldest"]) if oldest else s["oldest"]
    report.tables.append(
        TableReport(
            label="Daily cost rows (costs.CostRow)",
            rows=total,
            bytes=size.bytes,
            past_rows=past,
            past_bytes=_share(size.bytes, past, total),
            oldest=oldest,
            handling="compacted to monthly aggregates, month by month, when every row of the "
            "month is past the policy; chargeback unchanged to the cent",
            method=size.method,
            aggregated_rows=aggregated,
        )
    )


def _benchmark_files() -> list[tuple[int, str, int, dt.datetime]]:
    """(benchmark id, file name, bytes, uploaded at) of the raw files still in storage, oldest
    first."""
    files = []
    rows = EfficiencyBenchmark.objects.exclude(raw_file="").order_by("uploaded_at", "pk")
    for pk, name, uploaded in rows.values_list("pk", "raw_file", "uploaded_at"):
        try:
            files.append((pk, name, default_storage.size(name), uploaded))
        except (FileNotFoundError, OSError):
            continue  # already removed (by retention or by hand): nothing left to store
    return files


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _benchmark_report(report: ClassReport) -> None:
    files = _benchmark_files()
    start = _midnight(report.cutoff)
    past = [f for f in files if f[3] < start]
    report.tables.append(
        TableReport(
            label="Uploaded benchmark result files (registry.EfficiencyBenchmark.raw_file)",
            rows=len(files),
            bytes=sum(f[2] for f in files),
            past_rows=len(past),
            past_bytes=sum(f[2] for f in past),
            oldest=_as_date(min((f[3] for f in past), default=None)),
            handling="file deleted; the parsed points and a note on the benchmark are kept",
            method="files",
        )
    )


@dataclass(frozen=True)
class UsageTable:
    model: type[models.Model]
    label: str
    handling: str
    kept_because: str = ""  # set: never pruned, only listed


USAGE_TABLES = (
    UsageTable(
        PoolUsage,
        "GPU-hours per pool and unit a day (registry.PoolUsage)",
        "compacted: one row per pool, unit and month on the month's first day (the overage "
        "surcharge reads monthly sums)",
    ),
    UsageTable(
        ForecastPoint,
        "Forecast points (costs.ForecastPoint)",
        "past days deleted: nothing reads them later (anomalies keep their own figures)",
    ),
    UsageTable(
        EndpointUsage,
        "Endpoint traffic a day (registry.EndpointUsage)",
        "kept, listed only",
        "cost per inference counts its days with usage and retirement reads each endpoint's "
        "first and last day of traffic; a monthly row would change both",
    ),
    UsageTable(
        SloMeasurement,
        "SLO measurements a day (governance.SloMeasurement)",
        "kept, listed only",
        "SLA penalties read each day's attainment, and closed months are recomputed to carry "
        "late data as adjustments; a monthly row would change their penalties",
    ),
)


def _usage_report(report: ClassReport) -> None:
    cutoff = report.cutoff
    for table in USAGE_TABLES:
        aggregated = Q(source=MONTHLY_SOURCE) if table.model is PoolUsage else None
        past = Q(day__lt=cutoff)
        if aggregated is not None:
            past &= ~aggregated
        report.tables.append(
            _table(
                table.model,
                label=table.label,
                past=past,
                date_field="day",
                handling=table.handling
                + (f" — {table.kept_because}" if table.kept_because else ""),
                aggregated=aggregated,
            )
        )


# (app label, model, time field, label): the audit tables, looked up by name so costs imports
# no app above it; a table not installed (yet) is skipped and named on the page.
AUDIT_TABLES = (
    ("governance", "ApprovalEvent", "at", "Approval request events"),
    ("governance", "ApprovalVote", "at", "Approval votes"),
    ("governance", "Decision", "decided_at", "Decisions"),
    ("governance", "BoardVote", "at", "Review board votes"),
    ("registry", "VersionTransition", "at", "Model version transitions"),
    ("registry", "RetirementStep", "at", "Retirement steps"),
    ("incidents", "TimelineEvent", "at", "Incident timeline events"),
    ("governance", "AuditEntry", "timestamp", "Audit log entries"),
    ("auditlog", "LogEntry", "timestamp", "django-auditlog log entries"),
)


def audit_models() -> tuple[list[tuple[type[models.Model], str, str]], list[str]]:
    """The audit tables present: (model, time field, label), and the names of those absent."""
    present, absent = [], []
    tables = set(connection.introspection.table_names())
    for app_label, name, time_field, label in AUDIT_TABLES:
        try:
            model = apps.get_model(app_label, name)
        except LookupError:
            absent.append(f"{app_label}.{name}")
            continue
        if model._meta.db_table not in tables or model._meta.swapped:
            absent.append(f"{app_label}.{name}")
            continue
        present.append((model, time_field, f"{label} ({app_label}.{name})"))
    return present, absent


def _audit_report(report: ClassReport) -> None:
    present, report.absent = audit_models()
    start = _midnight(report.cutoff)
    for model, time_field, label in present:
        report.tables.append(
            _table(
                model,
                label=label,
                past=Q(**{f"{time_field}__lt": start}),
                date_field=time_field,
                handling="never pruned: listed only",
            )
        )


REPORTERS: dict[str, Callable[[ClassReport], None]] = {
    DataClass.BILLING_DETAIL: _billing_report,
    DataClass.BENCHMARK_ARTIFACTS: _benchmark_report,
    DataClass.USAGE_METRICS: _usage_report,
    DataClass.AUDIT_HISTORY: _audit_report,
}


def retention_report(*, today: dt.date | None = None) -> list[ClassReport]:
    """Per data class: its policy and cutoff, the storage each table takes and costs a month,
    and what is kept past the policy (count, oldest, bytes, cost)."""
    today = today or timezone.now().date()
    reports = []
    for data_class, policy in retention_policies_ensure().items():
        report = ClassReport(policy=policy, cutoff=policy_cutoff(policy, today))
        REPORTERS[data_class](report)
        reports.append(report)
    return reports


def retention_run_list() -> models.QuerySet[RetentionRun]:
    return RetentionRun.objects.order_by("-started_at", "-pk")


# --- Pruning ---------------------------------------------------------------------------------


@dataclass
class _Tally:
    rows_before: int = 0
    rows_removed: int = 0
    rows_added: int = 0
    bytes_freed: int = 0
    months: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def skip(self, item: str, reason: str) -> None:
        self.skipped.append({"item": item, "reason": reason})


class _StoppedError(Exception):
    """Pruning stopped at ``item``; what was done before it stays done."""

    def __init__(self, item: str, cause: BaseException) -> None:
        self.item, self.cause = item, cause
        super().__init__(f"stopped at {item}: {cause}")


def _compact_billing_slice(
    *, import_id: int, period: dt.date, cutoff: dt.date, dry_run: bool, today: dt.date, keep: int
) -> tuple[int, int] | str:
    """Replace one import's billing month by monthly aggregates, atomically.

    Returns (rows removed, rows added), or why nothing was done. Re-checked under the same
    lock the importer takes, so a re-import of the month and a concurrent run wait for it.
    """
    with transaction.atomic():
        rows = CostRow.objects.filter(billing_import_id=import_id, billing_period=period)
        sources: dict[str, set[str]] = {}
        for source, account in rows.values_list("source", "billing_account_id").distinct():
            sources.setdefault(source, set()).add(account)
        for source in sorted(sources):
            _lock_slices(
                fmt=source, slices=[(a, f"{period:%Y-%m-%d}") for a in sorted(sources[source])]
            )
        stats = rows.aggregate(
            n=Count("pk"),
            newest=Max("usage_date"),
            off_first=Count("pk", filter=~Q(usage_date__day=1)),
        )
        if not stats["n"]:
            return "its rows were replaced by a later import"
        if stats["newest"] >= cutoff:
            return f"has usage days from {cutoff} on (the latest is {stats['newest']})"
        groups = list(
            rows.annotate(month=TruncMonth("usage_date"))
            .values("month", *COST_GROUP_COLUMNS)
            .annotate(**{f"sum_{c}": Sum(c) for c in COST_SUMS})
            .order_by()
        )
        if len(groups) == stats["n"] and not stats["off_first"]:
            return "already monthly aggregates"
        if dry_run:
            return stats["n"], len(groups)
        rows.delete()
        CostRow.objects.bulk_create(
            [
                CostRow(
                    billing_import_id=import_id,
                    billing_period=period,
                    usage_date=_as_date(group["month"]),
                    **{c: group[c] for c in COST_GROUP_COLUMNS},
                    **{c: group[f"sum_{c}"] for c in COST_SUMS},
                )
                for group in groups
            ],
            batch_size=2000,
        )
        billing_import = BillingImport.objects.select_for_update().get(pk=import_id)
        billing_import.warnings = [
            *billing_import.warnings,
            f"Retention {today}: {period:%Y-%m} is kept as {len(groups):,} monthly aggregate "
            f"rows in place of {stats['n']:,} daily rows (older than {keep} days).",
        ]
        billing_import.save(update_fields=["warnings"])
        return stats["n"], len(groups)


def _prune_billing(
    tally: _Tally, *, policy: RetentionPolicy, cutoff: dt.date, dry_run: bool, today: dt.date
) -> None:
    total = CostRow.objects.count()
    tally.rows_before = total
    per_row = Decimal(table_size(CostRow, total).bytes) / total if total else Decimal(0)
    compacted = _compacted_slices()
    for s in _billing_slices(cutoff):
        period = s["billing_period"]
        item = f"{period:%Y-%m} of import #{s['billing_import_id']}"
        if (s["billing_import_id"], f"{period:%Y-%m-%d}") in compacted:
            continue  # done by an earlier run: nothing to say
        if s["newest"] >= cutoff:
            tally.skip(
                item,
                f"has usage days from {cutoff} on (the latest is {s['newest']}); a month is "
                "compacted only once every row of it is past the policy",
            )
            continue
        try:
            done = _compact_billing_slice(
                import_id=s["billing_import_id"],
                period=period,
                cutoff=cutoff,
                dry_run=dry_run,
                today=today,
                keep=policy.keep_days,
            )
        except Exception as exc:
            raise _StoppedError(item, exc) from exc
        if isinstance(done, str):
            tally.skip(item, done)
            continue
        removed, added = done
        tally.rows_removed += removed
        tally.rows_added += added
        tally.bytes_freed += int(per_row * (removed - added))
        tally.months.append(
            {
                "billing_import": s["billing_import_id"],
                "billing_period": f"{period:%Y-%m-%d}",
                "month": f"{period:%Y-%m}",
                "rows": removed,
                "aggregates": added,
            }
        )


def _compact_pool_month(*, month: dt.date, dry_run: bool) -> tuple[int, int] | str:
    """One month of pool usage as one row per pool and unit, atomically."""
    with transaction.atomic():
        rows = PoolUsage.objects.filter(day__gte=month, day__lt=next_month(month))
        # Lock the month's rows (an upload of the same days waits), then read their sums.
        list(rows.select_for_update().values_list("pk", flat=True))
        groups = list(
            rows.values("pool_id", "business_unit_id")
            .annotate(
                hours=Sum("gpu_hours"),
                n=Count("pk"),
                daily=Count("pk", filter=~Q(day=month) | ~Q(source=MONTHLY_SOURCE)),
            )
            .order_by("pool_id", "business_unit_id")
        )
        todo = [g for g in groups if g["n"] > 1 or g["daily"]]
        if not todo:
            return "already monthly sums"
        removed = sum(g["n"] for g in todo)
        if dry_run:
            return removed, len(todo)
        wanted = Q()
        for g in todo:
            wanted |= Q(pool_id=g["pool_id"], business_unit_id=g["business_unit_id"])
        rows.filter(wanted).delete()
        PoolUsage.objects.bulk_create(
            [
                PoolUsage(
                    pool_id=g["pool_id"],
                    business_unit_id=g["business_unit_id"],
                    day=month,
                    gpu_hours=g["hours"],
                    source=MONTHLY_SOURCE,
                )
                for g in todo
            ]
        )
        return removed, len(todo)


def _prune_usage(
    tally: _Tally, *, policy: RetentionPolicy, cutoff: dt.date, dry_run: bool, today: dt.date
) -> None:
    counts = {t.model: t.model.objects.count() for t in USAGE_TABLES}
    tally.rows_before = sum(counts.values())
    sizes = {model: table_size(model, rows) for model, rows in counts.items()}

    def per_row(model) -> Decimal:
        return Decimal(sizes[model].bytes) / counts[model] if counts[model] else Decimal(0)

    first = month_of(cutoff)
    months = sorted(
        {
            _as_date(m)
            for m in PoolUsage.objects.filter(day__lt=first)
            .annotate(month=TruncMonth("day"))
            .values_list("month", flat=True)
            .distinct()
        }
    )
    for month in months:
        item = f"pool usage {month:%Y-%m}"
        try:
            done = _compact_pool_month(month=month, dry_run=dry_run)
        except Exception as exc:
            raise _StoppedError(item, exc) from exc
        if isinstance(done, str):
            continue  # compacted by an earlier run
        removed, added = done
        tally.rows_removed += removed
        tally.rows_added += added
        tally.bytes_freed += int(per_row(PoolUsage) * (removed - added))
        tally.months.append(
            {
                "table": "registry.PoolUsage",
                "month": f"{month:%Y-%m}",
                "rows": removed,
                "aggregates": added,
            }
        )
    straddling = PoolUsage.objects.filter(day__gte=first, day__lt=cutoff).count()
    if straddling:
        tally.skip(
            f"pool usage {first:%Y-%m}",
            f"{straddling} row(s) before {cutoff}, but the month runs past the cutoff; it is "
            "compacted once all of it is past the policy",
        )

    points = ForecastPoint.objects.filter(day__lt=cutoff)
    count = points.count()
    if count:
        if not dry_run:
            with transaction.atomic():
                count = points.delete()[0]
        tally.rows_removed += count
        tally.bytes_freed += int(per_row(ForecastPoint) * count)
        tally.months.append(
            {"table": "costs.ForecastPoint", "before": f"{cutoff}", "rows": count, "aggregates": 0}
        )
    for table in USAGE_TABLES:
        if table.kept_because:
            past = table.model.objects.filter(day__lt=cutoff).count()
            if past:
                tally.skip(
                    f"{past:,} {table.model._meta.label} row(s) before {cutoff}",
                    f"kept: {table.kept_because}",
                )


def _prune_benchmarks(
    tally: _Tally, *, policy: RetentionPolicy, cutoff: dt.date, dry_run: bool, today: dt.date
) -> None:
    files = _benchmark_files()  # one look at each file's size, for the count and the sizes
    tally.rows_before = len(files)
    start = _midnight(cutoff)
    for pk, name, size, uploaded in (f for f in files if f[3] < start):
        if not dry_run:
            default_storage.delete(name)
            with transaction.atomic():
                benchmark = EfficiencyBenchmark.objects.select_for_update().get(pk=pk)
                note = (
                    f"Raw file removed on {today} by the benchmark-artifacts retention policy "
                    f"(kept {policy.keep_days} days); the parsed points are kept."
                )
                benchmark.warnings = [*benchmark.warnings, note]
                benchmark.save(update_fields=["warnings"])
        tally.rows_removed += 1
        tally.bytes_freed += size
        tally.months.append(
            {
                "benchmark": pk,
                "file": name,
                "bytes": size,
                "uploaded": f"{_as_date(uploaded)}",
            }
        )


def _prune_audit(
    tally: _Tally, *, policy: RetentionPolicy, cutoff: dt.date, dry_run: bool, today: dt.date
) -> None:
    present, absent = audit_models()
    tally.rows_before = sum(model.objects.count() for model, _, _ in present)
    tally.skip("audit history", "never pruned by Capgov: the audit page lists what is past it")
    for name in absent:
        tally.skip(name, "not installed here")


PRUNERS = {
    DataClass.BILLING_DETAIL: _prune_billing,
    DataClass.BENCHMARK_ARTIFACTS: _prune_benchmarks,
    DataClass.USAGE_METRICS: _prune_usage,
    DataClass.AUDIT_HISTORY: _prune_audit,
}


def retention_prune(
    *,
    data_class: str,
    dry_run: bool = False,
    by: User | None = None,
    today: dt.date | None = None,
) -> RetentionRun:
    """Prune one data class past its policy and record the run; a dry run changes nothing.

    Refused (recorded as skipped) when the policy does not allow pruning, unless it is a dry
    run. Each month is its own transaction: a failure stops the run with the month that failed
    unchanged and the months before it done; the run's ``error`` says where and why.
    Re-running is harmless: months already compacted are left alone.
    """
    _require_platform_admin(by, "prune data")
    if data_class not in PRUNERS:
        raise DomainError(
            f"Unknown data class {data_class!r}; choose one of {', '.join(DEFAULT_KEEP_DAYS)}."
        )
    return _prune(policy=retention_policies_ensure()[data_class], dry_run=dry_run, today=today)


def _prune(*, policy: RetentionPolicy, dry_run: bool, today: dt.date | None) -> RetentionRun:
    data_class = policy.data_class
    today = today or timezone.now().date()
    cutoff = policy_cutoff(policy, today)
    run = RetentionRun.objects.create(
        data_class=data_class, cutoff=cutoff, dry_run=dry_run, started_at=timezone.now()
    )
    tally = _Tally()
    if not dry_run and not policy.prune and data_class != DataClass.AUDIT_HISTORY:
        tally.skip(
            policy.get_data_class_display(),
            "pruning is off in its policy; a platform admin turns it on, and a dry run shows "
            "what it would remove",
        )
    else:
        try:
            PRUNERS[data_class](tally, policy=policy, cutoff=cutoff, dry_run=dry_run, today=today)
        except _StoppedError as exc:
            logger.exception("retention prune of %s stopped at %s", data_class, exc.item)
            run.error = (
                f"Stopped at {exc.item}: {exc.cause}. That month is unchanged; the months listed "
                "before it were pruned. Fix the cause and run again."
            )
    run.rows_before = tally.rows_before
    run.rows_removed = tally.rows_removed
    run.rows_added = tally.rows_added
    run.bytes_freed = max(tally.bytes_freed, 0)
    run.months = tally.months
    run.skipped = tally.skipped
    run.finished_at = timezone.now()
    run.save()
    logger.info(
        "retention %s%s: %s removed, %s added",
        data_class,
        " (dry run)" if dry_run else "",
        run.rows_removed,
        run.rows_added,
    )
    return run


def retention_prune_all(
    *,
    dry_run: bool = False,
    classes: Iterable[str] | None = None,
    by: User | None = None,
    enabled_only: bool = False,
    today: dt.date | None = None,
) -> list[RetentionRun]:
    """Prune each class asked for (default: all); ``enabled_only`` (the daily task) skips the
    classes whose policy does not allow pruning, without recording a run for them."""
    _require_platform_admin(by, "prune data")
    policies = retention_policies_ensure()
    wanted = list(classes) if classes else list(policies)
    runs = []
    for data_class in wanted:
        if data_class not in policies:
            raise DomainError(
                f"Unknown data class {data_class!r}; choose one of {', '.join(policies)}."
            )
        if enabled_only and not policies[data_class].prune:
            continue
        runs.append(_prune(policy=policies[data_class], dry_run=dry_run, today=today))
    return runs
