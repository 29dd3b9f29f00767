"""Capgov settings, read only from the environment.

Without any variables set this is the embedded demo: a SQLite file under ``var/``, Celery
tasks run eagerly in-process and e-mail goes to the console. ``DJANGO_ENV=production``
turns on every deployment safeguard and refuses to start without a real secret key and
allowed hosts. See ``.env.example`` for each variable.
"""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from whitenoise.compress import Compressor

from governance import observability

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str:
    """The variable's text; unset or empty means ``default`` (None: it must be set), as for
    the other helpers, so a copied .env.example's blank lines keep the defaults."""
    value = os.environ.get(name) or default
    if value is None:
        raise ImproperlyConfigured(f"Set the {name} environment variable (see .env.example).")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from exc


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_rate(name: str, default: str) -> tuple[int, int] | None:
    """``30/10m``: at most 30 requests in a window of 10 minutes (``s``, ``m``, ``h`` or plain
    seconds); ``off`` or ``0`` turns the limit off (None)."""
    raw = os.environ.get(name, "").strip() or default
    if raw.lower() in {"off", "0", "none"}:
        return None
    count, _, window = raw.partition("/")
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        scale = units[window[-1]] if window and window[-1] in units else 1
        limit, seconds = int(count), int(window.rstrip("smh")) * scale
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a rate such as 30/10m (requests/window) or off."
        ) from exc
    if limit < 1 or seconds < 1:
        raise ImproperlyConfigured(f"{name}={raw!r} needs a positive count and window.")
    return limit, seconds


def env_pairs(name: str) -> list[tuple[str, str]]:
    """``a=x,b=y`` as [("a", "x"), ("b", "y")]; a key may appear more than once."""
    pairs = []
    for item in env_list(name):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ImproperlyConfigured(f"{name}: {item!r} is not key=value (e.g. group=role).")
        pairs.append((key.strip(), value.strip()))
    return pairs


