"""The audit log's page and its CSV export: platform admins, finance and board members."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from governance.audit import (
    EXPORT_BATCH,
    AuditEntryFilterSet,
    audit_can_read,
    audit_csv,
    audit_entry_list,
    audit_record,
)

PAGE_SIZE = 50


def _entries(request: HttpRequest) -> tuple[AuditEntryFilterSet, QuerySet]:
    if not audit_can_read(request.user):
        raise PermissionDenied("The audit log is for platform admins, finance and board members.")
    filterset = AuditEntryFilterSet(
        request.GET or None, queryset=audit_entry_list(user=request.user), request=request
    )
    if filterset.is_bound and not filterset.is_valid():
        return filterset, filterset.queryset.none()  # a filter that cannot apply shows nothing
    return filterset, filterset.qs


@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    filterset, entries = _entries(request)
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "governance/audit_list.html",
        {
            "filter": filterset,
            "page": page,
            "filtered": any(request.GET.get(name) for name in filterset.filters),
            "export_query": query.urlencode(),
        },
    )


@require_GET
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """Every entry the filters select, as CSV, streamed; the export is itself recorded."""
    _filterset, entries = _entries(request)
    used = {name: value for name, value in request.GET.items() if value and name != "page"}
    exported = audit_record(
        kind="governance.auditentry.exported",
        summary="Exported the audit log"
        + (f" ({', '.join(f'{k}={v}' for k, v in sorted(used.items()))})" if used else ""),
        subject=request.user,
        actor=request.user,
        data={"filters": used},
    )
    response = StreamingHttpResponse(
        audit_csv(entries.exclude(pk=exported.pk).iterator(chunk_size=EXPORT_BATCH)),
        content_type="text/csv",
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="capgov-audit-{stamp}.csv"'
    return response
