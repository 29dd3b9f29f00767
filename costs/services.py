"""Every write that matters for costs: billing imports, tag sets, allocation rules, budgets."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path

import polars as pl
import yaml
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from costs import allocation, selectors
from costs import budgets as budget_math
from costs.ingest import FORMATS, PreparedImport, prepare
from costs.models import (
    AlertMeasure,
    AllocationRule,
    BillingImport,
    Budget,
    BudgetAlert,
    BudgetBasis,
    CostRow,
    ImportStatus,
    Measure,
    TagSet,
)
from governance.celery import enqueue
from governance.choices import FreezeOrigin
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import BusinessUnit, DeploymentFreeze, User
from governance.money import money_format, money_round
from governance.selectors import freezes_in_force
from governance.services import freeze_start
from governance.uploads import GZIP, PARQUET, TEXT, UploadKind, upload_check

logger = logging.getLogger(__name__)

_COPY_COLUMNS = (
    "billing_import_id",
    "source",
    "provider",
    "billing_account_id",
    "billing_account_name",
    "sub_account_id",
    "sub_account_name",
    "billing_period",
    "usage_date",
    "charge_category",
    "service_name",
    "service_category",
    "resource_id",
    "resource_name",
    "sku_id",
    "region",
    "pricing_unit",
    "tag_set_id",
    "currency",
    "billed_cost",
    "effective_cost",
    "list_cost",
    "quantity",
)
_STORAGE_DECIMAL = pl.Decimal(24, 10)
_COPY_SLICE_ROWS = 50_000


def _require_cost_manager(by: User | None, action: str = "import billing data") -> None:
    if by is not None and not by.manages_costs:
        raise PermissionDeniedError(f"Only finance and platform admins may {action}.")


# --- Billing imports --------------------------------------------------------------------------

# What the billing upload (page and API) takes; the reader tells the formats apart by content.
BILLING_EXPORT = UploadKind(
    label="billing export",
    extensions={
        ".csv": TEXT,
        ".gz": GZIP,
        ".parquet": PARQUET,
        ".jsonl": TEXT,
        ".ndjson": TEXT,
        ".json": TEXT,
    },
    described="CSV, .csv.gz, Parquet or JSON lines (.jsonl, .json, .jsonl.gz)",
    fix="Upload the export file exactly as the cloud wrote it (FOCUS, AWS CUR, GCP BigQuery "
    "or Azure cost export); save a spreadsheet as CSV UTF-8 first.",
    too_large="Import a file this size on the server with `manage.py import_billing`, or ask "
    "the platform team to raise CAPGOV_MAX_UPLOAD_MB.",
)


def billing_import_create(
    *, uploaded_file: UploadedFile, fmt: str = "auto", by: User
) -> BillingImport:
    """Keep an uploaded file and queue its import; the task runs after the commit.

    A file over the size limit or of another type is refused (``UploadRejectedError``, 413 or
    400) before anything of it is stored.
    """
    _require_cost_manager(by)
    if fmt not in FORMATS:
        raise DomainError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    upload_check(
        upload=uploaded_file,
        kind=BILLING_EXPORT,
        max_bytes=settings.CAPGOV_MAX_UPLOAD_MB * 1024 * 1024,
    )
    folder = Path(settings.MEDIA_ROOT) / "imports" / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    safe_name = Path(uploaded_file.name or "upload").name
    target = folder / safe_name
    with target.open("wb") as fh:
        for chunk in uploaded_file.chunks():
            fh.write(chunk)
    billing_import = BillingImport.objects.create(
        requested_format=fmt, file_name=safe_name, file_path=str(target), created_by=by
    )
    transaction.on_commit(partial(_import_send, billing_import.pk))
    return billing_import


# The stage an import shows while its task could not be handed to the broker.
WAITING_FOR_QUEUE = "waiting for the task queue; it starts once the queue is back"


def _import_send(billing_import_id: int) -> bool:
    """Hand a queued import to a worker. With the broker down the upload still succeeds: the
    import stays queued, says so, and ``billing_imports_recover`` sends it once it is back."""
    from costs.tasks import billing_import_run_task

    sent = enqueue(billing_import_run_task, billing_import_id)
    BillingImport.objects.filter(pk=billing_import_id, status=ImportStatus.QUEUED).update(
        stage="" if sent else WAITING_FOR_QUEUE
    )
    return sent


def billing_import(
    *,
    path: Path,
    fmt: str = "auto",
    by: User | None = None,
    display_name: str | None = None,
    also_replaces: Iterable[str] = (),
) -> BillingImport:
    """Import a file now (command line, demo seeding, benchmarks, syncs); returns the record.

    ``also_replaces`` names other formats whose rows for the same accounts and periods this
    import replaces too (a cloud account read one way after another: Cost Explorer, then CUR).
    """
    _require_cost_manager(by)
    billing_import = BillingImport.objects.create(
        requested_format=fmt,
        file_name=display_name or path.name,
        file_path=str(path),
        created_by=by,
    )
    return billing_import_run(billing_import=billing_import, also_replaces=also_replaces)


def _progress(billing_import: BillingImport):
    def report(stage: str, percent: int) -> None:
        billing_import.stage, billing_import.progress = stage, percent
        # Outside the storing transaction, so the upload page sees it while we work.
        BillingImport.objects.filter(pk=billing_import.pk).update(stage=stage, progress=percent)

    return report


def _claim(billing_import: BillingImport, now) -> bool:
    """Move a queued import to running, once: a redelivered task must not run it twice.

    A running import whose worker died is taken over after the task time limit.
    """
    stale = now - dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    claimed = (
        BillingImport.objects.filter(pk=billing_import.pk)
        .filter(
            Q(status=ImportStatus.QUEUED) | Q(status=ImportStatus.RUNNING, started_at__lt=stale)
        )
        .update(status=ImportStatus.RUNNING, started_at=now, error="")
    )
    return claimed == 1


def billing_import_run(
    *, billing_import: BillingImport, also_replaces: Iterable[str] = ()
) -> BillingImport:
    """Parse, aggregate and store one import atomically; record success or the failure.

    A failure leaves the database as it was before the import (bar the import record, which
    says what went wrong), so a bad file never half-replaces a good month.
    """
    started = timezone.now()
    if not _claim(billing_import, started):
        billing_import.refresh_from_db()
        return billing_import
    billing_import.status, billing_import.started_at = ImportStatus.RUNNING, started
    report = _progress(billing_import)
    try:
        prepared = prepare(
            Path(billing_import.file_path),
            fmt=billing_import.requested_format,
            display_name=billing_import.file_name,
            progress=report,
        )
        report("storing", 80)
        with transaction.atomic():
            rows_stored = _store(
                billing_import=billing_import, prepared=prepared, also_replaces=also_replaces
            )
    except DomainError as exc:
        return _finish_failed(billing_import, exc.message)
    except _connection_errors() as exc:
        logger.warning("billing import %s lost the database: %s", billing_import.pk, exc)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _finish_failed(
            billing_import,
            f"{billing_import.file_name}: the database stopped answering while it was imported "
            f"({first_line}). Nothing of this import was stored; import the file again.",
        )
    except Exception as exc:  # the record must say the import failed, whatever the cause
        logger.exception("billing import %s crashed", billing_import.pk)
        return _finish_failed(billing_import, f"{billing_import.file_name}: internal error ({exc})")
    billing_import.refresh_from_db()
    logger.info(
        "billing import %s stored %s rows from %s",
        billing_import.pk,
        rows_stored,
        billing_import.file_name,
    )
    _budgets_evaluate_after_import(billing_import)
    _cost_cache_warm_after_import(billing_import)
    _statistics_refresh(rows_stored)
    return billing_import


# Rows an import stores before PostgreSQL is asked to look at the table again at once.
ANALYZE_AFTER_ROWS = 50_000


def _statistics_refresh(rows_stored: int) -> None:
    """Refresh PostgreSQL's planner statistics after a big import. Until autovacuum's next
    analyze (which waits for a tenth of the table to change, or is off), a new month's rows
    look like none to the planner, and the pages that read that month get plans made for a
    handful of rows: nested loops over millions."""
    if connection.vendor != "postgresql" or rows_stored < ANALYZE_AFTER_ROWS:
        return
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in (CostRow, TagSet))
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {tables}")
    except DatabaseError as exc:  # the import is stored either way; autovacuum catches up
        logger.warning("ANALYZE after billing import not run: %s", exc)


def _cost_cache_warm_after_import(billing_import: BillingImport) -> None:
    """The months the import changed are summed again by a worker once it commits, so the
    first visitor of the dashboard does not wait for it (when the sums are cached at all)."""
    if billing_import.billing_periods:
        _cost_cache_warm_later(list(billing_import.billing_periods))


def _cost_cache_warm_later(months: list[str] | None) -> None:
    """Warm the cost cache (these months; all when None) in a worker once this commits."""
    if settings.CAPGOV_COST_CACHE_SECONDS <= 0:
        return
    from costs.tasks import cost_cache_warm_task

    transaction.on_commit(partial(enqueue, cost_cache_warm_task, months))


def _finish_failed(billing_import: BillingImport, message: str) -> BillingImport:
    def record() -> None:
        BillingImport.objects.filter(pk=billing_import.pk).update(
            status=ImportStatus.FAILED, error=message, finished_at=timezone.now(), stage="failed"
        )
        billing_import.refresh_from_db()

    _write_despite_restart(record)
    return billing_import


def _connection_errors() -> tuple[type[Exception], ...]:
    """What a lost database connection raises, through Django and from a raw cursor (COPY)."""
    driver = connection.Database
    return (OperationalError, InterfaceError, driver.OperationalError, driver.InterfaceError)


# Pauses before trying a small write again while the database restarts (about 30 s in all).
DATABASE_RETRY_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


def _write_despite_restart(write: Callable[[], None]) -> None:
    """Run a small write; when the connection was lost (the server restarted under an import)
    reconnect and try again for a while, so the record still says how the import ended. If
    the database stays away, ``billing_imports_recover`` marks the import failed later."""
    for pause in (*DATABASE_RETRY_PAUSES, None):
        try:
            write()
            return
        except _connection_errors():
            if pause is None or connection.in_atomic_block:
                raise
            connection.close()
            time.sleep(pause)


def billing_imports_recover(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Fail the imports whose worker died (running past ``CAPGOV_ABANDONED_AFTER_SECONDS``; a
    task never runs longer than the task time limit), and send again the imports whose task
    never reached the broker. Returns how many of each; idempotent."""
    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=settings.CAPGOV_ABANDONED_AFTER_SECONDS)
    abandoned = BillingImport.objects.filter(status=ImportStatus.RUNNING, started_at__lt=stale)
    failed = abandoned.update(
        status=ImportStatus.FAILED,
        stage="failed",
        finished_at=now,
        error="Abandoned: the worker stopped while importing this file, so nothing of it was "
        "stored. Import the file again.",
    )
    waiting = BillingImport.objects.filter(status=ImportStatus.QUEUED, stage=WAITING_FOR_QUEUE)
    resent = sum(_import_send(pk) for pk in waiting.order_by("pk").values_list("pk", flat=True))
    if failed or resent:
        logger.warning(
            "imports recovered: %s abandoned marked failed, %s sent again", failed, resent
        )
    return {"imports_abandoned": failed, "imports_resent": resent}


