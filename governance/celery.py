"""The Celery application. Tasks live in each app's ``tasks.py``.

Long imports and syncs go to their own queue (``settings.CAPGOV_BULK_TASKS`` to
``settings.CAPGOV_BULK_QUEUE``), so a worker on the default queue is always free for e-mail
and escalations. Request ids travel with the tasks a request enqueues
(``governance.observability``), and workers log through Django's ``LOGGING``. Work is sent
with ``enqueue``, so a stopped broker never turns the request that asked for it into a 500.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import Celery, Task, signals
from kombu.exceptions import OperationalError as BrokerUnreachableError

from governance import observability

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
logger = logging.getLogger(__name__)

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


# After the broker refused a task, the next ones are not offered to it for this long: each
# offer costs a connection attempt and Celery's retries (about 0.6 s refused, seconds when
# packets are dropped), and a request that queues fifty mails must not wait fifty times.
BROKER_PAUSE_SECONDS = 10.0
_broker_down_until = 0.0


def enqueue(task: Task, *args: object) -> bool:
    """Send ``task`` to the broker; False, with a warning, when the broker cannot be reached.

    Whoever asked for the work (a page, an API call, a task, a commit's callback) still
    succeeds: what it wrote is committed either way. Imports, syncs and budget mails stay
    recorded as unsent and ``work_recover_task`` sends them again once the broker answers; any
    other task (a notification mail) is not retried, and the warning names it. Tasks that run
    eagerly (the demo, tests) run here: an error of their own is the task's to report.
    """
    global _broker_down_until
    eager = task.app.conf.task_always_eager
    if not eager and time.monotonic() < _broker_down_until:
        logger.warning(
            "%s(%s) not queued, the broker was unreachable a moment ago", task.name, args
        )
        return False
    try:
        task.delay(*args)
    except BrokerUnreachableError as exc:
        if eager:
            raise  # the task itself failed: it ran here, no broker was asked
        _broker_down_until = time.monotonic() + BROKER_PAUSE_SECONDS
        logger.warning("%s(%s) not queued, the broker is unreachable: %s", task.name, args, exc)
        return False
    _broker_down_until = 0.0
    return True


signals.before_task_publish.connect(observability.task_publish_add_request_id, weak=False)
signals.task_prerun.connect(observability.task_prerun_restore, weak=False)
signals.task_postrun.connect(observability.task_postrun_clear, weak=False)
signals.setup_logging.connect(observability.celery_logging_setup, weak=False)
