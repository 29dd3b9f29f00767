"""Capgov settings, read only from the environment.

Without any variables set this is the embedded demo: a SQLite file under ``var/``, Celery
tasks run eagerly in-process and e-mail goes to the console. ``DJANGO_ENV=production``
turns on every deployment safeguard and refuses to start without a real secret key and
allowed hosts. See ``.env.example`` for each variable.
"""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
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
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "governance",
    "registry",
    "costs",
    "incidents",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "governance.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "governance.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Imports hold a write transaction for a few seconds; wait rather than fail.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

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

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
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

# --- E-mail -------------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
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

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PARSER_CLASSES": [
        "governance.api.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
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
    },
}

# --- Security -----------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    # The cloud SDKs log request and response bodies at DEBUG (assumed-role credentials
    # among them): they never go below INFO, whatever DJANGO_LOG_LEVEL says.
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        **{
            name: {"level": "WARNING"}
            for name in ("botocore", "boto3", "s3transfer", "urllib3", "google", "google_auth")
        },
    },
}
