"""Chargeback statement pages: the months, a month's statements, one statement, the
reconciliation, exports, and finance's publish / close buttons. Thin: the rules are in
:mod:`costs.chargeback`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from costs import chargeback, inference, selectors
from costs.models import ChargebackPeriod
from costs.statement_exports import STATEMENT_EXPORTS
from governance.exceptions import DomainError, PermissionDeniedError
from governance.permissions import cost_manager_required
from governance.selectors import business_unit_list, manages_costs

MONTHS_SHOWN = 12


def _month(raw: str) -> dt.date:
    try:
        return selectors.month_parse(raw)
    except ValueError as exc:
        raise Http404(str(exc)) from exc


def _months(periods) -> list[dt.date]:
    """Months with costs or statements, and the month after the last closed one (it carries
    the closed months' adjustments, bill or not), newest first."""
    months = set(selectors.chargeback_months(user=None)[:MONTHS_SHOWN]) | set(periods)
    closed = [m for m, p in periods.items() if p.status == "closed"]
    if closed:
        months.add(chargeback.month_next(max(closed)))
    return sorted(months, reverse=True)[:MONTHS_SHOWN]


def statement_months(request: HttpRequest) -> HttpResponse:
    """Months with costs or statements, newest first, with their status."""
    periods = {
        p.month: p for p in ChargebackPeriod.objects.select_related("published_by", "closed_by")
    }
    months = _months(periods)
    rows = [{"month": month, "period": periods.get(month)} for month in months]
    if not manages_costs(request.user):
        rows = [r for r in rows if r["period"] and r["period"].status != "draft"]
    return render(request, "costs/statement_months.html", {"rows": rows})


def statement_month(request: HttpRequest, month: str) -> HttpResponse:
    """A month's statements: finance sees every unit (drafts too); others their own."""
    period_month = _month(month)
    result = chargeback.statements_get(user=request.user, month=period_month)
    context = {
        "month": period_month,
        "result": result,
        "exports": STATEMENT_EXPORTS,
        "finance": manages_costs(request.user),
        "alert_percent": Decimal(settings.CAPGOV_UNALLOCATED_ALERT_PERCENT),
    }
    if context["finance"] and not result.error:
        context["reconciliation"] = chargeback.reconciliation(
            month=period_month, user=request.user, result=result
        )
    return render(request, "costs/statement_month.html", context)


def statement_detail(request: HttpRequest, month: str, code: str) -> HttpResponse:
    """One unit's statement: each line and how it was computed, and its endpoints' cost per
    inference (the drill-down)."""
    period_month = _month(month)
    units = business_unit_list(user=request.user)
    unit = (
        units.filter(code=code.upper()).first()
        or units.filter(
            statements__period__month=period_month, statements__unit_code=code.upper()
        ).first()
    )  # a link mailed before the unit was renamed
    if unit is None:
        raise Http404(f"No business unit {code!r} that you can see.")
    result = chargeback.statements_get(user=request.user, month=period_month)
    statements = [
        (currency, s)
        for currency, cur in result.currencies.items()
        for s in cur.statements
        if s.unit.id == unit.pk
    ]
    if not statements:
        raise Http404(
            f"{unit.name} has no statement for {period_month:%B %Y}"
            + (" yet: finance has not published it." if result.is_draft else ".")
        )
    endpoints = inference.endpoint_inference_list(
        user=request.user, month=period_month, basis=result.basis, business_unit_id=unit.pk
    )
    predicted = {
        line.version.pk: line.predicted_per_1k
        for line in inference.version_inference_list(endpoints=endpoints)
    }
    drill_down = [
        {"line": e, "predicted": predicted.get(e.endpoint.model_version_id)}
        for e in endpoints
        if e.cost is not None or e.invocations
    ]
    return render(
        request,
        "costs/statement_detail.html",
        {
            "month": period_month,
            "unit": unit,
            # As the statement has it: a closed month keeps the name it was published with.
            "unit_name": statements[0][1].unit.name,
            "result": result,
            "statements": statements,
            "endpoints": drill_down,
            "finance": manages_costs(request.user),
        },
    )


def statement_export(request: HttpRequest, month: str) -> HttpResponse:
    period_month = _month(month)
    fmt = request.GET.get("format", "csv")
    export = STATEMENT_EXPORTS.get(fmt)
    if export is None:
        raise Http404(f"Export format {fmt!r} is not one of {', '.join(STATEMENT_EXPORTS)}.")
    result = chargeback.statements_get(user=request.user, month=period_month)
    if result.error:
        raise Http404(result.error)
    if not result.currencies:
        raise Http404(f"No statements of {period_month:%B %Y} that you can see.")
    body = export.render(result)
    response = (
        StreamingHttpResponse(body, content_type=export.content_type)
        if export.streamed
        else HttpResponse(body, content_type=export.content_type)
    )
    response["Content-Disposition"] = f'attachment; filename="{export.file_name(period_month)}"'
    return response


@cost_manager_required
def reconciliation(request: HttpRequest) -> HttpResponse:
    """Per month and currency: the month's total against Σ statements + Unallocated."""
    months = _months({p.month: p for p in ChargebackPeriod.objects.all()})
    rows = []
    errors = {}
    for month in months:
        result = chargeback.statements_get(user=None, month=month)
        if result.error:
            errors[month] = result.error
            continue
        rows.extend(chargeback.reconciliation(month=month, user=request.user, result=result))
    return render(request, "costs/reconciliation.html", {"rows": rows, "errors": errors})


def _transition(request: HttpRequest, month: str, action, done: str) -> HttpResponse:
    period_month = _month(month)
    try:
        action(month=period_month, by=request.user)
    except PermissionDeniedError as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done.format(month=f"{period_month:%B %Y}"))
    return redirect("costs:statements", month=f"{period_month:%Y-%m}")


@require_POST
def statement_publish(request: HttpRequest, month: str) -> HttpResponse:
    return _transition(
        request,
        month,
        chargeback.period_publish,
        "{month} is published; each business unit's owner is e-mailed a link to their statement.",
    )


@require_POST
def statement_unpublish(request: HttpRequest, month: str) -> HttpResponse:
    return _transition(request, month, chargeback.period_unpublish, "{month} is back to draft.")


@require_POST
def statement_close(request: HttpRequest, month: str) -> HttpResponse:
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Tick the box to confirm: a closed month never changes.")
        return redirect("costs:statements", month=month)
    return _transition(
        request,
        month,
        chargeback.period_close,
        "{month} is closed. Its statements never change; late data becomes adjustments in the "
        "next open month.",
    )
