"""Gunicorn settings for Capgov's web process, read from the environment.

    gunicorn -c deploy/gunicorn.conf.py

GUNICORN_BIND (default 127.0.0.1:8000; 0.0.0.0:8000 in the container), GUNICORN_WORKERS
(default 2 x cores + 1), GUNICORN_THREADS (default 4), GUNICORN_TIMEOUT (seconds, default
120: large uploads stream through the worker), GUNICORN_CONTROL_SOCKET (a path for
``gunicornc``; default off). Gunicorn's own FORWARDED_ALLOW_IPS names the
proxies whose X-Forwarded-* headers are trusted. Requests are logged once by Django
(``governance.middleware.RequestIdMiddleware``, with their request id), so gunicorn's access
log is off; its own messages use the same format as the app (``DJANGO_LOG_FORMAT``).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from governance.observability import logging_config  # noqa: E402 - needs ROOT on the path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name}={raw!r} is not a whole number.") from exc
    if value < 1:
        raise SystemExit(f"{name}={raw!r} must be at least 1.")
    return value


wsgi_app = "governance.wsgi:application"
chdir = str(ROOT)
bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
workers = _int("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1)
threads = _int("GUNICORN_THREADS", 4)
worker_class = "gthread" if threads > 1 else "sync"
timeout = _int("GUNICORN_TIMEOUT", 120)
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so a slow leak never grows without bound.
max_requests = 1000
max_requests_jitter = 100

# Gunicorn's control socket defaults to one path per user ($HOME/.gunicorn), which two
# servers on one machine would share: off unless GUNICORN_CONTROL_SOCKET names a path.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

accesslog = None
errorlog = "-"
loglevel = os.environ.get("DJANGO_LOG_LEVEL", "INFO").lower()
_production = os.environ.get("DJANGO_ENV", "development") == "production"
_format = os.environ.get("DJANGO_LOG_FORMAT") or ("json" if _production else "plain")
logconfig_dict = logging_config(fmt=_format, level=loglevel)
# Gunicorn's own loggers go through the app's handler; its access log stays silent.
logconfig_dict["loggers"].update(
    {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
    }
)


def child_exit(server, worker) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (several workers' request metrics added up on /metrics),
    a worker that exits must have its live gauges dropped."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
