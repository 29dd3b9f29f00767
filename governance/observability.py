"""Request ids and structured logs, from the web request into the Celery tasks it enqueues.

A request's id (the caller's sane ``X-Request-ID``, else a new one) lives in a context
variable for the request's lifetime (``governance.middleware.RequestIdMiddleware``). A task
published meanwhile carries it in its message headers; the worker restores it before the task
runs and forgets it afterwards, so every log line of the request and of its tasks shares one
id. ``JsonFormatter`` writes each record as one JSON object per line (``DJANGO_LOG_FORMAT=json``).

Nothing here imports Django settings at import time: gunicorn's config loads the formatter
before Django is set up.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

REQUEST_ID_HEADER = "X-Request-ID"
# The message header a published task carries the id in.
TASK_HEADER = "capgov_request_id"
# Ids from a proxy or a client: letters, digits and a few separators, at most 128 characters.
# Anything else (spaces, quotes, newlines that would forge log lines) is replaced by our own.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+/-]{0,127}", re.ASCII)

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "capgov_request_id", default=None
)
task_name_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "capgov_task_name", default=None
)
task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "capgov_task_id", default=None
)
# Per running task id: the tokens that put back what was there before it (eager tasks run
# inside the request that enqueued them and must not wipe its id).
_task_tokens: dict[str, tuple[contextvars.Token, ...]] = {}


def request_id_new() -> str:
    return uuid.uuid4().hex


def request_id_accept(incoming: str | None) -> str:
    """The incoming id when it is sane, else a fresh one."""
    if incoming and _SANE_ID.fullmatch(incoming):
        return incoming
    return request_id_new()


def request_id_get() -> str | None:
    return request_id_var.get()


# --- Celery signal handlers (connected in governance/celery.py) ----------------------------


def task_publish_add_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """before_task_publish: put the current request id into the outgoing message's headers."""
    current = request_id_var.get()
    if current and headers is not None and TASK_HEADER not in headers:
        headers[TASK_HEADER] = current


def task_prerun_restore(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """task_prerun: the task's name and id, and the request id its message carried."""
    if task_id is None or task is None:
        return
    carried = getattr(task.request, TASK_HEADER, None)
    if carried is None and isinstance(getattr(task.request, "headers", None), dict):
        carried = task.request.headers.get(TASK_HEADER)
    tokens = [task_name_var.set(task.name), task_id_var.set(task_id)]
    if carried:
        tokens.append(request_id_var.set(request_id_accept(str(carried))))
    _task_tokens[task_id] = tuple(tokens)


def task_postrun_clear(task_id: str | None = None, **_: Any) -> None:
    """task_postrun: put back what was there before the task (nothing, in a worker)."""
    for token in reversed(_task_tokens.pop(task_id or "", ())):
        token.var.reset(token)


def celery_logging_setup(loglevel: int | str | None = None, **_: Any) -> None:
    """setup_logging: workers and beat log through Django's LOGGING (plain or JSON), not
    Celery's own format; the level is the command's ``--loglevel``."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


# --- Logging ------------------------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Adds request_id, task_name and task_id to every record (None outside their scope)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.task_name = task_name_var.get()
        record.task_id = task_id_var.get()
        return True


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "task_name",
    "task_id",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id,
    task_name, task_id, then any ``extra=`` fields and the exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
            "task_name": getattr(record, "task_name", task_name_var.get()),
            "task_id": getattr(record, "task_id", task_id_var.get()),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """The development format, with the request id and task when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = [
            f"{key}={value}"
            for key in ("request_id", "task_name", "task_id")
            if (value := getattr(record, key, None))
        ]
        return f"{line} [{' '.join(context)}]" if context else line


# Loggers that stay at WARNING whatever the level: the cloud SDKs log request and response
# bodies (credentials among them) at DEBUG, and the SQL log is for debugging only.
QUIET_LOGGERS = (
    "django.db.backends",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "google",
    "google_auth",
)


def logging_config(*, fmt: str, level: str) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of every Capgov process (web, workers, beat,
    gunicorn's master): one handler on stderr, ``fmt`` "json" or "plain"."""
    if fmt not in {"json", "plain"}:
        raise ValueError(f"log format {fmt!r}: use json or plain")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "governance.observability.ContextFilter"}},
        "formatters": {
            "plain": {
                "()": "governance.observability.PlainFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            },
            "json": {"()": "governance.observability.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": fmt,
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level.upper()},
        "loggers": {name: {"level": "WARNING"} for name in QUIET_LOGGERS},
    }


# --- Readiness checks (/healthz, /readyz) -------------------------------------------------
# Each answers "ok", "eager ..." (no broker needed) or "error: <what>"; none raises. The
# caller is anonymous, so an error names the exception's class only; the detail is logged.
BROKER_TIMEOUT_SECONDS = 1.0
log = logging.getLogger("capgov.health")


def _error(check: str, exc: BaseException) -> str:
    log.warning("%s check failed: %s: %s", check, type(exc).__name__, exc)
    return f"error: {type(exc).__name__}"


def check_database() -> str:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means not ready; say which
        return _error("database", exc)
    return "ok"


def broker_on_redis() -> bool:
    """Whether tasks go to a Redis broker (not eagerly run, not another transport)."""
    from django.conf import settings

    return not settings.CELERY_TASK_ALWAYS_EAGER and settings.CELERY_BROKER_URL.startswith(
        ("redis://", "rediss://")
    )


@contextlib.contextmanager
def broker_redis() -> Iterator[redis.Redis]:
    """A client on the Redis broker whose every call gives up after a second, so a stopped
    Redis slows a probe or a scrape by that much at most, never hangs it."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(
        settings.CELERY_BROKER_URL,
        socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
        socket_timeout=BROKER_TIMEOUT_SECONDS,
    )
    try:
        yield client
    finally:
        client.close()


def check_broker() -> str:
    """A Redis PING with a short timeout (any other broker: one connection attempt)."""
    from django.conf import settings

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "eager (no broker configured)"
    try:
        if broker_on_redis():
            with broker_redis() as client:
                client.ping()
        else:
            from governance.celery import app

            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:  # same: report, don't raise
        return _error("broker", exc)
    return "ok"


def migrations_unapplied() -> list[str]:
    """``app.migration`` names that the database has not applied yet, in plan order."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def check_migrations() -> str:
    try:
        unapplied = migrations_unapplied()
    except Exception as exc:  # the database is down, or the migration graph is broken
        return _error("migrations", exc)
    if not unapplied:
        return "ok"
    shown = ", ".join(unapplied[:5]) + (", …" if len(unapplied) > 5 else "")
    return f"error: {len(unapplied)} unapplied ({shown}); run manage.py migrate"


def checks_passed(checks: dict[str, str]) -> bool:
    return all(value == "ok" or value.startswith("eager") for value in checks.values())