def _lock_slices(*, fmt: str, slices: Iterable[tuple[str, str]]) -> None:
    """Serialise imports of the same (format, account, period) until this one commits.

    Without it, two imports of one month running at once each delete the rows committed
    before them and both insert: the month counts twice. Locks are taken in a fixed order
    so two imports of overlapping slices cannot deadlock.
    """
    if connection.vendor != "postgresql":
        return  # SQLite lets one writer in at a time anyway
    keys = sorted(
        int.from_bytes(
            hashlib.blake2b(f"{fmt}|{a}|{p}".encode(), digest_size=8).digest(), "big", signed=True
        )
        for a, p in slices
    )
    with connection.cursor() as cursor:
        for key in keys:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _store(
    *, billing_import: BillingImport, prepared: PreparedImport, also_replaces: Iterable[str] = ()
) -> int:
    _lock_slices(fmt=prepared.format, slices=prepared.slices)
    tag_ids = tag_sets_ensure(tag_sets=prepared.tag_sets)
    for fmt in (prepared.format, *also_replaces):
        _replace_slices(fmt=fmt, slices=prepared.slices, keep=billing_import.pk)
    frame = prepared.daily.with_columns(
        billing_import_id=pl.lit(billing_import.pk, dtype=pl.Int64),
        source=pl.lit(prepared.format),
        tag_set_id=pl.col("tag_digest").replace_strict(tag_ids, return_dtype=pl.Int64),
        **{
            a: pl.col(a).cast(_STORAGE_DECIMAL)
            for a in ("billed_cost", "effective_cost", "list_cost", "quantity")
        },
    ).select(_COPY_COLUMNS)
    _bulk_insert(frame)
    BillingImport.objects.filter(pk=billing_import.pk).update(
        detected_format=prepared.format,
        status=ImportStatus.SUCCEEDED,
        stage="done",
        progress=100,
        rows_read=prepared.rows_read,
        rows_stored=frame.height,
        billing_periods=prepared.billing_periods,
        billing_accounts=prepared.billing_accounts,
        billed_totals={c: f"{v:f}" for c, v in prepared.billed_totals.items()},
        period_totals={
            p: {c: f"{v:f}" for c, v in totals.items()}
            for p, totals in prepared.period_totals.items()
        },
        warnings=prepared.warnings,
        finished_at=timezone.now(),
    )
    return frame.height


