"""Request middleware of the cost app."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from costs.selectors import stamps_read_once

READS = frozenset({"GET", "HEAD"})


class CostStampsMiddleware:
    """A request that only reads (GET, HEAD) reads the cost stamps once, however many cached
    sums its page or API answer asks for; one that writes reads them afresh each time."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in READS:
            return self.get_response(request)
        with stamps_read_once():
            return self.get_response(request)
