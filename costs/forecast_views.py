"""Forecast pages: the forecasts with their outlook, one forecast's chart with its anomalies,
events and left-out days, the anomalies, and the business-event calendar.

Reads go through the scoped selectors of ``costs.forecasts`` (the cost scope: a unit's people
see their units' forecasts, their endpoints' and the pools they run; finance and platform
admins all; the board every pool's); writes call one service each and redirect.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from costs import charts, forecasts
from costs.filters import BusinessEventFilterSet, CostAnomalyFilterSet, ForecastFilterSet
from costs.models import BusinessEvent, CostAnomaly, EventKind, Forecast, Measure
from governance.exceptions import DomainError
from governance.money import money_format

PAGE_SIZE = 50
CHART_HISTORY_DAYS = 120  # history shown on a forecast's chart, before the days ahead


def figure(value: Decimal | None, forecast: Forecast) -> str:
    """A forecast's value as text: money in its currency, or GPU-hours."""
    if value is None:
        return "—"
    if forecast.measure == Measure.COST:
        return money_format(value, forecast.currency)
    return f"{value.quantize(Decimal('0.1')):,} GPU-h"


def subject_label(row) -> str:
    """The subject of a forecast, event or exclusion; the organisation when none."""
    if row.business_unit_id:
        return f"{row.business_unit.code} · {row.business_unit.name}"
    if row.pool_id:
        return f"Pool {row.pool}"
    if row.endpoint_id:
        return f"Endpoint {row.endpoint}"
    return "Whole organisation"


def measure_label(forecast: Forecast) -> str:
    if forecast.measure == Measure.COST:
        return f"Cost ({forecast.currency})"
    return "GPU-hours"


def _anomaly_line(anomaly: CostAnomaly, forecast: Forecast) -> dict:
    return {
        "row": anomaly,
        "actual": figure(anomaly.actual, forecast),
        "expected": figure(anomaly.expected, forecast),
        "interval": f"{figure(anomaly.lower, forecast)} to {figure(anomaly.upper, forecast)}",
        "size": figure(anomaly.size, forecast),
    }


def _filtered(request: HttpRequest, filterset_class, base):
    filterset = filterset_class(request.GET or None, queryset=base)
    if filterset.is_bound and not filterset.is_valid():
        return filterset, base.none()
    return filterset, (filterset.qs if filterset.is_bound else base)


# --- Forecasts -----------------------------------------------------------------------------------


def forecast_list(request: HttpRequest) -> HttpResponse:
    """Every forecast the person may read, with its next 30 and 90 days."""
    # Units first, then pools, then endpoints (the kinds' codes sort the other way).
    base = forecasts.forecast_list(user=request.user).order_by(
        "-kind", "business_unit__code", "pool__code", "endpoint__name", "measure", "currency", "pk"
    )
    filterset, rows = _filtered(request, ForecastFilterSet, base)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    today = timezone.now().date()
    outlook = forecasts.outlooks(page.object_list, today=today)
    lines = []
    for forecast in page.object_list:
        ahead = outlook[forecast.pk]
        lines.append(
            {
                "forecast": forecast,
                "subject": subject_label(forecast),
                "measure": measure_label(forecast),
                "next_30": figure(ahead.next_30, forecast),
                "next_90": figure(ahead.next_90, forecast),
                "range_90": (
                    f"{figure(ahead.lower_90, forecast)} to {figure(ahead.upper_90, forecast)}"
                    if ahead.lower_90 is not None
                    else "—"
                ),
                "anomalies": ahead.anomalies,
            }
        )
    return render(
        request,
        "costs/forecast_list.html",
        {
            "filter": filterset,
            "page": page,
            "lines": lines,
            "today": today,
            "filtered": any(request.GET.get(name) for name in ForecastFilterSet.base_filters),
        },
    )


class ExclusionForm(forms.Form):
    starts_on = forms.DateField(label="First day", widget=forms.DateInput(attrs={"type": "date"}))
    ends_on = forms.DateField(label="Last day", widget=forms.DateInput(attrs={"type": "date"}))
    reason = forms.CharField(
        max_length=300, help_text="Why these days are not typical, e.g. the outage of 12 Nov."
    )


