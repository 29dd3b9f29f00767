"""Daily rows posted as a JSON list or as a CSV file, and the month filter of their lists.

Shared by ``/slo-measurements/`` and ``/pool-usage/``: one way to post, one way to filter.
"""

from __future__ import annotations

import calendar
from datetime import date

import django_filters
from django.core.validators import RegexValidator
from django.db.models import QuerySet
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.request import Request

from governance.exceptions import DomainError
from governance.uploads import TEXT, UploadKind, upload_check

MAX_CSV_BYTES = 20 * 1024 * 1024
ROWS_CSV = UploadKind(
    label="CSV of daily rows",
    extensions={".csv": TEXT},
    described="a UTF-8 CSV file (.csv)",
    fix="Save the rows as CSV UTF-8 (one row per line, comma-separated) and upload that file, "
    "or post them as a JSON list.",
    too_large="Split it by month and post each month's file.",
)
MONTH = RegexValidator(
    r"^(19[7-9]\d|2[01]\d\d)-(0[1-9]|1[0-2])$", "Give the month as YYYY-MM, e.g. 2026-10."
)

RowsStoredSerializer = inline_serializer("RowsStored", {"stored": serializers.IntegerField()})


class CsvUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A CSV file (UTF-8, header row optional).")


def rows_posted(request: Request, *, columns: str) -> list | bytes:
    """The JSON list of rows posted, or the bytes of the CSV file in the field ``file``."""
    if isinstance(request.data, list):
        return request.data
    if request.content_type.startswith(("multipart/form-data", "application/x-www-form")):
        upload = CsvUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        file = upload.validated_data["file"]
        upload_check(upload=file, kind=ROWS_CSV, max_bytes=MAX_CSV_BYTES)
        return file.read()
    raise DomainError(
        f"Send a JSON list of rows ({columns}), or a CSV file in the multipart field file."
    )


class MonthFilter(django_filters.CharFilter):
    """``month=2026-10``: the rows of that month's days."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("label", "Month (YYYY-MM)")
        super().__init__(field_name="day", validators=[MONTH], **kwargs)

    def filter(self, qs: QuerySet, value: str) -> QuerySet:
        if not value:
            return qs
        year, month = int(value[:4]), int(value[5:7])
        last = calendar.monthrange(year, month)[1]
        return qs.filter(day__range=(date(year, month, 1), date(year, month, last)))
