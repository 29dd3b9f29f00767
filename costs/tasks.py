"""Celery tasks for costs: thin wrappers that load ids and call services."""

from smtplib import SMTPException

from celery import shared_task

from costs import chargeback, selectors, services, sync
from costs.models import BillingImport
from costs.sync import SyncRetryableError


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
