from __future__ import annotations

from django.contrib.auth.middleware import LoginRequiredMiddleware as _LoginRequired
from django.http import HttpResponseBadRequest


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
