"""Cloud syncs: queue a run, execute it once at a time per account and kind, record how it
ended. The provider adapters (``costs/sync_aws.py``, ``costs/sync_gcp.py``) register what they
can read in ``SYNCS``; each returns the rows it wrote and goes through the same import and
upsert services as files and pages do, so a re-run replaces, never adds.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from costs.models import CloudAccount, SyncKind, SyncRun, SyncStatus
from governance.celery import enqueue
from governance.choices import Role
from governance.exceptions import ConflictError, DomainError, PermissionDeniedError
from governance.models import User

log = logging.getLogger(__name__)


class SyncError(Exception):
    """A run that cannot succeed as asked (bad configuration, access denied, missing data).

    The message is shown on the run as is: say what failed and how to fix it.
    """


class SyncRetryableError(SyncError):
    """Throttled or the service is unwell after the SDK's own retries: try the run later."""


@dataclass
class SyncResult:
    rows: int
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncWindow:
    """The days a run covers, half-open [start, end) in UTC."""

    start: dt.date
    end: dt.date


Adapter = Callable[..., SyncResult]  # (*, account, window, run) -> SyncResult
SYNCS: dict[tuple[str, str], Adapter] = {}


def adapters() -> dict[tuple[str, str], Adapter]:
    """The registered syncs. The provider modules (and their SDKs) load on first use, not
    when every web process starts."""
    from costs import sync_aws, sync_gcp  # noqa: F401 - importing them registers the syncs

    return SYNCS


def sync_register(provider: str, kind: str) -> Callable[[Adapter], Adapter]:
    def decorate(adapter: Adapter) -> Adapter:
        SYNCS[(provider, kind)] = adapter
        return adapter

    return decorate


# What a run covers when nobody says: costs re-read this month and last (late charges);
# usage the last 14 days; the rest needs no window.
MAX_WINDOW_DAYS = 400
# A queued run nobody picked up within this long lost its message (a broker restart).
QUEUED_TIMEOUT = dt.timedelta(hours=2)
DEFAULT_DAYS = {SyncKind.COSTS: None, SyncKind.CUR: None, SyncKind.ENDPOINTS: 14}

_SECRETS = [
    # Whole PEM blocks first, before a "private_key:" rule can split them.
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        "[redacted private key]",
    ),
    (re.compile(r"(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"), "[redacted key id]"),
    (re.compile(r"ya29\.[A-Za-z0-9_\-.]+"), "[redacted token]"),
    (re.compile(r"(?i)\b(Bearer)\s+[A-Za-z0-9_\-.=/+]+"), r"\1 [redacted]"),
    (
        re.compile(r"(?i)<(SecretAccessKey|SessionToken|AccessKeyId)>[^<]*</\1>"),
        r"<\1>[redacted]</\1>",
    ),
    (
        re.compile(
            r"(?i)([\"']?(?:SecretAccessKey|SessionToken|private_key|client_secret)[\"']?\s*[:=]\s*)"
            r"(\"[^\"]*\"|'[^']*')"
        ),
        r"\1[redacted]",
    ),
    (re.compile(r"(?i)(https?://)[^/\s:@]+:[^/\s@]+@"), r"\1[redacted]@"),
    (re.compile(r"(?i)\b(sig|X-Goog-Api-Key|key)=[^&\s]+"), r"\1=[redacted]"),
    (
        re.compile(r"(?i)(password|passwd|secret)(\s*[:=]\s*)(\"[^\"]*\"|'[^']*')"),
        r"\1\2[redacted]",
    ),
    (
        re.compile(
            r"(?i)(aws_secret_access_key|secret|token|password|private_key)(['\"]?\s*[:=]\s*)\S+"
        ),
        r"\1\2[redacted]",
    ),
    (
        re.compile(
            r"(?i)(X-Amz-Security-Token|X-Amz-Signature|X-Amz-Credential|Signature|Credential)=[^&\s]+"
        ),
        r"\1=[redacted]",
    ),
]


def scrub(text: str) -> str:
    """Remove anything that looks like a credential from text we store or log."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text[:4000]


def scrub_detail(value: Any) -> Any:
    """``scrub`` over every string inside a run's detail."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_detail(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_detail(v) for v in value]
    return value


