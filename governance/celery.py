"""The Celery application. Tasks live in each app's ``tasks.py``.

Long imports and syncs go to their own queue (``settings.CAPGOV_BULK_TASKS`` to
``settings.CAPGOV_BULK_QUEUE``), so a worker on the default queue is always free for e-mail
and escalations. Request ids travel with the tasks a request enqueues
(``governance.observability``), and workers log through Django's ``LOGGING``.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

from governance import observability

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")

app = Celery("capgov")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def task_route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any):
    """CELERY_TASK_ROUTES: bulk tasks to the bulk queue; the rest to the default queue.

    Read at publish time, so a test (or a second installation on the same broker) can rename
    the queue in settings.
    """
    from django.conf import settings

    if name in settings.CAPGOV_BULK_TASKS:
        return {"queue": settings.CAPGOV_BULK_QUEUE}
    return None


signals.before_task_publish.connect(observability.task_publish_add_request_id, weak=False)
signals.task_prerun.connect(observability.task_prerun_restore, weak=False)
signals.task_postrun.connect(observability.task_postrun_clear, weak=False)
signals.setup_logging.connect(observability.celery_logging_setup, weak=False)