def _chart(forecast: Forecast, points, anomalies, events, exclusions) -> dict:
    now = timezone.now()
    window = forecasts.Window.ending(now)
    first_shown = (forecast.history_end or window.last) - dt.timedelta(days=CHART_HISTORY_DAYS)
    actuals = {
        day: value
        for day, value in forecasts.series_of(window, forecasts.key_of(forecast)).items()
        if day >= first_shown
    }
    shown = [p for p in points if p.day >= first_shown]
    last_shown = shown[-1].day if shown else window.last
    return {
        "id": f"forecast-{forecast.pk}",
        "currency": measure_label(forecast),
        "figure": charts.forecast_chart(
            actuals=actuals,
            points=[(p.day, p.expected, p.lower, p.upper) for p in shown],
            anomalies=[(a.day, a.actual, a.direction) for a in anomalies if a.day >= first_shown],
            events=[
                (max(e.starts_on, first_shown), min(e.ends_on, last_shown), e.name)
                for e in events
                if e.ends_on >= first_shown and e.starts_on <= last_shown
            ],
            left_out=[
                (max(x.starts_on, first_shown), min(x.ends_on, last_shown))
                for x in exclusions
                if x.ends_on >= first_shown and x.starts_on <= last_shown
            ],
            label=measure_label(forecast),
            interval_percent=forecast.interval_percent,
            history_end=forecast.history_end,
        ),
    }


@require_http_methods(["GET", "POST"])
def forecast_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One forecast: the chart, its anomalies and events, and the form to leave days out."""
    forecast = get_object_or_404(forecasts.forecast_list(user=request.user), pk=pk)
    subject = {forecasts.FIELD[forecast.kind]: forecast.subject}
    may_manage = forecasts.may_manage(user=request.user, **subject)
    form = ExclusionForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if not may_manage:
            raise PermissionDenied(
                "Finance, platform admins and the unit's owner leave days out of its forecasts."
            )
        status = 400
        if form.is_valid():
            try:
                forecasts.exclusion_add(by=request.user, **form.cleaned_data, **subject)
            except DomainError as exc:
                form.add_error(None, exc.message)
                status = exc.http_status
            else:
                messages.success(
                    request,
                    f"{form.cleaned_data['starts_on']} to {form.cleaned_data['ends_on']} will "
                    "be left out of this subject's forecasts from their next refresh.",
                )
                return redirect("costs:forecast-detail", pk=forecast.pk)
    points = list(forecast.points.order_by("day"))
    anomalies = list(forecast.anomalies.order_by("-day"))
    events = list(forecasts.events_for_forecast(forecast).order_by("starts_on", "pk"))
    exclusions = list(forecasts.exclusions_for_forecast(forecast).order_by("-starts_on", "pk"))
    ahead = [p for p in points if forecast.history_end and p.day > forecast.history_end]
    return render(
        request,
        "costs/forecast_detail.html",
        {
            "forecast": forecast,
            "subject": subject_label(forecast),
            "measure": measure_label(forecast),
            "interval": f"{forecast.interval_percent.normalize():f}",
            "chart": _chart(forecast, points, anomalies, events, exclusions),
            "anomalies": [_anomaly_line(a, forecast) for a in anomalies],
            "events": [{"row": e, "subject": subject_label(e)} for e in events],
            "exclusions": [
                {
                    "row": x,
                    "subject": subject_label(x),
                    "may_delete": forecasts.may_manage(
                        user=request.user,
                        business_unit=x.business_unit,
                        pool=x.pool,
                        endpoint=x.endpoint,
                    ),
                }
                for x in exclusions
            ],
            "ahead_total": figure(sum((p.expected for p in ahead), Decimal(0)), forecast)
            if ahead
            else "—",
            "ahead_days": len(ahead),
            "low_total": figure(sum((p.low_quantile or 0 for p in ahead), Decimal(0)), forecast)
            if ahead
            else "—",
            "may_manage": may_manage,
            "form": form,
        },
        status=status,
    )


@require_POST
def exclusion_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Take left-out days back into the forecasts."""
    exclusion = get_object_or_404(forecasts.exclusion_list(user=request.user), pk=pk)
    try:
        forecasts.exclusion_delete(exclusion=exclusion, by=request.user)
    except DomainError as exc:
        raise PermissionDenied(exc.message) from exc
    messages.success(
        request,
        f"{exclusion.starts_on} to {exclusion.ends_on} count again from the next refresh.",
    )
    back = request.POST.get("forecast", "")
    if back.isdigit():
        return redirect("costs:forecast-detail", pk=int(back))
    return redirect("costs:forecast-list")


# --- Anomalies -----------------------------------------------------------------------------------


