"""Keyset pagination for lists too long to count or skip through."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from django.db.models import F, Model, QuerySet

# Django's own row comparisons (composite keys use them); SQLite gets the equivalent ORs.
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param

FORWARD, BACKWARD = "n", "p"


class KeysetPagination(CursorPagination):
    """Pages ordered by ``(key, id)``, whose cursor holds the ``(key, id)`` of the row the page
    continues after (``next``) or before (``previous``): every page is one range of the
    ``(key, id)`` index however deep it is, with no offset and no count.

    DRF's own cursor keeps its place by the first ordering field plus an offset capped at
    1000, so with more than that many rows sharing a key its ``next`` repeats pages and its
    ``previous`` comes back empty. The response keeps DRF's shape (``next``, ``previous``,
    ``results``), and so does the schema. A cursor is only base64: one that does not read as
    a direction, a key and an id is refused with 404, like DRF's.
    """

    key = "id"
    parse_key: Callable[[str], Any] = staticmethod(str)
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: Any = None
    ) -> list[Model]:
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        position = self._decode(request)
        key = self.key
        if position is None:
            direction = FORWARD
            rows = queryset.order_by(key, "id")
        else:
            # A row comparison, (key, id) > (value, pk): PostgreSQL reads it as a range of the
            # index (an OR of the two columns would be a filter over every row of the day).
            direction, value, pk = position
            keys = Tuple(F(key), F("id"))
            if direction == FORWARD:
                rows = queryset.filter(TupleGreaterThan(keys, (value, pk))).order_by(key, "id")
            else:
                rows = queryset.filter(TupleLessThan(keys, (value, pk)))
                rows = rows.order_by(f"-{key}", "-id")
        page = list(rows[: self.page_size + 1])
        more = len(page) > self.page_size
        page = page[: self.page_size]
        if direction == BACKWARD:
            page.reverse()
        self.page = page
        # Coming back from a later page, there is one after this; going on from an earlier
        # one, there is one before it (an empty page has nothing to go on from).
        self.has_next = bool(page) and (more if direction == FORWARD else True)
        self.has_previous = bool(page) and (more if direction == BACKWARD else position is not None)
        return page

    def get_next_link(self) -> str | None:
        return self._link(FORWARD, self.page[-1]) if self.has_next else None

    def get_previous_link(self) -> str | None:
        return self._link(BACKWARD, self.page[0]) if self.has_previous else None

    def _link(self, direction: str, row: Model) -> str:
        value = getattr(row, self.key)
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
        token = base64.urlsafe_b64encode(f"{direction}|{text}|{row.pk}".encode()).decode()
        return replace_query_param(self.base_url, self.cursor_query_param, token)

    def _decode(self, request: Request) -> tuple[str, Any, int] | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            direction, value, pk = base64.urlsafe_b64decode(encoded.encode()).decode().split("|")
            if direction not in (FORWARD, BACKWARD) or not 0 <= int(pk) < 2**63:
                raise ValueError(direction)
            return direction, self.parse_key(value), int(pk)
        except (binascii.Error, UnicodeError, ValueError):
            raise NotFound(self.invalid_cursor_message) from None
