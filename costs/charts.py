"""Plotly figures for cost pages. Pure: plain data in, figure JSON out (float only here)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal

import plotly.graph_objects as go

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
