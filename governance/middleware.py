from __future__ import annotations

import logging
import time

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as _LoginRequired
from django.http import HttpResponseBadRequest

from governance import observability

request_log = logging.getLogger("capgov.request")
# Probes from load balancers and monitors, and static files, would drown the log at INFO.
QUIET_PATHS = ("/healthz", "/readyz", "/metrics", "/favicon.ico")


class RequestIdMiddleware:
    """Give every request an id: the caller's ``X-Request-ID`` when it is sane, else a new one.

    It is held in a context variable while the request runs (log lines and the Celery tasks
    the request enqueues carry it), echoed on the response, and each request is logged once
    with its method, path, status and duration.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.quiet = (*QUIET_PATHS, settings.STATIC_URL or "/static/")

    def __call__(self, request):
        request_id = observability.request_id_accept(
            request.headers.get(observability.REQUEST_ID_HEADER)
        )
        request.request_id = request_id
        token = observability.request_id_var.set(request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[observability.REQUEST_ID_HEADER] = request_id
            request_log.log(
                logging.DEBUG if request.path_info.startswith(self.quiet) else logging.INFO,
                "%s %s %s",
                request.method,
                request.path_info,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path_info,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
            return response
        finally:
            observability.request_id_var.reset(token)


class RejectNulMiddleware:
    """A NUL in the URL or query string is never meaningful, and PostgreSQL text cannot
    hold it: answer 400 instead of failing deep inside a query."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.GET.lists()
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in query
        ):
            return HttpResponseBadRequest("The address contains a NUL character.")
        return self.get_response(request)


class LoginRequiredMiddleware(_LoginRequired):
    """Every page needs a signed-in person; the API authenticates itself (token or session).

    Pages open to anonymous visitors (login, health check) say so with
    ``django.contrib.auth.decorators.login_not_required``.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith(("/api/v1/", "/api/schema/")):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
