"""Plotly figures for cost pages. Pure: plain data in, figure JSON out (float only here)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal

import plotly.graph_objects as go

from costs.tco import OPTION_LABELS

# A unit keeps its colour on every chart: picked from its code, Unallocated always red.
_PALETTE = (
    "#2856c7",
    "#1e9e6a",
    "#e08a00",
    "#7b4fc9",
    "#0f8fa8",
    "#c2417a",
    "#6b8e23",
    "#8c564b",
    "#4b6584",
    "#b8860b",
)
UNALLOCATED_COLOUR = "#c0392b"


def unit_colour(code: str) -> str:
    if code == "UNALLOCATED":
        return UNALLOCATED_COLOUR
    return _PALETTE[
        int(hashlib.md5(code.encode(), usedforsecurity=False).hexdigest(), 16) % len(_PALETTE)
    ]


_LAYOUT = {
    "margin": {"l": 70, "r": 20, "t": 30, "b": 50},
    "height": 360,
    "legend": {"orientation": "h", "y": -0.25},
    "showlegend": True,
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "hovermode": "x unified",
}


def daily_by_unit(
    series: Mapping[str, Mapping[dt.date, Decimal]], *, currency: str, title: str = ""
) -> dict:
    """Stacked daily bars, one trace per business unit."""
    days = sorted({day for points in series.values() for day in points})
    fig = go.Figure()
    for code in sorted(series, key=lambda c: (c == "UNALLOCATED", c)):
        points = series[code]
        fig.add_bar(
            name=code,
            x=[d.isoformat() for d in days],
            y=[float(points.get(d, 0)) for d in days],
            hovertemplate=f"%{{y:,.2f}} {currency}<extra>{code}</extra>",
            marker_color=unit_colour(code),
        )
    fig.update_layout(
        barmode="relative",
        title=title or None,
        xaxis_title="Usage day (UTC)",
        xaxis_type="date",
        xaxis_tickformat="%d %b",
        xaxis_dtick=86_400_000 * (1 if len(days) <= 10 else 7),
        yaxis_title=f"Cost ({currency})",
        yaxis_tickformat=",.2~f",
        yaxis_rangemode="tozero",
        **_LAYOUT,
    )
    return json.loads(fig.to_json())


def grouped_bars(
    labels: list[str], amounts: list[Decimal], *, currency: str, dimension: str
) -> dict:
    """One bar per group (cost explorer); dates as a line instead."""
    fig = go.Figure()
    is_time = dimension in {"usage_date", "billing_period"}
    if is_time:
        fig.add_scatter(
            x=labels,
            y=[float(a) for a in amounts],
            mode="lines+markers",
            name=currency,
            hovertemplate=f"%{{y:,.2f}} {currency}<extra></extra>",
        )
    else:
        fig.add_bar(
            x=labels,
            y=[float(a) for a in amounts],
            name=currency,
            hovertemplate=f"%{{y:,.2f}} {currency}<extra></extra>",
        )
    fig.update_layout(
        xaxis_title=dimension.replace("_", " ").capitalize(),
        yaxis_title=f"Cost ({currency})",
        yaxis_tickformat=",.2~f",
        yaxis_rangemode="tozero",
        **_LAYOUT,
    )
    return json.loads(fig.to_json())


def monthly_trend(series: Mapping[str, Mapping[dt.date, Decimal]], *, currency: str) -> dict:
    """Monthly spend per business unit as lines (dashboard)."""
    months = sorted({m for points in series.values() for m in points})
    fig = go.Figure()
    for code in sorted(series, key=lambda c: (c == "UNALLOCATED", c)):
        fig.add_scatter(
            name=code,
            x=[m.strftime("%Y-%m") for m in months],
            y=[float(series[code].get(m, 0)) for m in months],
            mode="lines+markers",
            hovertemplate=f"%{{y:,.2f}} {currency}<extra>{code}</extra>",
            line_color=unit_colour(code),
        )
    fig.update_layout(
        xaxis_title="Billing month",
        yaxis_title=f"Cost ({currency})",
        yaxis_tickformat=",.2~f",
        yaxis_rangemode="tozero",
        xaxis_type="category",
        **_LAYOUT,
    )
    return json.loads(fig.to_json())


_TCO_COLOURS = {"on_prem": "#1e9e6a", "cloud_on_demand": "#2856c7", "cloud_committed": "#e08a00"}


def tco_by_utilisation(
    curve: Mapping[str, list[Decimal]],
    *,
    currency: str,
    break_even_percent: Decimal | None,
    utilisation_percent: Decimal | None = None,
) -> dict:
    """Yearly cost of each option against utilisation (TCO), the break-even marked."""
    levels = [float(u) for u in curve["utilisation"]]
    fig = go.Figure()
    for key, name in OPTION_LABELS.items():
        if key not in curve:
            continue
        fig.add_scatter(
            name=name,
            x=levels,
            y=[float(v) for v in curve[key]],
            mode="lines",
            line_color=_TCO_COLOURS[key],
            hovertemplate=f"%{{y:,.2f}} {currency} a year<extra>{name}</extra>",
        )
    if break_even_percent is not None and break_even_percent <= 100:
        on_prem = float(curve["on_prem"][0])
        fig.add_scatter(
            name=f"Break-even {break_even_percent} %",
            x=[float(break_even_percent)],
            y=[on_prem],
            mode="markers",
            marker={"size": 12, "color": "#c0392b", "symbol": "diamond"},
            hovertemplate=(
                f"break-even at {break_even_percent} %: %{{y:,.2f}} {currency} a year"
                "<extra></extra>"
            ),
        )
        fig.add_vline(x=float(break_even_percent), line_dash="dot", line_color="#c0392b")
    if utilisation_percent is not None:
        fig.add_vline(x=float(utilisation_percent), line_dash="dash", line_color="#6b7480")
    fig.update_layout(
        xaxis_title="Utilisation (% of the year's hours)",
        xaxis_range=[0, 100],
        xaxis_ticksuffix=" %",
        yaxis_title=f"Cost a year ({currency})",
        yaxis_tickformat=",.2~f",
        yaxis_rangemode="tozero",
        **{**_LAYOUT, "hovermode": "closest"},
    )
    return json.loads(fig.to_json())


def forecast_chart(
    *,
    actuals: Mapping[dt.date, Decimal],
    points: Sequence[tuple[dt.date, Decimal, Decimal, Decimal]],
    anomalies: Sequence[tuple[dt.date, Decimal, str]] = (),
    events: Sequence[tuple[dt.date, dt.date, str]] = (),
    left_out: Sequence[tuple[dt.date, dt.date]] = (),
    label: str,
    interval_percent: Decimal,
    history_end: dt.date | None = None,
) -> dict:
    """Actuals, the expected line and its interval band, anomaly markers, event spans and the
    days left out. ``points`` are (day, expected, lower, upper); ``anomalies`` (day, actual,
    direction); ``label`` the measure with its unit, e.g. "Cost (USD)" or "GPU-hours"."""
    hover = "%{y:,.2f}"
    days = [d.isoformat() for d, *_ in points]
    interval = f"{interval_percent.normalize():f} % interval"
    fig = go.Figure()
    # The band: the upper bound, then the lower one filled up to it.
    fig.add_scatter(
        name=interval,
        x=days,
        y=[float(u) for *_, u in points],
        mode="lines",
        line={"width": 0, "color": "rgba(40,86,199,0.25)"},
        hovertemplate=f"{hover}<extra>upper</extra>",
        showlegend=False,
    )
    fig.add_scatter(
        name=interval,
        x=days,
        y=[float(lo) for _, _, lo, _ in points],
        mode="lines",
        fill="tonexty",
        fillcolor="rgba(40,86,199,0.15)",
        line={"width": 0, "color": "rgba(40,86,199,0.25)"},
        hovertemplate=f"{hover}<extra>lower</extra>",
    )
    fig.add_scatter(
        name="Expected",
        x=days,
        y=[float(e) for _, e, _, _ in points],
        mode="lines",
        line={"color": "#2856c7", "dash": "dot"},
        hovertemplate=f"{hover}<extra>expected</extra>",
    )
    seen = sorted(actuals)
    fig.add_scatter(
        name="Actual",
        x=[d.isoformat() for d in seen],
        y=[float(actuals[d]) for d in seen],
        mode="lines+markers",
        marker={"size": 4},
        line={"color": "#1f2933", "width": 1.5},
        hovertemplate=f"{hover}<extra>actual</extra>",
    )
    if anomalies:
        fig.add_scatter(
            name="Anomaly",
            x=[d.isoformat() for d, _, _ in anomalies],
            y=[float(v) for _, v, _ in anomalies],
            mode="markers",
            marker={"color": UNALLOCATED_COLOUR, "size": 11, "symbol": "x"},
            text=[direction for *_, direction in anomalies],
            hovertemplate=f"{hover}<extra>anomaly %{{text}}</extra>",
        )
    shapes, notes = [], []
    for first, last, name in events:
        shapes.append(_day_span(first, last, "rgba(30,158,106,0.12)"))
        notes.append(
            {
                "x": first.isoformat(),
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "text": name,
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "bottom",
                "font": {"size": 11, "color": "#1e7b34"},
            }
        )
    shapes += [_day_span(first, last, "rgba(120,120,120,0.15)") for first, last in left_out]
    if history_end is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": history_end.isoformat(),
                "x1": history_end.isoformat(),
                "y0": 0,
                "y1": 1,
                "line": {"color": "#5f6b7a", "width": 1, "dash": "dash"},
            }
        )
    fig.update_layout(
        xaxis_title="Day (UTC)",
        xaxis_type="date",
        xaxis_tickformat="%d %b",
        yaxis_title=label,
        yaxis_tickformat=",.2~f",
        yaxis_rangemode="tozero",
        shapes=shapes,
        annotations=notes,
        **_LAYOUT,
    )
    return json.loads(fig.to_json())


def _day_span(first: dt.date, last: dt.date, colour: str) -> dict:
    """A shaded stretch of whole days, ``first`` to ``last`` included."""
    return {
        "type": "rect",
        "xref": "x",
        "yref": "paper",
        "x0": first.isoformat(),
        "x1": (last + dt.timedelta(days=1)).isoformat(),
        "y0": 0,
        "y1": 1,
        "fillcolor": colour,
        "line": {"width": 0},
        "layer": "below",
    }
