"""Plotly figures for the incident pages. Pure: plain data in, figure JSON out.

Float only here, at the plotly boundary.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal

import plotly.graph_objects as go

_BACKGROUND = {"paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"}
# The key moments drawn on the evidence charts, in the order they happen.
MOMENT_COLOURS = {
    "started": "#c0392b",
    "detected": "#e08a00",
    "mitigated": "#2856c7",
    "resolved": "#1e9e6a",
}


def evidence_line(
    points: Sequence[tuple[dt.datetime, Decimal]],
    *,
    metric: str,
    unit: str,
    moments: Mapping[str, dt.datetime | None],
) -> dict:
    """One metric over the incident, with its key moments (``MOMENT_COLOURS``) as dotted
    vertical lines."""
    fig = go.Figure()
    fig.add_scatter(
        x=[at.isoformat() for at, _ in points],
        y=[float(value) for _, value in points],
        mode="lines+markers",
        name=metric,
        hovertemplate=f"%{{y:,}} {unit}<extra>%{{x|%H:%M}} UTC</extra>",
        line_color="#2856c7",
        showlegend=False,
    )
    for label, colour in MOMENT_COLOURS.items():
        moment = moments.get(label)
        if moment is not None:
            fig.add_vline(
                x=moment.timestamp() * 1000,
                line_dash="dot",
                line_color=colour,
                annotation_text=label,
                annotation_position="top",
            )
    fig.update_layout(
        xaxis_title="Time (UTC)",
        xaxis_type="date",
        xaxis_tickformat="%H:%M\n%d %b",
        yaxis_title=f"{metric} ({unit})" if unit else metric,
        yaxis_tickformat=",~g",
        margin={"l": 70, "r": 20, "t": 30, "b": 60},
        height=260,
        **_BACKGROUND,
    )
    return json.loads(fig.to_json())


def incidents_per_month(per_month: Sequence[tuple[dt.date, int]]) -> dict:
    """Bars: how many incidents started in each month (UTC)."""
    fig = go.Figure()
    fig.add_bar(
        x=[month.strftime("%Y-%m") for month, _ in per_month],
        y=[count for _, count in per_month],
        hovertemplate="%{y} incidents<extra>%{x}</extra>",
        marker_color="#2856c7",
        showlegend=False,
    )
    fig.update_layout(
        xaxis_title="Month the incident started (UTC)",
        xaxis_type="category",
        yaxis_title="Incidents",
        yaxis_tickformat=",d",
        yaxis_rangemode="tozero",
        margin={"l": 70, "r": 20, "t": 20, "b": 60},
        height=280,
        **_BACKGROUND,
    )
    return json.loads(fig.to_json())
