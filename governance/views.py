"""Pages of the project itself: the health check."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache


@login_not_required
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Database and broker reachability, for load balancers and monitors."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means unhealthy; say which
        checks["database"] = f"error: {type(exc).__name__}"
    if settings.CELERY_TASK_ALWAYS_EAGER:
        checks["broker"] = "eager (no broker configured)"
    else:
        from governance.celery import app

        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            checks["broker"] = "ok"
        except Exception as exc:  # same: report, don't raise
            checks["broker"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" or v.startswith("eager") for v in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503
    )
