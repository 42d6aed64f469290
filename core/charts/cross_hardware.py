"""The Compare page's chart of a comparison across hardware targets: each variant's speed-up against each target's own fp32."""

from __future__ import annotations

import plotly.graph_objects as go

from ..reporting.compare import cross_hardware_rows
from .common import empty_figure, legend_below, style_figure
from .report_access import target_label

TARGET_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


def hardware_speedup_figure(report: dict, batch_size: int | None = None) -> go.Figure:
    """Speed-up against each target's own fp32, every variant on every target, as grouped bars (1.0 = as fast as fp32).

    The bar of each target's recommended variant is outlined and labelled with a star."""
    rows = [r for r in cross_hardware_rows(report, batch_size) if r.get("variant") and r["variant"] != "fp32"]
    title = "Speed-up against fp32 on each hardware target" + (f" (batch {rows[0]['batch_size']})" if rows else "")
    if not rows:
        return empty_figure(title, "No target has both fp32 and another variant measured.")
    targets = [t for t in report.get("hardware") or [] if t.get("status") == "ok"]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig = go.Figure()
    for i, target in enumerate(targets):
        mine = {r["variant"]: r for r in rows if r["hardware"] == target["id"]}
        ys = [mine.get(v, {}).get("speedup") for v in variants]
        text = [("★ " if mine.get(v, {}).get("recommended") else "") + (f"{y:.2f}x" if y else "n/a") for v, y in zip(variants, ys)]
        fig.add_bar(x=variants, y=ys, name=target_label(target), marker_color=TARGET_COLORS[i % len(TARGET_COLORS)], text=text, textposition="outside",
                    marker_line_width=[3 if mine.get(v, {}).get("recommended") else 0 for v in variants], marker_line_color="#111",
                    hovertemplate="%{x}<br>" + str(target.get("name")) + ": %{y:.2f}x fp32<extra></extra>")
    fig.add_hline(y=1.0, line_dash="dash", line_color="#555", annotation_text="fp32 (1.0x)", annotation_position="top left")
    style_figure(fig, title, "Variant", "Speed-up vs that target's fp32 (x, higher is faster)", height=460)
    fig.update_layout(barmode="group", legend_title_text="Hardware target")
    return legend_below(fig, "Hardware target")