def _replace_slices(*, fmt: str, slices: Iterable[tuple[str, str]], keep: int) -> None:
    """Delete what earlier imports stored for the same (format, account, period) slices,
    and point those imports at the one that replaced them."""
    by_account: dict[str, list[str]] = {}
    for account, period in slices:
        by_account.setdefault(account, []).append(period)
    replaced: set[int] = set()
    for account, periods in by_account.items():
        rows = CostRow.objects.filter(
            billing_period__in=periods, source=fmt, billing_account_id=account
        ).exclude(billing_import_id=keep)
        replaced.update(rows.values_list("billing_import_id", flat=True).distinct())
        rows.delete()  # one DELETE: cost rows have no dependants or signals
    BillingImport.objects.filter(pk__in=replaced).update(superseded_by_id=keep)


def _bulk_insert(frame: pl.DataFrame) -> None:
    if connection.vendor == "postgresql":
        buffer = io.BytesIO()
        frame.write_csv(buffer, include_header=False, null_value="\\N")
        columns = ", ".join(_COPY_COLUMNS)
        sql = f"COPY {CostRow._meta.db_table} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            copy.write(buffer.getbuffer())
        return
    objects = (CostRow(**dict(zip(_COPY_COLUMNS, row, strict=True))) for row in frame.iter_rows())
    CostRow.objects.bulk_create(objects, batch_size=2000)


