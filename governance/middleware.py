from __future__ import annotations

from django.contrib.auth.middleware import LoginRequiredMiddleware as _LoginRequired


class LoginRequiredMiddleware(_LoginRequired):
    """Every page needs a signed-in person; the API authenticates itself (token or session).

    Pages open to anonymous visitors (login, health check) say so with
    ``django.contrib.auth.decorators.login_not_required``.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith(("/api/v1/", "/api/schema/")):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
