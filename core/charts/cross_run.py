"""The History page's chart: each variant's latency across saved runs (machines), one colour per run."""

from __future__ import annotations

import html

import plotly.graph_objects as go

from .common import empty_figure, point_words, style_figure
from .report_access import default_point, latency_at, ok_results

RUN_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]


def run_label(report: dict) -> str:
    env = report.get("environment") or {}
    cpu = str(env.get("cpu") or "unknown CPU")
    cpu = html.escape(cpu if len(cpu) <= 38 else cpu[:36] + "…")   # plotly renders tags such as <a href> in labels
    return f"{str(report.get('run_id', ''))[:8]} · {cpu} · {env.get('threads', '?')} threads"


def cross_run_figure(reports: list[dict]) -> go.Figure:
    """p50 latency of each variant across runs (machines), read at each run's default point."""
    title = "Latency across runs and machines"
    fig = go.Figure()
    for i, rep in enumerate(reports):
        batch, seq = default_point(rep)
        xs, ys = [], []
        for r in ok_results(rep):
            lat = latency_at(r, batch, seq)
            if lat is not None:
                xs.append(r["variant"])
                ys.append(lat)
        if xs:
            fig.add_trace(go.Bar(x=xs, y=ys, name=f"{run_label(rep)} ({point_words(rep, batch, seq)})", marker_color=RUN_COLORS[i % len(RUN_COLORS)],
                                 hovertemplate="<b>%{x}</b><br>p50 %{y:.2f} ms<extra></extra>"))
    if not fig.data:
        return empty_figure(title, "The selected runs have no latency measurements.")
    fig = style_figure(fig, title, "Variant", "Median latency per batch (ms)", height=440)
    fig.update_layout(barmode="group", legend=dict(title_text="Run", orientation="h", y=-0.25, x=0))
    return fig