def billing_import_delete(*, billing_import: BillingImport, by: User | None = None) -> None:
    """Remove an import and the cost rows it still holds.

    The imports it had replaced do not get their rows back; each says so, so nobody takes
    them for current (and the cached month sums, stamped by the imports, are read again).
    """
    _require_cost_manager(by, "delete billing imports")
    with transaction.atomic():
        today = timezone.now().date()
        for older in BillingImport.objects.select_for_update().filter(superseded_by=billing_import):
            older.warnings = [
                *older.warnings,
                f"Import #{billing_import.pk} ({billing_import.file_name}), which replaced this "
                f"import's rows for a period they share, was deleted on {today}; those rows "
                "are not restored. Import this file again to bring them back.",
            ]
            older.save(update_fields=["warnings"])
        CostRow.objects.filter(billing_import=billing_import).delete()
        billing_import.delete()


# --- Tag sets and attribution -------------------------------------------------------------------


def _compiled_rules() -> list[allocation.Rule]:
    return [
        allocation.Rule.build(
            id=r.pk,
            business_unit_id=r.business_unit_id,
            key=r.tag_key,
            values=r.tag_values,
            priority=r.priority,
        )
        for r in AllocationRule.objects.filter(is_active=True)
    ]


def tag_sets_ensure(*, tag_sets: dict[str, dict[str, str]]) -> dict[str, int]:
    """Create the tag sets not seen before, attributed by the current rules; digest -> id."""
    existing = dict(TagSet.objects.filter(digest__in=list(tag_sets)).values_list("digest", "pk"))
    missing = [d for d in tag_sets if d not in existing]
    if missing:
        rules = _compiled_rules()
        new = []
        for digest in missing:
            rule = allocation.allocate(tag_sets[digest], rules)
            new.append(
                TagSet(
                    digest=digest,
                    tags=tag_sets[digest],
                    business_unit_id=rule.business_unit_id if rule else None,
                    rule_id=rule.id if rule else None,
                )
            )
        TagSet.objects.bulk_create(new, batch_size=1000, ignore_conflicts=True)
        existing.update(TagSet.objects.filter(digest__in=missing).values_list("digest", "pk"))
    return existing


def allocation_apply() -> int:
    """Re-attribute every tag set with the current rules; returns how many changed."""
    rules = _compiled_rules()
    changed = []
    for tag_set in TagSet.objects.only("pk", "tags", "business_unit_id", "rule_id"):
        rule = allocation.allocate(tag_set.tags, rules)
        bu_id, rule_id = (rule.business_unit_id, rule.id) if rule else (None, None)
        if (tag_set.business_unit_id, tag_set.rule_id) != (bu_id, rule_id):
            tag_set.business_unit_id, tag_set.rule_id = bu_id, rule_id
            changed.append(tag_set)
    TagSet.objects.bulk_update(changed, ["business_unit_id", "rule_id"], batch_size=1000)
    _cost_cache_warm_later(None)  # the rules are in every month's stamp
    return len(changed)


@transaction.atomic
def allocation_rule_save(
    *,
    rule: AllocationRule | None = None,
    business_unit: BusinessUnit,
    tag_key: str,
    tag_values: list[str],
    priority: int,
    is_active: bool = True,
    description: str = "",
    by: User | None = None,
) -> AllocationRule:
    """Create or change a rule and re-attribute costs with it at once."""
    _require_cost_manager(by, "change allocation rules")
    tag_key = tag_key.strip()
    if not allocation.normalise_key(tag_key):
        raise DomainError("The tag key is empty; give the tag or label key to match, e.g. team.")
    values = sorted({v.strip() for v in tag_values if v.strip()})
    rule = rule or AllocationRule()
    rule.business_unit = business_unit
    rule.tag_key, rule.tag_values, rule.priority = tag_key, values, priority
    rule.is_active, rule.description = is_active, description
    rule.save()
    allocation_apply()
    return rule


@transaction.atomic
def allocation_rule_delete(*, rule: AllocationRule, by: User | None = None) -> None:
    _require_cost_manager(by, "change allocation rules")
    rule.delete()
    allocation_apply()


@dataclass
class RulesLoadResult:
    business_units_created: int
    business_units_updated: int
    rules_created: int
    rules_updated: int
    tag_sets_changed: int


def _yaml_error(file_name: str, where: str, message: str) -> DomainError:
    return DomainError(f"{file_name}: {where}: {message}")