def env_decimal(name: str, default: Decimal | None) -> Decimal | None:
    """A decimal amount; empty means ``default`` (None: the feature is off)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an amount such as 50000.00.") from exc
    if not value.is_finite() or value < 0:
        raise ImproperlyConfigured(f"{name}={raw!r} must be a positive amount.")
    return value


ENVIRONMENT = env_str("DJANGO_ENV", "development")
PRODUCTION = ENVIRONMENT == "production"

if PRODUCTION:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY")
    if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be a random string of 50+ characters.")
    DEBUG = env_bool("DJANGO_DEBUG", False)
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("Set DJANGO_ALLOWED_HOSTS in production.")
else:
    # A fixed development key: the demo must start with nothing configured.
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "django-insecure-capgov-demo-key-not-for-production")
    DEBUG = env_bool("DJANGO_DEBUG", True)
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    # Failed sign-ins by username and address, and the lockouts they cause (admin: Axes).
    "axes",
    "django_prometheus",
    "auditlog",
    "governance",
    "registry",
    "costs",
    "incidents",
]

MIDDLEWARE = [
    # Request counts and latencies for /metrics: first in, last out, so they time everything.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "governance.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "governance.middleware.RejectNulMiddleware",
    # Refuse oversized bodies (413) before anything reads them, and API clients that keep
    # failing to authenticate (429) before they reach a view.
    "governance.uploads.RequestSizeLimitMiddleware",
    "governance.throttle.ApiAuthFailureThrottleMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who (the signed-in person) and from where (IP) for every audit entry the request writes.
    "governance.audit.AuditMiddleware",
    "governance.middleware.LoginRequiredMiddleware",
    # A page or API read asks the cost stamps once, not once per cached sum.
    "costs.middleware.CostStampsMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a locked-out sign-in into the lockout page (429); after every view, as Axes asks.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "governance.urls"
WSGI_APPLICATION = "governance.wsgi.application"
ASGI_APPLICATION = "governance.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

VAR_DIR = Path(env_str("CAPGOV_VAR_DIR", str(BASE_DIR / "var")))
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'capgov.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        # A kept connection is checked before a request reuses it: after a database restart
        # the first request of each process reconnects instead of failing with a 500.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Imports hold a write transaction for a few seconds; wait rather than fail.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The same backend, counting queries, errors and connections for /metrics. (The SQLite
    # demo keeps Django's own: tools such as pytest-django recognise SQLite by its name.)
    DATABASES["default"]["ENGINE"] = "django_prometheus.db.backends.postgresql"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "governance.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
USE_THOUSAND_SEPARATOR = False

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # plotly.js comes from the pinned plotly wheel and is served as our own static file.
    ("vendor/plotly", Path(__import__("plotly").__file__).parent / "package_data"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
# Source maps are fetched only by a browser's developer tools: not worth compressing (that
# compression is most of collectstatic's time).
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = (*Compressor.SKIP_COMPRESS_EXTENSIONS, "map")
if not PRODUCTION:
    # WhiteNoise serves from the finders here, but warns at every start without this folder.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
# Billing exports are large; uploads stream to disk instead of memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
CAPGOV_MAX_UPLOAD_MB = env_int("CAPGOV_MAX_UPLOAD_MB", 2048)
# Unallocated above this share of a month's spend is flagged on the dashboard.
CAPGOV_UNALLOCATED_ALERT_PERCENT = env_int("CAPGOV_UNALLOCATED_ALERT_PERCENT", 5)
# A month's cost sums by business unit (dashboard, chargeback, budgets) are cached this many
# seconds under a fingerprint of the stored costs, so an import or a rule change shows at once
# (costs/selectors.py). 0 reads live: the default outside production, where tests and the demo
# rewrite costs under a pinned clock.
CAPGOV_COST_CACHE_SECONDS = env_int("CAPGOV_COST_CACHE_SECONDS", 900 if PRODUCTION else 0)

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not CELERY_BROKER_URL)
if not CELERY_BROKER_URL:
    # Eager tasks never reach a broker; name an in-memory one so kombu does not go looking.
    CELERY_BROKER_URL = "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600)
# An import or cloud sync still "running" this long after it started lost its worker (no task
# runs past the time limit): the recovery sweep (work-recover) marks it failed.
CAPGOV_ABANDONED_AFTER_SECONDS = env_int(
    "CAPGOV_ABANDONED_AFTER_SECONDS", CELERY_TASK_TIME_LIMIT + 300
)
if CAPGOV_ABANDONED_AFTER_SECONDS <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        "CAPGOV_ABANDONED_AFTER_SECONDS must be longer than CELERY_TASK_TIME_LIMIT, or running "
        "imports and syncs would be marked failed."
    )
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic tasks live in django-celery-beat's tables, editable in the admin (Periodic tasks).
# `manage.py install_schedules` adds these defaults where missing and never overwrites an
# edit; beat itself installs nothing, so an edited interval survives restarts.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}
CAPGOV_SCHEDULES: dict[str, dict] = {}
# Approval steps that waited past their due time escalate; undecided requests expire.
CAPGOV_SCHEDULES["approval-steps-escalate"] = {
    "task": "governance.tasks.approval_steps_escalate",
    "schedule": 15 * 60.0,
}
CAPGOV_SCHEDULES["approval-requests-expire"] = {
    "task": "governance.tasks.approval_requests_expire",
    "schedule": 15 * 60.0,
}
# Capacity conflicts undecided past their due time escalate one level.
CAPGOV_SCHEDULES["conflicts-escalate"] = {
    "task": "governance.tasks.conflicts_escalate_task",
    "schedule": 15 * 60.0,
}
# Every minute (and when a worker starts): imports and syncs whose worker died are marked
# failed, and work and budget mails that could not reach the broker are sent again.
CAPGOV_SCHEDULES["work-recover"] = {"task": "costs.tasks.work_recover_task", "schedule": 60.0}
# The cached cost sums (when CAPGOV_COST_CACHE_SECONDS is set) are warmed three times a
# lifetime: what is cached is kept, so the dashboard's first visitor never sums a year of rows.
if CAPGOV_COST_CACHE_SECONDS > 0:
    CAPGOV_SCHEDULES["cost-cache-warm"] = {
        "task": "costs.tasks.cost_cache_warm_task",
        "schedule": max(60.0, CAPGOV_COST_CACHE_SECONDS / 3),
    }
# Budgets: record thresholds reached this month, e-mail owners, freeze breaching units (also
# run after every successful billing import).
CAPGOV_SCHEDULES["budgets-evaluate"] = {
    "task": "costs.tasks.budgets_evaluate_task",
    "schedule": 24 * 60 * 60.0,
}
# Chargeback usage data: availability SLO measurements from endpoint usage, and GPU-hours per
# pool and business unit from the endpoints, over the last 3 days (uploads are never replaced).
# Retirement: score endpoints daily; remind owners and act on due cases hourly.
CAPGOV_SCHEDULES["retirement-evaluate"] = {
    "task": "registry.tasks.retirement_evaluate_task",
    "schedule": 24 * 60 * 60.0,
}
CAPGOV_SCHEDULES["retirement-cases-due"] = {
    "task": "registry.tasks.retirement_cases_due_task",
    "schedule": 60 * 60.0,
}
CAPGOV_SCHEDULES["slo-measurements-from-usage"] = {
    "task": "registry.tasks.slo_measurements_from_usage_task",
    "schedule": 24 * 60 * 60.0,
}
CAPGOV_SCHEDULES["pool-usage-from-endpoints"] = {
    "task": "registry.tasks.pool_usage_from_endpoints_task",
    "schedule": 24 * 60 * 60.0,
}
# Incident action items: the owner is mailed once this many days before the due date, and
# once after it has passed.
CAPGOV_ACTION_REMINDER_DAYS = env_int("CAPGOV_ACTION_REMINDER_DAYS", 2)
CAPGOV_SCHEDULES["action-items-remind"] = {
    "task": "incidents.tasks.action_items_remind_task",
    "schedule": 24 * 60 * 60.0,
}
# Forecasts (costs.forecasts): daily cost and GPU-hours of every unit, pool and endpoint, learnt
# from this many days of history and forecast this many days ahead, with this prediction
# interval (a day outside it is a cost anomaly) and this low quantile (commitments are sized
# from it). 99.9 %, not 99 %: at 99 % one ordinary day in a hundred falls outside by chance,
# which over a few dozen series refreshed daily is a false anomaly every few days.
CAPGOV_FORECAST_HISTORY_DAYS = env_int("CAPGOV_FORECAST_HISTORY_DAYS", 365)
CAPGOV_FORECAST_HORIZON_DAYS = env_int("CAPGOV_FORECAST_HORIZON_DAYS", 90)
CAPGOV_FORECAST_INTERVAL_PERCENT = env_decimal("CAPGOV_FORECAST_INTERVAL_PERCENT", Decimal("99.9"))
CAPGOV_FORECAST_LOW_QUANTILE_PERCENT = env_decimal(
    "CAPGOV_FORECAST_LOW_QUANTILE_PERCENT", Decimal(10)
)
if not 28 <= CAPGOV_FORECAST_HISTORY_DAYS <= 3660 or not 1 <= CAPGOV_FORECAST_HORIZON_DAYS <= 730:
    raise ImproperlyConfigured(
        f"CAPGOV_FORECAST_HISTORY_DAYS={CAPGOV_FORECAST_HISTORY_DAYS} / "
        f"CAPGOV_FORECAST_HORIZON_DAYS={CAPGOV_FORECAST_HORIZON_DAYS}: history is 28 to 3660 "
        "days, the horizon 1 to 730."
    )
if not 50 < CAPGOV_FORECAST_INTERVAL_PERCENT < 100 or not (
    0 < CAPGOV_FORECAST_LOW_QUANTILE_PERCENT < 50
):
    raise ImproperlyConfigured(
        f"CAPGOV_FORECAST_INTERVAL_PERCENT={CAPGOV_FORECAST_INTERVAL_PERCENT} / "
        f"CAPGOV_FORECAST_LOW_QUANTILE_PERCENT={CAPGOV_FORECAST_LOW_QUANTILE_PERCENT}: the "
        "interval is above 50 and below 100 %, the low quantile above 0 and below 50 %."
    )
# Refit every forecast daily, after recording the days that fell outside the last forecast.
CAPGOV_SCHEDULES["forecasts-refresh"] = {
    "task": "costs.tasks.forecasts_refresh_task",
    "schedule": 24 * 60 * 60.0,
}
# Capacity planning: the fiscal year starts on the 1st of this month (1-12) and is named by the
# calendar year it ends in (start 2: FY2027 runs Feb 2026 to Jan 2027). The next quarter's
# planning cycle opens this many days before the quarter starts (beat, daily).
CAPGOV_FISCAL_YEAR_START_MONTH = env_int("CAPGOV_FISCAL_YEAR_START_MONTH", 1)
if not 1 <= CAPGOV_FISCAL_YEAR_START_MONTH <= 12:
    raise ImproperlyConfigured(
        f"CAPGOV_FISCAL_YEAR_START_MONTH={CAPGOV_FISCAL_YEAR_START_MONTH} is not a month: give "
        "the month the fiscal year starts in, from 1 (January) to 12 (December)."
    )
CAPGOV_PLANNING_OPENS_DAYS_BEFORE = env_int("CAPGOV_PLANNING_OPENS_DAYS_BEFORE", 30)
if not 1 <= CAPGOV_PLANNING_OPENS_DAYS_BEFORE <= 180:
    raise ImproperlyConfigured(
        f"CAPGOV_PLANNING_OPENS_DAYS_BEFORE={CAPGOV_PLANNING_OPENS_DAYS_BEFORE}: give a number "
        "of days from 1 to 180."
    )
# Approved plans become quotas with this overage multiplier (unless the unit's manual quota on
# the pool has one) and monthly budgets freezing at this percent of spend (0 = never freeze).
CAPGOV_PLAN_OVERAGE_MULTIPLIER = env_decimal("CAPGOV_PLAN_OVERAGE_MULTIPLIER", Decimal("1.5"))
if CAPGOV_PLAN_OVERAGE_MULTIPLIER < 1 or CAPGOV_PLAN_OVERAGE_MULTIPLIER >= 1000:
    raise ImproperlyConfigured(
        f"CAPGOV_PLAN_OVERAGE_MULTIPLIER={CAPGOV_PLAN_OVERAGE_MULTIPLIER}: a multiplier is at "
        "least 1 (1 = no surcharge) and below 1000."
    )
CAPGOV_PLAN_BUDGET_FREEZE_PERCENT = env_int("CAPGOV_PLAN_BUDGET_FREEZE_PERCENT", 100)
if not 0 <= CAPGOV_PLAN_BUDGET_FREEZE_PERCENT <= 1000:
    raise ImproperlyConfigured(
        f"CAPGOV_PLAN_BUDGET_FREEZE_PERCENT={CAPGOV_PLAN_BUDGET_FREEZE_PERCENT}: give a percent "
        "from 1 to 1000, or 0 for plan budgets that never freeze."
    )
# Who a planning conflict (plans asking more of a pool than it has) escalates to, in order:
# board, bu_owners, role:<role>; empty = the capacity conflicts' default path.
CAPGOV_PLAN_CONFLICT_ESCALATION = env_list("CAPGOV_PLAN_CONFLICT_ESCALATION")
for _target in CAPGOV_PLAN_CONFLICT_ESCALATION:
    if _target not in ("board", "bu_owners") and not (
        _target.startswith("role:") and _target.removeprefix("role:")
    ):
        raise ImproperlyConfigured(
            f"CAPGOV_PLAN_CONFLICT_ESCALATION: {_target!r} is not board, bu_owners or "
            "role:<role> (e.g. board,bu_owners,role:platform_admin)."
        )
CAPGOV_SCHEDULES["planning-cycle-open"] = {
    "task": "costs.tasks.planning_cycle_open_due_task",
    "schedule": 24 * 60 * 60.0,
}
# Commitment recommendations per pool and offer, from the pools' GPU-hour forecasts (weekly).
CAPGOV_SCHEDULES["commitment-recommendations"] = {
    "task": "costs.tasks.commitment_recommendations_task",
    "schedule": 7 * 24 * 60 * 60.0,
}
# Data retention: the daily task prunes the classes whose policy allows it (admin or
# /costs/retention/); storage is costed at this price per GB (1024^3 bytes) a month.
CAPGOV_SCHEDULES["retention-prune"] = {
    "task": "costs.tasks.retention_prune_task",
    "schedule": 24 * 60 * 60.0,
}
CAPGOV_STORAGE_PRICE_PER_GB_MONTH = env_decimal(
    "CAPGOV_STORAGE_PRICE_PER_GB_MONTH", Decimal("0.10")
)
CAPGOV_STORAGE_PRICE_CURRENCY = env_str("CAPGOV_STORAGE_PRICE_CURRENCY", "USD")
# Cloud syncs: costs daily, endpoints and usage hourly, prices weekly.
for _kind, _every in (
    ("costs", 24 * 3600),
    ("cur", 24 * 3600),
    ("endpoints", 3600),
    ("prices", 7 * 24 * 3600),
    ("billing_accounts", 24 * 3600),
):
    CAPGOV_SCHEDULES[f"sync-{_kind}"] = {
        "task": "costs.tasks.syncs_schedule_task",
        "schedule": float(_every),
        "args": (_kind,),
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Queues: long imports, syncs and derivations over many rows go to the bulk queue (its own
# worker, `celery -A governance worker -Q bulk`), so they never hold up the default queue's
# e-mails, escalations and expiries. Rename both to share one broker between installations.
CAPGOV_DEFAULT_QUEUE = env_str("CAPGOV_DEFAULT_QUEUE", "celery")
CAPGOV_BULK_QUEUE = env_str("CAPGOV_BULK_QUEUE", "bulk")
CELERY_TASK_DEFAULT_QUEUE = CAPGOV_DEFAULT_QUEUE
CAPGOV_BULK_TASKS = frozenset(
    {
        "costs.tasks.billing_import_run_task",
        "costs.tasks.sync_run_task",
        "registry.tasks.retirement_evaluate_task",
        "registry.tasks.slo_measurements_from_usage_task",
        "registry.tasks.pool_usage_from_endpoints_task",
        "costs.tasks.retention_prune_task",
        "costs.tasks.forecasts_refresh_task",
        "costs.tasks.cost_cache_warm_task",
    }
)
CELERY_TASK_ROUTES = ("governance.celery.task_route",)

# --- E-mail -------------------------------------------------------------------------------
# The backend that sends; Capgov's wrapper in front of it counts every message sent or refused
# in the database (the e-mail metrics of /metrics), whichever web or worker process sends.
CAPGOV_EMAIL_BACKEND = env_str(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_BACKEND = "governance.mail_backend.CountingEmailBackend"
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Capgov <capgov@localhost>")
# Cloud clients: attempts per AWS call (throttling and 5xx are retried with backoff);
# endpoint overrides for private endpoints or local test servers.
CAPGOV_AWS_MAX_ATTEMPTS = env_int("CAPGOV_AWS_MAX_ATTEMPTS", 5)
CAPGOV_AWS_ENDPOINT_URL = env_str("CAPGOV_AWS_ENDPOINT_URL", "")
CAPGOV_AWS_ENDPOINT_URLS: dict[str, str] = {}
CAPGOV_GCP_API_ENDPOINT = env_str("CAPGOV_GCP_API_ENDPOINT", "")
CAPGOV_BIGQUERY_API_ENDPOINT = env_str("CAPGOV_BIGQUERY_API_ENDPOINT", "")
CAPGOV_VERTEX_API_ENDPOINT = env_str("CAPGOV_VERTEX_API_ENDPOINT", "")
CAPGOV_BASE_URL = env_str("CAPGOV_BASE_URL", "http://127.0.0.1:8000")
# Approval links by e-mail: how long one works, and the estimate (in the request's currency)
# above which the approver must be signed in to confirm; empty = never.
CAPGOV_APPROVAL_LINK_HOURS = env_int("CAPGOV_APPROVAL_LINK_HOURS", 72)
CAPGOV_APPROVAL_SIGNIN_ABOVE = env_decimal("CAPGOV_APPROVAL_SIGNIN_ABOVE", None)
# The currency of that amount (a request in another currency always asks for a sign-in), and
# how recent the approver's sign-in must be.
CAPGOV_APPROVAL_SIGNIN_CURRENCY = env_str("CAPGOV_APPROVAL_SIGNIN_CURRENCY", "USD")
CAPGOV_APPROVAL_SIGNIN_MAX_AGE_MINUTES = env_int("CAPGOV_APPROVAL_SIGNIN_MAX_AGE_MINUTES", 15)

# --- Metrics and audit ----------------------------------------------------------------------
# /metrics (Prometheus) answers a scraper sending `Authorization: Bearer <this>` and signed-in
# platform admins; empty = only platform admins. With several gunicorn workers, set
# PROMETHEUS_MULTIPROC_DIR (see .env.example) so request metrics add up across them.
CAPGOV_METRICS_TOKEN = env_str("CAPGOV_METRICS_TOKEN", "")
# How many reverse proxies in front of Capgov append to X-Forwarded-For: the audit log takes
# the client address that many entries from the right. 0 = no proxy: the socket's address.
CAPGOV_TRUSTED_PROXIES = env_int("CAPGOV_TRUSTED_PROXIES", 0)
# The audit log (django-auditlog) keeps its entries in governance.AuditEntry; the request id
# is each entry's correlation id. Tracked models and the fields left out of their entries:
AUDITLOG_LOGENTRY_MODEL = "governance.AuditEntry"
# django-auditlog's own table would go unused beside AuditEntry, yet still reference users and
# content types (so a test database could not be flushed): its migrations are not run.
MIGRATION_MODULES = {"auditlog": None}
AUDITLOG_CID_GETTER = "governance.observability.request_id_get"
AUDITLOG_STORE_JSON_CHANGES = True
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    {"model": "governance.ApprovalPolicy", "m2m_fields": {"business_units"}},
    "governance.PolicyStep",
    {"model": "governance.ApprovalRequest", "exclude_fields": ["revision"]},
    "governance.ApprovalVote",
    "governance.Decision",
    "governance.DeploymentFreeze",
    "governance.RoleAssignment",
    {"model": "costs.BillingImport", "exclude_fields": ["stage", "progress"]},
    "costs.AllocationRule",
    "costs.AllocationPolicy",
    {"model": "costs.SharedPool", "m2m_fields": {"recipients"}},
    "costs.SharedPoolShare",
    "costs.Budget",
    {"model": "costs.ChargebackPeriod", "exclude_fields": ["totals", "warnings"]},
    "costs.CloudAccount",
    {"model": "registry.RetirementPolicy", "m2m_fields": {"business_units"}},
    {"model": "registry.RetirementCase", "exclude_fields": ["evidence"]},
    "registry.RetirementStep",
    "registry.RetirementExemption",
)

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    # `Authorization: Token <key>` with a key from /account/tokens/ or `manage.py token_create`;
    # a read-scope token is refused on writes (governance/api/auth.py).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.api.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PARSER_CLASSES": [
        "governance.api.parsers.StrictJSONParser",
        "governance.api.parsers.StrictFormParser",
        "governance.api.parsers.StrictMultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "governance.api.exceptions.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Capgov API",
    "DESCRIPTION": "Capacity and cost governance for shared AI platforms.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI from the installed sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "BillingFormatEnum": "costs.models.BillingFormat",
        "LifecycleStateEnum": "registry.choices.LifecycleState",
        "ModelSourceEnum": "registry.choices.ModelSource",
        "SyncKindEnum": "costs.models.SyncKind",
        "SyncStatusEnum": "costs.models.SyncStatus",
        "CloudProviderEnum": "costs.models.CLOUD_PROVIDERS",
        "ProviderEnum": "registry.choices.Provider",
        "RequestKindEnum": "governance.choices.RequestKind",
        "RequestStatusEnum": "governance.choices.RequestStatus",
        "StepStatusEnum": "governance.choices.StepStatus",
        "StepModeEnum": "governance.choices.StepMode",
        "DecisionKindEnum": "governance.choices.DecisionKind",
        "DecisionOutcomeEnum": "governance.choices.DecisionOutcome",
        "RoleEnum": "governance.choices.Role",
        "IncidentStatusEnum": "incidents.models.IncidentStatus",
        "PostMortemStatusEnum": "incidents.models.PostMortemStatus",
        "FactorStatusEnum": "incidents.models.FactorStatus",
        "ActionStatusEnum": "incidents.models.ActionStatus",
        "ActionCloseStatusEnum": "incidents.actions.CLOSED",
        "ActionKindEnum": "incidents.models.ActionKind",
        "AffectedTypeEnum": "incidents.api.AFFECTED_TYPES",
        "ActionSubjectTypeEnum": "incidents.api.ACTION_SUBJECTS",
        "SubjectKindEnum": "costs.models.SubjectKind",
        "MeasureEnum": "costs.models.Measure",
        "EventKindEnum": "costs.models.EventKind",
        "AnomalyDirectionEnum": "costs.models.AnomalyDirection",
        "CommitmentKindEnum": "costs.models.CommitmentKind",
        "CycleStatusEnum": "costs.models.CycleStatus",
        "PlanStatusEnum": "costs.models.PlanStatus",
        "LineStatusEnum": "costs.models.LineStatus",
        "RecommendationStatusEnum": "costs.models.RecommendationStatus",
        "LineDecisionEnum": "costs.planning.LineDecision.CHOICES",
    },
}

# --- Cache, sign-in limits, single sign-on -----------------------------------------------
# The cache holds the link and API throttles' counters and the OIDC discovery document
# (sign-in lockouts live in the database). CAPGOV_CACHE_URL names a Redis database for it in
# any environment; in production without it, the Celery broker's Redis serves (keys prefixed
# capgov). Otherwise each process keeps its own in memory (LocMem): limits still hold, but
# per process, so N web processes let N times the rate through.
CAPGOV_CACHE_URL = env_str("CAPGOV_CACHE_URL", "")
if not CAPGOV_CACHE_URL and PRODUCTION and CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CAPGOV_CACHE_URL = CELERY_BROKER_URL
if CAPGOV_CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CAPGOV_CACHE_URL,
            "KEY_PREFIX": "capgov",
            # A stopped Redis must cost a page a second at most, never hang it.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Lockouts and throttles count per client address, read as the audit log reads it
# (CAPGOV_TRUSTED_PROXIES above).
#
# Sign-in: after this many failed attempts for one username from one address, that pair is
# locked out (429, the page says until when); each attempt while locked starts the wait again
# and a successful sign-in clears the count. Other people, and the same person from another
# address, are not affected. `manage.py axes_reset` lifts every lockout.
CAPGOV_LOGIN_FAILURE_LIMIT = env_int("CAPGOV_LOGIN_FAILURE_LIMIT", 5)
CAPGOV_LOGIN_LOCKOUT_MINUTES = env_int("CAPGOV_LOGIN_LOCKOUT_MINUTES", 15)
if CAPGOV_LOGIN_FAILURE_LIMIT < 1 or CAPGOV_LOGIN_LOCKOUT_MINUTES < 1:
    raise ImproperlyConfigured(
        "CAPGOV_LOGIN_FAILURE_LIMIT and CAPGOV_LOGIN_LOCKOUT_MINUTES must be 1 or more."
    )
AXES_FAILURE_LIMIT = CAPGOV_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=CAPGOV_LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "governance.throttle.login_locked_out"
# None when there is no address (a test client's login): Axes' column holds IP addresses only.
AXES_CLIENT_IP_CALLABLE = "governance.audit.client_address"
# E-mailed links (approval and retirement links): requests per client address per window,
# counted before the link is read, so a refusal neither uses nor reveals the link.
CAPGOV_LINK_RATE = env_rate("CAPGOV_LINK_RATE", "30/10m")
# API requests that fail to authenticate (401: a wrong, expired or missing token), per client
# address; past it every API request from that address gets 429 until the window ends.
CAPGOV_API_AUTH_FAILURE_RATE = env_rate("CAPGOV_API_AUTH_FAILURE_RATE", "100/10m")
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username and address before any password is checked.
    "governance.throttle.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Answers only the single sign-on callback, and only when OIDC is configured.
    "governance.auth_oidc.OidcBackend",
]

# Single sign-on (OpenID Connect, authorization code flow with PKCE). On when a client id and
# secret are set with either the issuer (endpoints read from its discovery document) or all
# four endpoints. Groups in the ID token / userinfo claim CAPGOV_OIDC_GROUPS_CLAIM grant roles
# (CAPGOV_OIDC_GROUP_ROLES="capgov-finance=finance,capgov-admins=platform_admin") and business
# units by code (CAPGOV_OIDC_GROUP_UNITS="capgov-research=RES"); what SSO granted is updated at
# every sign-in, what an admin granted by hand is never touched.
CAPGOV_OIDC_ISSUER = env_str("CAPGOV_OIDC_ISSUER", "").rstrip("/")
OIDC_RP_CLIENT_ID = env_str("CAPGOV_OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env_str("CAPGOV_OIDC_CLIENT_SECRET", "")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("CAPGOV_OIDC_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env_str("CAPGOV_OIDC_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = env_str("CAPGOV_OIDC_USERINFO_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env_str("CAPGOV_OIDC_JWKS_ENDPOINT", "")
_oidc_endpoints = {
    "CAPGOV_OIDC_AUTHORIZATION_ENDPOINT": OIDC_OP_AUTHORIZATION_ENDPOINT,
    "CAPGOV_OIDC_TOKEN_ENDPOINT": OIDC_OP_TOKEN_ENDPOINT,
    "CAPGOV_OIDC_USERINFO_ENDPOINT": OIDC_OP_USER_ENDPOINT,
    "CAPGOV_OIDC_JWKS_ENDPOINT": OIDC_OP_JWKS_ENDPOINT,
}
_oidc_given = {
    "CAPGOV_OIDC_ISSUER": CAPGOV_OIDC_ISSUER,
    "CAPGOV_OIDC_CLIENT_ID": OIDC_RP_CLIENT_ID,
    "CAPGOV_OIDC_CLIENT_SECRET": OIDC_RP_CLIENT_SECRET,
    **_oidc_endpoints,
}
CAPGOV_OIDC_ENABLED = bool(
    OIDC_RP_CLIENT_ID
    and OIDC_RP_CLIENT_SECRET
    and (CAPGOV_OIDC_ISSUER or all(_oidc_endpoints.values()))
)
if any(_oidc_given.values()) and not CAPGOV_OIDC_ENABLED:
    _missing = [
        name
        for name in ("CAPGOV_OIDC_CLIENT_ID", "CAPGOV_OIDC_CLIENT_SECRET")
        if not _oidc_given[name]
    ]
    if not CAPGOV_OIDC_ISSUER:
        _missing += [name for name, value in _oidc_endpoints.items() if not value]
    raise ImproperlyConfigured(
        "Single sign-on is half configured: set "
        + ", ".join(_missing)
        + (" (or CAPGOV_OIDC_ISSUER instead of the endpoints)" if not CAPGOV_OIDC_ISSUER else "")
        + ", or unset every CAPGOV_OIDC_ variable to turn it off."
    )
OIDC_RP_SIGN_ALGO = env_str("CAPGOV_OIDC_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("CAPGOV_OIDC_SCOPES", "openid email profile")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = env_int("CAPGOV_OIDC_TIMEOUT_SECONDS", 10)
OIDC_CREATE_USER = env_bool("CAPGOV_OIDC_CREATE_USERS", True)
CAPGOV_OIDC_LABEL = env_str("CAPGOV_OIDC_LABEL", "Sign in with SSO")
CAPGOV_OIDC_GROUPS_CLAIM = env_str("CAPGOV_OIDC_GROUPS_CLAIM", "groups")
CAPGOV_OIDC_GROUP_ROLES = env_pairs("CAPGOV_OIDC_GROUP_ROLES")
CAPGOV_OIDC_GROUP_UNITS = env_pairs("CAPGOV_OIDC_GROUP_UNITS")
if CAPGOV_OIDC_GROUP_ROLES:
    from governance.choices import Role

    _unknown_roles = sorted({role for _, role in CAPGOV_OIDC_GROUP_ROLES} - set(Role.values))
    if _unknown_roles:
        raise ImproperlyConfigured(
            f"CAPGOV_OIDC_GROUP_ROLES names unknown roles {', '.join(_unknown_roles)}; "
            f"use {', '.join(Role.values)}."
        )

# --- Security -----------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Content-Security-Policy (django-csp): scripts only from our own static files, never inline
# (page scripts live in static/js/; the API docs use drf-spectacular's split view, which
# serves its start-up script as a file). Styles allow 'unsafe-inline' because plotly.js and
# Swagger UI insert <style> elements and style attributes at run time.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    # Load balancers probe over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# --- Logging ------------------------------------------------------------------------------
# One JSON object per line in production (time, level, logger, message, request_id, and for
# tasks task_name/task_id; see governance/observability.py), a plain line in development.
LOG_FORMAT = env_str("DJANGO_LOG_FORMAT", "json" if PRODUCTION else "plain")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"DJANGO_LOG_FORMAT={LOG_FORMAT!r}: use json or plain.")
# The cloud SDKs log request and response bodies at DEBUG (assumed-role credentials among
# them): observability.logging_config keeps them at WARNING, whatever DJANGO_LOG_LEVEL says.
LOGGING = observability.logging_config(fmt=LOG_FORMAT, level=env_str("DJANGO_LOG_LEVEL", "INFO"))
