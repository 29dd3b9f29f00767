"""Celery tasks for costs: thin wrappers that load ids and call services."""

import logging
from smtplib import SMTPException

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from costs import chargeback, selectors, services, sync
from costs.models import BillingImport
from costs.sync import SyncRetryableError
from governance.celery import enqueue

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def billing_import_run_task(billing_import_id: int) -> str:
    """Run a queued import. Idempotent: a finished import is left as it is."""
    billing_import = BillingImport.objects.get(pk=billing_import_id)
    return services.billing_import_run(billing_import=billing_import).status


@shared_task(acks_late=True)
def budgets_evaluate_task(month: str | None = None) -> int:
    """Check every budget of a month (``YYYY-MM``; default the current one); idempotent."""
    parsed = selectors.month_parse(month) if month else None
    return len(services.budgets_evaluate(month=parsed).alerts)


@shared_task(
    acks_late=True,
    autoretry_for=(SMTPException, OSError),
    max_retries=5,
    retry_backoff=True,
    retry_backoff_max=600,
)
def budget_alerts_notify_task(alert_ids: list[int]) -> int:
    """E-mail the owners about new budget alerts; alerts already mailed are skipped."""
    return services.budget_alerts_notify(alert_ids=alert_ids)


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(SyncRetryableError,),
    max_retries=5,
    retry_backoff=15,
    retry_backoff_max=600,
    retry_jitter=True,
)
def sync_run_task(self, run_id: int) -> str:
    """Execute a queued cloud sync; throttled runs come back with growing, jittered pauses,
    and the service gives up (marks the run failed) on the last attempt."""
    from costs.models import SyncRun

    run = SyncRun.objects.get(pk=run_id)
    last = self.request.retries >= self.max_retries
    return sync.sync_run_execute(run=run, last_attempt=last).status


@shared_task(acks_late=True)
def work_recover_task() -> dict[str, int]:
    """Beat (every minute) and each worker's start: fail the imports and syncs whose worker
    died, and send again the work and mails that never reached the broker; idempotent."""
    return {
        **services.billing_imports_recover(),
        **sync.sync_runs_recover(),
        "budget_alert_mails_resent": services.budget_alerts_resend(),
    }


@shared_task(acks_late=True)
def cost_cache_warm_task(months: list[str] | None = None) -> int:
    """After an import or a rule change, and on a schedule: sum these months (``YYYY-MM``;
    every month with costs when None) into the cache, keeping what is there; idempotent."""
    parsed = None if months is None else [selectors.month_parse(m) for m in months]
    return selectors.cost_cache_warm(months=parsed)


@worker_ready.connect
def _recover_on_worker_start(**_: object) -> None:
    # A worker that starts (again) picks up what waited for it, without waiting for beat,
    # and (after a deploy) fills the cost cache before the first visitor asks for it.
    enqueue(work_recover_task)
    if settings.CAPGOV_COST_CACHE_SECONDS > 0:
        enqueue(cost_cache_warm_task)


@shared_task(acks_late=True)
def syncs_schedule_task(kind: str) -> int:
    """Beat: queue ``kind`` syncs for every active cloud account that has them."""
    return len(sync.syncs_schedule(kind=kind))


@shared_task(
    acks_late=True,
    autoretry_for=(SMTPException, OSError),
    max_retries=5,
    retry_backoff=True,
    retry_backoff_max=600,
)
def statements_notify_task(period_id: int) -> int:
    """E-mail each unit's owner the link to their published statement; once per statement."""
    return chargeback.statements_notify(period_id=period_id)


@shared_task(acks_late=True)
def planning_cycle_open_due_task() -> int | None:
    """Beat (daily): open the next quarter's planning cycle when it is due; idempotent."""
    from costs import planning

    cycle = planning.planning_cycle_open_due()
    return cycle.pk if cycle else None


@shared_task(
    acks_late=True,
    autoretry_for=(SMTPException, OSError),
    max_retries=5,
    retry_backoff=True,
    retry_backoff_max=600,
)
def planning_plan_notify_task(plan_id: int) -> bool:
    """E-mail a unit's owner the link to its capacity plan of a newly opened cycle."""
    from costs import planning

    return planning.plan_notify(plan_id=plan_id)


@shared_task(acks_late=True)
def commitment_recommendations_task() -> int:
    """Beat (weekly): recompute commitment recommendations from the pools' forecasts."""
    from costs import commitment_services

    return len(commitment_services.commitment_recommendations_compute().made)


@shared_task(acks_late=True)
def retention_prune_task(dry_run: bool = False) -> int:
    """Beat (daily): prune the data classes whose retention policy allows it; idempotent
    (months already compacted are left alone). Returns the rows removed."""
    from costs import retention

    runs = retention.retention_prune_all(dry_run=dry_run, enabled_only=True)
    return sum(run.rows_removed for run in runs)


@shared_task(acks_late=True)
def forecasts_refresh_task(measures: list[str] | None = None) -> int:
    """Beat (daily), and after a billing import (cost only): record the anomalies of the days
    that arrived, then refit every forecast; idempotent. Returns the forecasts refreshed."""
    from costs import forecasts
    from costs.models import Measure

    return forecasts.forecasts_refresh_all(measures=measures or Measure.values).forecasts