def _upsert(model, keys: dict, values: dict) -> tuple[bool, bool]:
    """(created, updated): an existing row counts as updated only if a value changed."""
    row, created = model.objects.get_or_create(**keys, defaults=values)
    changed = {k: v for k, v in values.items() if getattr(row, k) != v}
    if not created and changed:
        for key, value in changed.items():
            setattr(row, key, value)
        row.save(update_fields=list(changed))
    return created, bool(changed) and not created


@transaction.atomic
def allocation_rules_load(*, text: str, file_name: str = "rules.yaml") -> RulesLoadResult:
    """Load business units and rules from YAML (the shape in the README); all or nothing.

    Business units are matched by code and rules by (business unit, tag, priority), so
    loading the same file twice changes nothing.
    """
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = getattr(exc, "problem", None) or str(exc)
        raise _yaml_error(file_name, where, f"not valid YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise _yaml_error(file_name, "top level", "expected keys business_units and rules")
    unknown = set(data) - {"business_units", "rules"}
    if unknown:
        raise _yaml_error(file_name, "top level", f"unknown key(s) {', '.join(sorted(unknown))}")

    bu_created = bu_updated = 0
    for index, item in enumerate(data.get("business_units") or [], start=1):
        where = f"business_units[{index}]"
        if not isinstance(item, dict) or not item.get("code") or not item.get("name"):
            raise _yaml_error(file_name, where, "needs code and name, e.g. {code: RES, name: X}")
        code = str(item["code"]).strip().upper()
        defaults = {"name": str(item["name"]).strip()}
        if "cost_centre" in item or "cost_center" in item:
            defaults["cost_centre"] = str(item.get("cost_centre", item.get("cost_center")))
        created, updated = _upsert(BusinessUnit, {"code": code}, defaults)
        bu_created += created
        bu_updated += updated

    units = {bu.code: bu for bu in BusinessUnit.objects.all()}
    rules_created = rules_updated = 0
    for index, item in enumerate(data.get("rules") or [], start=1):
        where = f"rules[{index}]"
        if not isinstance(item, dict):
            raise _yaml_error(file_name, where, "each rule is a mapping")
        code = str(item.get("business_unit", "")).strip().upper()
        if code not in units:
            raise _yaml_error(
                file_name, where, f"business unit {code or '(empty)'!r} is not defined"
            )
        tag = str(item.get("tag", "")).strip()
        if not tag:
            raise _yaml_error(file_name, where, "needs a tag key, e.g. tag: team")
        values = item.get("values", [])
        if isinstance(values, str | int):
            values = [values]
        if not isinstance(values, list):
            raise _yaml_error(file_name, where, "values must be a list, e.g. [research]")
        try:
            priority = int(item.get("priority", 100))
        except (TypeError, ValueError) as exc:
            raise _yaml_error(file_name, where, "priority must be a whole number") from exc
        created, updated = _upsert(
            AllocationRule,
            {"business_unit": units[code], "tag_key": tag, "priority": priority},
            {
                "tag_values": sorted({str(v).strip() for v in values if str(v).strip()}),
                "description": str(item.get("description", "")),
                "is_active": bool(item.get("active", True)),
            },
        )
        rules_created += created
        rules_updated += updated
    changed = allocation_apply()
    return RulesLoadResult(bu_created, bu_updated, rules_created, rules_updated, changed)


# --- Budgets ----------------------------------------------------------------------------------

_MAX_BUDGET = Decimal("1e14")


def _month_start(month: dt.date | None) -> dt.date | None:
    return month.replace(day=1) if month else None


def _overlap(a: Budget, first: dt.date | None, last: dt.date | None) -> bool:
    return (a.first_month is None or last is None or a.first_month <= last) and (
        a.last_month is None or first is None or first <= a.last_month
    )


@transaction.atomic
def budget_save(
    *,
    budget: Budget | None = None,
    name: str,
    business_unit: BusinessUnit,
    amount: Decimal,
    currency: str,
    basis: str = BudgetBasis.BILLED,
    tag_key: str = "",
    tag_value: str = "",
    thresholds: Iterable[object] = budget_math.DEFAULT_THRESHOLDS,
    forecast_thresholds: Iterable[object] = budget_math.DEFAULT_THRESHOLDS,
    freeze_at_percent: int | None = 100,
    first_month: dt.date | None = None,
    last_month: dt.date | None = None,
    notify: Iterable[str] = (),
    by: User | None = None,
) -> Budget:
    """Create or change a budget, then evaluate the current month again after the commit.

    Finance and platform admins set budgets; a unit's owner reads theirs.
    Two budgets of one unit, currency and project tag may not cover the same month, so a
    threshold is never mailed twice under two names.
    """
    # A unit's owner reads its budgets but does not set them: the budget is what holds the
    # unit to account, so its owner cannot raise it or switch its freeze off.
    _require_cost_manager(by, "set budgets")
    name = name.strip()
    if not name:
        raise DomainError("Give the budget a name, e.g. Research GPUs.")
    currency = currency.strip().upper()
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
        raise DomainError(f"Currency {currency!r} is not an ISO 4217 code such as USD or EUR.")
    amount = Decimal(amount)
    if not amount.is_finite() or amount <= 0 or amount >= _MAX_BUDGET:
        raise DomainError("The monthly amount must be above zero and below 100 trillion.")
    if money_round(amount, currency) != amount:
        raise DomainError(f"{amount.normalize():f} has more decimals than {currency} has.")
    if basis not in BudgetBasis.values:
        raise DomainError(f"Basis {basis!r} is not one of {', '.join(BudgetBasis.values)}.")
    tag_key, tag_value = tag_key.strip(), tag_value.strip()
    if bool(tag_key) != bool(tag_value):
        raise DomainError("Give both a tag key and a value to narrow to a project, or neither.")
    if tag_key and not allocation.normalise_key(tag_key):
        raise DomainError(f"{tag_key!r} is not a tag key; give one such as project.")
    try:
        actual = budget_math.thresholds_parse(thresholds)
        forecast = budget_math.thresholds_parse(forecast_thresholds)
    except ValueError as exc:
        raise DomainError(f"Thresholds: {exc}.") from exc
    if freeze_at_percent is not None and not 1 <= freeze_at_percent <= budget_math.MAX_THRESHOLD:
        raise DomainError(
            f"The freeze threshold must be from 1 to {budget_math.MAX_THRESHOLD} %, or empty."
        )
    first_month, last_month = _month_start(first_month), _month_start(last_month)
    if first_month and last_month and last_month < first_month:
        raise DomainError("The last month comes before the first month.")
    addresses: list[str] = []
    for address in notify:
        address = address.strip()
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError as exc:
            raise DomainError(f"{address!r} is not an e-mail address.") from exc
        if address.lower() not in {a.lower() for a in addresses}:
            addresses.append(address)

    wanted = (allocation.normalise_key(tag_key), allocation.normalise_value(tag_value))
    siblings = Budget.objects.filter(business_unit=business_unit, currency=currency)
    if budget is not None and budget.pk:
        siblings = siblings.exclude(pk=budget.pk)
    for other in siblings:
        same_tag = (
            allocation.normalise_key(other.tag_key),
            allocation.normalise_value(other.tag_value),
        ) == wanted
        if same_tag and _overlap(other, first_month, last_month):
            raise ConflictError(
                f"Budget {other.name!r} already covers {business_unit.name}"
                f"{' ' + other.tag if other.tag else ''} in {currency} for some of these "
                "months; change its months, or narrow this one to a project tag."
            )

    budget = budget or Budget(created_by=by)
    budget.name, budget.business_unit = name, business_unit
    budget.amount, budget.currency, budget.basis = amount, currency, basis
    budget.tag_key, budget.tag_value = tag_key, tag_value
    budget.thresholds, budget.forecast_thresholds = actual, forecast
    budget.freeze_at_percent = freeze_at_percent
    budget.first_month, budget.last_month = first_month, last_month
    budget.notify = addresses
    budget.save()
    # A new amount or threshold may already be crossed.
    _budgets_evaluate_on_commit(_recent_months())
    return budget


def budget_delete(*, budget: Budget, by: User | None = None) -> None:
    """Remove a budget and its alert history. A freeze it started stays until lifted."""
    _require_cost_manager(by, "delete budgets")
    budget.delete()


@dataclass
class BudgetEvaluation:
    month: dt.date
    budgets: int
    alerts: list[BudgetAlert] = field(default_factory=list)
    freezes: list[DeploymentFreeze] = field(default_factory=list)


def budgets_evaluate(
    *, month: dt.date | None = None, now: dt.datetime | None = None
) -> BudgetEvaluation:
    """Record every budget threshold newly reached in the month, e-mail the owners about
    them after the commit, and freeze the units that reached their enforcement threshold.

    Idempotent: a threshold recorded once for a month is never recorded, mailed or enforced
    again that month, so running this daily and after every import sends nothing twice and
    does not freeze again a unit whose freeze someone lifted. The month defaults to the
    current UTC month.
    """
    now = now or timezone.now()
    month = (month or now.date()).replace(day=1)
    budgets = list(selectors.budget_active_list(month=month))
    spend = selectors.budget_spend(budgets=budgets, month=month)
    recorded: dict[int, set[budget_math.Crossing]] = defaultdict(set)
    enforced: set[int] = set()
    for budget_id, measure, threshold, is_enforcement in BudgetAlert.objects.filter(
        budget__in=budgets, month=month
    ).values_list("budget_id", "measure", "threshold", "is_enforcement"):
        recorded[budget_id].add(budget_math.Crossing(measure, threshold))
        if is_enforcement:
            enforced.add(budget_id)
    result = BudgetEvaluation(month=month, budgets=len(budgets))
    for budget in budgets:
        standing = selectors.budget_standing(budget=budget, month=month, spend=spend[budget.pk])
        new = [c for c in standing.crossings if c not in recorded[budget.pk]]
        # A freeze threshold set after its alert was recorded still applies this month.
        late_enforcement = standing.breached and budget.pk not in enforced
        if not new and not late_enforcement:
            continue
        alerts, freeze = _budget_alerts_record(
            budget=budget,
            standing=standing,
            crossings=new,
            enforced_before=budget.pk in enforced,
            now=now,
        )
        result.alerts += alerts
        if freeze is not None:
            result.freezes.append(freeze)
    return result


@transaction.atomic
def _budget_alerts_record(
    *,
    budget: Budget,
    standing: budget_math.Standing,
    crossings: Sequence[budget_math.Crossing],
    enforced_before: bool,
    now: dt.datetime,
) -> tuple[list[BudgetAlert], DeploymentFreeze | None]:
    created: list[BudgetAlert] = []
    for crossing in crossings:
        # The unique constraint settles a race between two evaluations: one creates, the
        # other finds the row and sends nothing.
        alert, made = BudgetAlert.objects.get_or_create(
            budget=budget,
            month=standing.month,
            measure=crossing.measure,
            threshold=crossing.threshold,
            defaults={
                "is_enforcement": crossing == standing.enforcement,
                "amount": budget.amount,
                "currency": budget.currency,
                "spend": standing.spend,
                "projection": standing.projection,
                "data_until": standing.data_until,
                "created_at": now,
            },
        )
        if made:
            created.append(alert)
    freeze = None
    enforcement = next((a for a in created if a.is_enforcement), None)
    if enforcement is None and standing.breached and not enforced_before:
        enforcement = BudgetAlert.objects.filter(
            budget=budget,
            month=standing.month,
            measure=standing.enforcement.measure,
            threshold=standing.enforcement.threshold,
        ).first()
        if enforcement is not None:
            enforcement.is_enforcement = True
            enforcement.save(update_fields=["is_enforcement"])
    if enforcement is not None and not enforced_before:
        freeze = _budget_freeze(budget=budget, standing=standing)
        if freeze is not None:
            enforcement.freeze = freeze
            enforcement.save(update_fields=["freeze"])
    if created:
        transaction.on_commit(partial(_budget_alerts_send, [a.pk for a in created]))
    return created, freeze


def _budget_alerts_send(alert_ids: list[int]) -> bool:
    """Queue the alert mails; if the broker is down they stay unsent, and
    ``budget_alerts_resend`` queues them once it is back."""
    from costs.tasks import budget_alerts_notify_task

    return enqueue(budget_alerts_notify_task, alert_ids)


# Unsent alerts older than this (their mail task was lost) are queued again, for two days.
ALERT_RESEND_AFTER = dt.timedelta(minutes=2)
ALERT_RESEND_FOR = dt.timedelta(days=2)


def budget_alerts_resend(*, now: dt.datetime | None = None) -> int:
    """Queue again the mails of recent alerts that were never sent and have someone to mail
    (their task never reached the broker, or failed for good); returns how many alerts."""
    now = now or timezone.now()
    unsent = BudgetAlert.objects.filter(
        sent_at=None,
        created_at__lt=now - ALERT_RESEND_AFTER,
        created_at__gte=now - ALERT_RESEND_FOR,
    ).select_related("budget__business_unit__owner")
    ids = [a.pk for a in unsent if _budget_recipients(a.budget)]
    if ids and _budget_alerts_send(ids):
        return len(ids)
    return 0


def _budget_freeze(*, budget: Budget, standing: budget_math.Standing) -> DeploymentFreeze | None:
    """Freeze the unit unless a freeze is already in force (another budget's, or a person's)."""
    unit = BusinessUnit.objects.select_for_update().get(pk=budget.business_unit_id)
    if freezes_in_force(business_unit_ids=[unit.pk]):
        return None
    reason = (
        f"Budget {budget.name}: {standing.whole_percent} % of "
        f"{money_format(budget.amount, budget.currency)} spent in "
        f"{standing.month:%Y-%m}"
    )
    try:
        return freeze_start(business_unit=unit, reason=reason, by=None, origin=FreezeOrigin.BUDGET)
    except ConflictError:
        return None


def _budget_recipients(budget: Budget) -> list[str]:
    owner = budget.business_unit.owner
    out: list[str] = []
    for address in [owner.email if owner and owner.is_active else "", *budget.notify]:
        if address and address.lower() not in {a.lower() for a in out}:
            out.append(address)
    return out


def budget_alert_url(budget: Budget, month: dt.date) -> str:
    """The budget page for a month, absolute, for e-mails."""
    base = settings.CAPGOV_BASE_URL.rstrip("/")
    return f"{base}{budget.get_absolute_url()}?month={month:%Y-%m}"


def budget_alert_headline(budget: Budget, alert: BudgetAlert) -> str:
    """``Research has spent 82 % of its 50,000.00 USD budget for 2026-11 (41,000.00 USD);
    projected month-end 61,000.00 USD``."""
    unit = budget.business_unit.name + (f" ({budget.tag})" if budget.tag else "")
    money = partial(money_format, currency=alert.currency)
    trend = (
        f"projected month-end {money(alert.projection)}"
        if alert.projection is not None
        else "no trend yet"
    )
    return (
        f"{unit} has spent {budget_math.whole_percent(alert.spend, alert.amount)} % of its "
        f"{money(alert.amount)} budget for {alert.month:%Y-%m} ({money(alert.spend)}); {trend}"
    )


def _budget_alert_message(
    budget: Budget, alerts: list[BudgetAlert], recipients: list[str]
) -> EmailMultiAlternatives:
    lead = alerts[0]
    month = lead.month
    enforcement = next((a for a in alerts if a.is_enforcement), None)
    freeze_now = freezes_in_force(business_unit_ids=[budget.business_unit_id]).get(
        budget.business_unit_id
    )
    context = {
        "budget": budget,
        "unit": budget.business_unit,
        "month": month,
        "headline": budget_alert_headline(budget, lead),
        "alerts": sorted(alerts, key=lambda a: (a.measure != AlertMeasure.ACTUAL, a.threshold)),
        "enforcement": enforcement,
        "froze": enforcement.freeze if enforcement else None,
        "freeze_now": freeze_now,
        "days": budget_math.days_elapsed(month=month, data_until=lead.data_until),
        "days_in_month": budget_math.days_in_month(month),
        "url": budget_alert_url(budget, month),
    }
    unit = budget.business_unit.name
    if enforcement and enforcement.freeze:
        subject = f"{unit} is under a deployment freeze: budget {budget.name} reached"
    elif any(a.measure == AlertMeasure.ACTUAL for a in alerts):
        top = max(a.threshold for a in alerts if a.measure == AlertMeasure.ACTUAL)
        subject = f"{unit} has reached {top} % of budget {budget.name} for {month:%Y-%m}"
    else:
        top = max(a.threshold for a in alerts)
        subject = f"{unit} is on course for {top} % of budget {budget.name} for {month:%Y-%m}"
    message = EmailMultiAlternatives(
        subject=f"[Capgov] {subject}",
        body=render_to_string("costs/email/budget_alert.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    message.attach_alternative(
        render_to_string("costs/email/budget_alert.html", context), "text/html"
    )
    return message


def budget_alerts_notify(*, alert_ids: Sequence[int]) -> int:
    """E-mail the owners about these alerts if not done yet: one message per budget, with
    every threshold it reached at once. Returns how many messages were sent.

    The rows stay locked while the message goes out, so a redelivered task waits and then
    finds them sent; a failed send rolls back and the task retries.
    """
    sent = 0
    with transaction.atomic():
        alerts = list(
            BudgetAlert.objects.filter(pk__in=list(alert_ids), sent_at=None)
            .select_related("budget__business_unit__owner", "freeze")
            .select_for_update(of=("self",))
            .order_by("budget_id", "pk")
        )
        by_budget: dict[int, list[BudgetAlert]] = defaultdict(list)
        for alert in alerts:
            by_budget[alert.budget_id].append(alert)
        for group in by_budget.values():
            budget = group[0].budget
            recipients = _budget_recipients(budget)
            if not recipients:
                logger.warning("budget %s alert has no one to e-mail", budget.pk)
                continue
            _budget_alert_message(budget, group, recipients).send()
            BudgetAlert.objects.filter(pk__in=[a.pk for a in group]).update(
                sent_at=timezone.now(), recipients=recipients
            )
            sent += 1
    return sent


def _budgets_evaluate_after_import(billing_import: BillingImport) -> None:
    """New costs may take a unit past a threshold: evaluate the months the import brought.

    Only the current and the previous month: a re-import of an older month corrects history
    and should not e-mail anyone or freeze a unit today. The cost forecasts are refreshed
    first (queued before the budgets), so the month-end projections read the new days.
    """
    months = set(billing_import.billing_periods) & _recent_months()
    if months:
        from costs.tasks import forecasts_refresh_task

        transaction.on_commit(partial(enqueue, forecasts_refresh_task, [Measure.COST]))
    _budgets_evaluate_on_commit(months)


def _recent_months() -> set[str]:
    """This month and last (whose bill usually lands in the first days of this one)."""
    current = budget_math.month_of(timezone.now().date())
    return {f"{current:%Y-%m}", f"{budget_math.previous_month(current):%Y-%m}"}


def _budgets_evaluate_on_commit(months: set[str]) -> None:
    """Check the budgets of these months (``YYYY-MM``) once the transaction commits. With the
    broker down the check is skipped: the daily ``budgets-evaluate`` run catches up."""
    from costs.tasks import budgets_evaluate_task

    for month in sorted(months):
        transaction.on_commit(partial(enqueue, budgets_evaluate_task, month))