def anomaly_list(request: HttpRequest) -> HttpResponse:
    """The days that fell outside their forecast's interval, newest first."""
    filterset, rows = _filtered(
        request, CostAnomalyFilterSet, forecasts.anomaly_list(user=request.user)
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    lines = [
        {
            **_anomaly_line(a, a.forecast),
            "subject": subject_label(a.forecast),
            "measure": measure_label(a.forecast),
        }
        for a in page.object_list
    ]
    return render(
        request,
        "costs/anomaly_list.html",
        {
            "filter": filterset,
            "page": page,
            "lines": lines,
            "filtered": any(request.GET.get(name) for name in CostAnomalyFilterSet.base_filters),
        },
    )


# --- Business events -----------------------------------------------------------------------------


class EventForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=EventKind.choices, initial=EventKind.LAUNCH)
    starts_on = forms.DateField(label="First day", widget=forms.DateInput(attrs={"type": "date"}))
    ends_on = forms.DateField(label="Last day", widget=forms.DateInput(attrs={"type": "date"}))
    uplift_percent = forms.DecimalField(
        label="Expected uplift (%)",
        max_digits=7,
        decimal_places=2,
        help_text="How much higher the days are, e.g. 25; negative for a drop, e.g. -15.",
    )
    business_unit = forms.ModelChoiceField(queryset=None, required=False, label="Business unit")
    pool = forms.ModelChoiceField(queryset=None, required=False, label="Shared pool")
    endpoint = forms.ModelChoiceField(queryset=None, required=False, label="Endpoint")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["business_unit"].queryset = forecasts.manageable_units(user=user)
        self.fields["pool"].queryset = forecasts.manageable_pools(user=user)
        self.fields["endpoint"].queryset = forecasts.manageable_endpoints(user=user)
        self.fields["business_unit"].help_text = (
            "At most one of unit, pool and endpoint; none applies the event to every forecast "
            "(finance and platform admins)."
        )

    @classmethod
    def for_event(cls, event: BusinessEvent, *, user, data=None) -> EventForm:
        initial = {
            name: getattr(event, name)
            for name in (
                "name",
                "kind",
                "starts_on",
                "ends_on",
                "uplift_percent",
                "business_unit",
                "pool",
                "endpoint",
                "notes",
            )
        }
        return cls(data, user=user, initial=initial)


def event_list(request: HttpRequest) -> HttpResponse:
    """The business-event calendar: what is expected to move spend, and by how much."""
    filterset, rows = _filtered(
        request,
        BusinessEventFilterSet,
        forecasts.event_list(user=request.user).order_by("-starts_on", "name", "pk"),
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    lines = [
        {
            "row": e,
            "subject": subject_label(e),
            "may_manage": forecasts.may_manage(
                user=request.user, business_unit=e.business_unit, pool=e.pool, endpoint=e.endpoint
            ),
        }
        for e in page.object_list
    ]
    return render(
        request,
        "costs/event_list.html",
        {
            "filter": filterset,
            "page": page,
            "lines": lines,
            "may_create": forecasts.event_may_create(user=request.user),
            "filtered": any(request.GET.get(n) for n in BusinessEventFilterSet.base_filters),
        },
    )


def _event_save(request: HttpRequest, form: EventForm, event: BusinessEvent | None):
    try:
        return forecasts.event_save(by=request.user, event=event, **form.cleaned_data), 200
    except DomainError as exc:
        form.add_error(None, exc.message)
        return None, exc.http_status


@require_http_methods(["GET", "POST"])
def event_create(request: HttpRequest) -> HttpResponse:
    if not forecasts.event_may_create(user=request.user):
        raise PermissionDenied(
            "Business events are set by finance, platform admins and business-unit owners."
        )
    form = EventForm(request.POST or None, user=request.user)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            event, status = _event_save(request, form, None)
            if event is not None:
                messages.success(request, f"Event {event.name} saved.")
                return redirect("costs:event-list")
    return render(request, "costs/event_form.html", {"form": form}, status=status)


def _event_editable(request: HttpRequest, pk: int) -> BusinessEvent:
    event = get_object_or_404(forecasts.event_list(user=request.user), pk=pk)
    if not forecasts.may_manage(
        user=request.user,
        business_unit=event.business_unit,
        pool=event.pool,
        endpoint=event.endpoint,
    ):
        raise PermissionDenied(
            "Finance, platform admins and the owner of the unit concerned change this event."
        )
    return event


@require_http_methods(["GET", "POST"])
def event_update(request: HttpRequest, pk: int) -> HttpResponse:
    event = _event_editable(request, pk)
    form = EventForm.for_event(event, user=request.user, data=request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            saved, status = _event_save(request, form, event)
            if saved is not None:
                messages.success(request, f"Event {saved.name} updated.")
                return redirect("costs:event-list")
    return render(request, "costs/event_form.html", {"form": form, "event": event}, status=status)


@require_POST
def event_delete(request: HttpRequest, pk: int) -> HttpResponse:
    event = _event_editable(request, pk)
    name = event.name
    forecasts.event_delete(event=event, by=request.user)
    messages.success(request, f"Event {name} deleted; the forecasts ahead no longer carry it.")
    return redirect(reverse("costs:event-list"))
