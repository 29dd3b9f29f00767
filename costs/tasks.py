"""Celery tasks for costs: thin wrappers that load ids and call services."""

from celery import shared_task

from costs import services
from costs.models import BillingImport


@shared_task(acks_late=True)
def billing_import_run_task(billing_import_id: int) -> str:
    """Run a queued import. Idempotent: a finished import is left as it is."""
    billing_import = BillingImport.objects.get(pk=billing_import_id)
    return services.billing_import_run(billing_import=billing_import).status