def default_window(kind: str, today: dt.date) -> SyncWindow | None:
    if kind in (SyncKind.COSTS, SyncKind.CUR):
        first = today.replace(day=1)
        previous = (first - dt.timedelta(days=1)).replace(day=1)
        return SyncWindow(previous, today + dt.timedelta(days=1))
    if kind == SyncKind.ENDPOINTS:
        return SyncWindow(today - dt.timedelta(days=DEFAULT_DAYS[kind]), today)
    return None


def sync_run_create(
    *,
    account: CloudAccount,
    kind: str,
    by: User | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> SyncRun:
    """Queue a run (``by`` None = the schedule); it executes through a Celery task."""
    if by is not None and not by.has_role(Role.PLATFORM_ADMIN):
        raise PermissionDeniedError("Only platform admins start cloud syncs.")
    if (account.provider, kind) not in adapters():
        raise DomainError(f"{account.get_provider_display()} accounts have no {kind!r} sync.")
    if not account.is_active:
        raise ConflictError(f"{account.name} is switched off; switch it on to sync it.")
    if kind in (SyncKind.COSTS, SyncKind.CUR) and not _reads_costs(account, kind):
        raise ConflictError(
            f"{account.name} reads its costs from {account.get_cost_source_display()}: a "
            f"{SyncKind(kind).label.lower()} sync would count them twice. Change the account's "
            "cost source first."
        )
    if (start is None) != (end is None) or (start and end and start >= end):
        raise DomainError("Give the period as a start day before an end day (or neither).")
    if start and end and (end - start).days > MAX_WINDOW_DAYS:
        raise DomainError(
            f"A run covers at most {MAX_WINDOW_DAYS} days; split a longer period into runs."
        )
    if start is None:
        window = default_window(kind, timezone.now().date())
        start, end = (window.start, window.end) if window else (None, None)
    run = SyncRun.objects.create(
        account=account, kind=kind, period_start=start, period_end=end, requested_by=by
    )
    transaction.on_commit(partial(_run_send, run.pk))
    return run


# What a queued run says while its task could not be handed to the broker.
WAITING_FOR_QUEUE = "Waiting for the task queue (unreachable); the run starts once it is back."


def _run_send(run_id: int) -> bool:
    """Hand a queued run to a worker; with the broker down the run stays queued and says so,
    and ``sync_runs_recover`` sends it once the broker is back."""
    from costs.tasks import sync_run_task  # the task module imports this one

    sent = enqueue(sync_run_task, run_id)
    queued = SyncRun.objects.filter(pk=run_id, status=SyncStatus.QUEUED)
    if sent:
        queued.filter(error=WAITING_FOR_QUEUE).update(error="")
    else:
        queued.update(error=WAITING_FOR_QUEUE)
    return sent


def _abandoned_before(now: dt.datetime) -> dt.datetime:
    """A run still "running" that started before this has lost its worker: no task runs past
    the task time limit, and ``CAPGOV_ABANDONED_AFTER_SECONDS`` is longer than that."""
    return now - dt.timedelta(seconds=settings.CAPGOV_ABANDONED_AFTER_SECONDS)


ABANDONED = "Abandoned: the worker stopped before the run finished; the next run redoes it."


def sync_runs_recover(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Fail the runs of every account whose worker died, and send again the queued runs whose
    task never reached the broker. Returns how many of each; idempotent."""
    now = now or timezone.now()
    failed = 0
    for run in SyncRun.objects.filter(
        status=SyncStatus.RUNNING, started_at__lt=_abandoned_before(now)
    ):
        _finish(run, SyncStatus.FAILED, error=ABANDONED)
        failed += 1
    waiting = SyncRun.objects.filter(status=SyncStatus.QUEUED, error=WAITING_FOR_QUEUE)
    resent = sum(_run_send(pk) for pk in waiting.order_by("pk").values_list("pk", flat=True))
    return {"syncs_abandoned": failed, "syncs_resent": resent}


def _abandoned_release(run: SyncRun) -> None:
    """Free the account and kind of runs that will never finish: "running" past the task
    time limit (the worker died) or "queued" for hours (the broker lost the message)."""
    now = timezone.now()
    runs = SyncRun.objects.filter(account_id=run.account_id, kind=run.kind).exclude(pk=run.pk)
    for abandoned in runs.filter(status=SyncStatus.RUNNING, started_at__lt=_abandoned_before(now)):
        _finish(abandoned, SyncStatus.FAILED, error=ABANDONED)
    for lost in runs.filter(status=SyncStatus.QUEUED, created_at__lt=now - QUEUED_TIMEOUT):
        _finish(lost, SyncStatus.FAILED, error="Lost: no worker picked the run up; it was dropped.")


def _claim(run: SyncRun) -> bool:
    """Move a queued run to running; False if another run of its account and kind runs."""
    _abandoned_release(run)
    try:
        with transaction.atomic():
            claimed = SyncRun.objects.filter(pk=run.pk, status=SyncStatus.QUEUED).update(
                status=SyncStatus.RUNNING, started_at=timezone.now(), attempts=run.attempts + 1
            )
    except IntegrityError:
        return False
    return bool(claimed)


def sync_run_execute(*, run: SyncRun, last_attempt: bool = False) -> SyncRun:
    """Run a queued sync. A failure keeps the previous data (the adapters write in one
    transaction) and records a readable cause; throttling re-queues it for a retry
    (raising ``SyncRetryableError``), unless this is the ``last_attempt``: then it gives up."""
    if not _claim(run):
        run.refresh_from_db()
        if run.status == SyncStatus.QUEUED:
            # Another run of the same account and kind is running: wait for it.
            busy = SyncRetryableError(
                f"Another {run.get_kind_display().lower()} sync of {run.account} is running."
            )
            return _retry_or_give_up(run, busy, last_attempt)
        return run
    run.refresh_from_db()
    adapter = adapters()[(run.account.provider, run.kind)]
    window = SyncWindow(run.period_start, run.period_end) if run.period_start else None
    try:
        result = adapter(account=run.account, window=window, run=run)
    except SyncRetryableError as exc:
        return _retry_or_give_up(run, exc, last_attempt)
    except SyncError as exc:
        return _finish(run, SyncStatus.FAILED, error=str(exc))
    except Exception as exc:
        # The message may quote a secret: log only what is stored, scrubbed, no traceback.
        log.error(
            "sync run %s failed unexpectedly: %s", run.pk, scrub(f"{type(exc).__name__}: {exc}")
        )
        return _finish(
            run, SyncStatus.FAILED, error=f"Unexpected error ({type(exc).__name__}): {exc}"
        )
    return _finish(run, SyncStatus.SUCCEEDED, rows=result.rows, detail=result.detail)


def _retry_or_give_up(run: SyncRun, exc: SyncRetryableError, last_attempt: bool) -> SyncRun:
    if last_attempt:
        return _finish(run, SyncStatus.FAILED, error=f"Gave up after retries: {exc}")
    _finish(run, SyncStatus.QUEUED, error=f"Will retry: {exc}")
    raise exc


def _finish(
    run: SyncRun,
    status: str,
    *,
    rows: int = 0,
    detail: dict[str, Any] | None = None,
    error: str = "",
) -> SyncRun:
    run.status = status
    run.rows = rows
    run.detail = scrub_detail(detail or {})
    run.error = scrub(error)
    run.finished_at = timezone.now() if status != SyncStatus.QUEUED else None
    run.save(update_fields=["status", "rows", "detail", "error", "finished_at"])
    if status == SyncStatus.FAILED:
        log.warning("sync run %s failed: %s", run.pk, run.error)
    return run


def syncs_schedule(*, kind: str) -> list[SyncRun]:
    """Queue this kind of sync for every active account that has it (the beat entry point).

    An account with a run of this kind still queued or running is skipped.
    """
    runs = []
    for account in CloudAccount.objects.filter(is_active=True).order_by("pk"):
        if (account.provider, kind) not in adapters():
            continue
        if kind in (SyncKind.COSTS, SyncKind.CUR) and not _reads_costs(account, kind):
            continue
        _abandoned_release(SyncRun(account=account, kind=kind))
        busy = account.runs.filter(
            kind=kind, status__in=[SyncStatus.QUEUED, SyncStatus.RUNNING]
        ).exists()
        if not busy:
            runs.append(sync_run_create(account=account, kind=kind))
    return runs


def _reads_costs(account: CloudAccount, kind: str) -> bool:
    """Each account reads its costs one way, so nothing is counted twice."""
    if account.provider == "gcp":
        return kind == SyncKind.COSTS
    return (kind == SyncKind.CUR) == (account.cost_source == "cur")
