"""Rate limits: sign-in lockouts (django-axes), e-mailed links and failing API clients.

Counters for links and the API live in the cache, in fixed windows per client address: the
first request of a window starts it, and ``Retry-After`` says when it ends. A cache that does
not answer (Redis stopped) lets requests through rather than refuse everyone: these limits
slow down abuse, they are not what keeps a link or a token safe (signatures and expiry are).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from governance.audit import client_address

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


def client_ip(request: HttpRequest) -> str:
    """The client's address, read as the audit log reads it (``CAPGOV_TRUSTED_PROXIES``)."""
    return client_address(request) or "unknown"


def duration_text(seconds: int) -> str:
    """``600`` -> ``10 minutes``; ``90`` -> ``2 minutes``; ``45`` -> ``45 seconds``."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 3600 or seconds % 3600:
        minutes = math.ceil(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = seconds // 3600
    return f"{hours} hour{'s' if hours != 1 else ''}"


@dataclass(frozen=True)
class Window:
    """One client's counter in the current window of a rate."""

    key: str
    retry_after: int  # seconds until this window ends


def _window(*, scope: str, ident: str, seconds: int, now: float) -> Window:
    bucket = int(now // seconds)
    retry_after = max(1, math.ceil((bucket + 1) * seconds - now))
    return Window(key=f"throttle:{scope}:{bucket}:{ident}", retry_after=retry_after)


def throttle_count(*, scope: str, ident: str, rate: tuple[int, int]) -> int | None:
    """Count one request; the seconds to wait if it is over the limit, else None."""
    limit, seconds = rate
    window = _window(scope=scope, ident=ident, seconds=seconds, now=time.time())
    try:
        # add() starts the window's counter (a no-op when it exists); incr() is atomic.
        cache.add(window.key, 0, timeout=seconds + 1)
        try:
            count = cache.incr(window.key)
        except ValueError:  # expired between the two calls
            cache.set(window.key, 1, timeout=seconds + 1)
            count = 1
    except Exception:  # a cache that does not answer must not take the pages down
        logger.warning("rate limit %s not applied: the cache did not answer", scope, exc_info=True)
        return None
    return window.retry_after if count > limit else None


def throttle_peek(*, scope: str, ident: str, rate: tuple[int, int]) -> int | None:
    """The seconds to wait if the limit is already reached, without counting a request."""
    limit, seconds = rate
    window = _window(scope=scope, ident=ident, seconds=seconds, now=time.time())
    try:
        count = cache.get(window.key, 0)
    except Exception:
        logger.warning("rate limit %s not applied: the cache did not answer", scope, exc_info=True)
        return None
    return window.retry_after if count >= limit else None


def limited_response(
    request: HttpRequest, *, title: str, message: str, retry_after: int | None, status: int = 429
) -> HttpResponse:
    """The page that says what was refused, why and when to try again."""
    retry_at = (
        timezone.now() + dt.timedelta(seconds=retry_after) if retry_after is not None else None
    )
    response = render(
        request,
        "governance/limited.html",
        {
            "title": title,
            "message": message,
            "retry_at": retry_at,
            "retry_in": duration_text(retry_after) if retry_after is not None else "",
        },
        status=status,
    )
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


# --- e-mailed links -----------------------------------------------------------------------


def link_throttle(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """At most ``CAPGOV_LINK_RATE`` requests to e-mailed links per client address.

    The count comes first: a refused request never reads its token, so the answer is the
    same for a good, a used and a forged link, and the link is still there afterwards.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        rate = settings.CAPGOV_LINK_RATE
        wait = throttle_count(scope="link", ident=client_ip(request), rate=rate) if rate else None
        if wait is None:
            return view(request, *args, **kwargs)
        limit, seconds = rate
        return limited_response(
            request,
            title="Too many link requests",
            message=(
                f"Your address opened more than {limit} e-mailed links in "
                f"{duration_text(seconds)}, so Capgov is pausing them for a while. The link "
                "itself is untouched: nothing was read, used or changed, and it works again "
                "after the wait (unless it expires first)."
            ),
            retry_after=wait,
        )

    return wrapper


# --- sign-in ------------------------------------------------------------------------------


class LoginLockoutBackend(AxesStandaloneBackend):
    """Axes' check that a username and address are not locked out, before any password.

    Without a request (the test client's ``login()``, a shell) there is no address to count
    or to lock, so it steps aside; every sign-in page passes its request.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def login_locked_out(request: HttpRequest, original_response=None, credentials=None):
    """Axes' lockout answer: the sign-in page with what happened and when to retry, 429."""
    from governance.auth_oidc import login_context

    wait = int(settings.AXES_COOLOFF_TIME.total_seconds())
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    response = render(
        request,
        "registration/login.html",
        {
            **login_context(request),
            "form": AuthenticationForm(request, initial={"username": username}),
            "next": request.POST.get("next") or request.GET.get("next", ""),
            "locked_out": {
                "username": username,
                "failures": settings.AXES_FAILURE_LIMIT,
                "minutes": math.ceil(wait / 60),
                "retry_at": timezone.now() + dt.timedelta(seconds=wait),
            },
        },
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


# --- the API ------------------------------------------------------------------------------


class ApiAuthFailureThrottleMiddleware:
    """Counts API answers of 401 (no, a wrong or an expired token) per client address; past
    ``CAPGOV_API_AUTH_FAILURE_RATE`` the address gets 429 until the window ends.

    It looks only at the status, so it holds whatever authentication classes the API uses.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rate = settings.CAPGOV_API_AUTH_FAILURE_RATE
        if rate is None or not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        ip = client_ip(request)
        wait = throttle_peek(scope="api-auth", ident=ip, rate=rate)
        if wait is not None:
            limit, seconds = rate
            response = JsonResponse(
                {
                    "detail": (
                        f"More than {limit} requests from your address failed to authenticate "
                        f"in {duration_text(seconds)}; try again in {duration_text(wait)}. "
                        "Send a valid token as 'Authorization: Token <key>'."
                    )
                },
                status=429,
            )
            response["Retry-After"] = str(wait)
            return response
        response = self.get_response(request)
        if response.status_code == 401:
            throttle_count(scope="api-auth", ident=ip, rate=rate)
        return response
