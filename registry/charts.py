"""Plotly figures for the version comparison. Pure: plain data in, figure JSON out.

Float only here, at the plotly boundary; a version without a value gets no bar.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal

import plotly.graph_objects as go

_LAYOUT = {
    "margin": {"l": 70, "r": 20, "t": 30, "b": 60},
    "height": 340,
    "legend": {"orientation": "h", "y": -0.3},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
}
_COLOURS = {"p50": "#1e9e6a", "p95": "#e08a00", "p99": "#c0392b"}


def _floats(values: Sequence[Decimal | None]) -> list[float | None]:
    return [None if v is None else float(v) for v in values]


def version_bars(
    labels: Sequence[str], values: Sequence[Decimal | None], *, axis: str, hover: str
) -> dict:
    """One bar per version, e.g. throughput or cost per 1k requests."""
    fig = go.Figure()
    fig.add_bar(
        x=list(labels),
        y=_floats(values),
        hovertemplate=f"{hover}<extra>%{{x}}</extra>",
        marker_color="#2856c7",
        showlegend=False,
    )
    fig.update_layout(
        xaxis_title="Version",
        xaxis_type="category",
        yaxis_title=axis,
        yaxis_rangemode="tozero",
        **_LAYOUT,
    )
    return json.loads(fig.to_json())


def latency_bars(labels: Sequence[str], series: Mapping[str, Sequence[Decimal | None]]) -> dict:
    """Grouped latency percentiles per version, in milliseconds."""
    fig = go.Figure()
    for name, values in series.items():
        if all(v is None for v in values):
            continue
        fig.add_bar(
            name=name,
            x=list(labels),
            y=_floats(values),
            hovertemplate=f"{name} %{{y:,.1f}} ms<extra>%{{x}}</extra>",
            marker_color=_COLOURS.get(name),
        )
    fig.update_layout(
        barmode="group",
        xaxis_title="Version",
        xaxis_type="category",
        yaxis_title="Latency (ms)",
        yaxis_rangemode="tozero",
        showlegend=True,
        **_LAYOUT,
    )
    return json.loads(fig.to_json())
