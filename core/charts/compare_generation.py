"""The Compare page's charts of a generation run (causal LMs): time to first token and generated tokens per second,
by prompt length (hatched bars: measured without a KV cache)."""

from __future__ import annotations

import plotly.graph_objects as go

from .common import empty_figure, legend_name, report_colors, style_figure
from .report_access import default_point, generation_cells, is_reference, ok_results


def _generation_bars(report: dict, batch_size: int | None, *, field: str, p90: str | None, title: str, y_title: str, fmt: str,
                     subtitle: str) -> go.Figure:
    """Bars per variant, grouped by prompt length; hatched bars = measured without a KV cache."""
    batch_size = batch_size if batch_size is not None else default_point(report)[0]
    colors = report_colors(report)
    fig = go.Figure()
    prompts = sorted({int(g["prompt_len"]) for r in ok_results(report) for g in generation_cells(r, batch_size)})
    for r in ok_results(report):
        cells = [g for g in generation_cells(r, batch_size) if g.get(field) is not None]
        if not cells:
            continue
        name = r["variant"]
        values = [float(g[field]) for g in cells]
        whisker = [max(0.0, float(g.get(p90) or v) - v) for g, v in zip(cells, values)] if p90 else None
        no_cache = [not g.get("kv_cache", True) for g in cells]
        fig.add_trace(go.Bar(
            x=[f"{g['prompt_len']}-token prompt" for g in cells], y=values, name=legend_name(name) + (" (no KV cache)" if any(no_cache) else ""),
            text=[format(v, fmt) for v in values], textposition="outside", cliponaxis=False, textfont=dict(size=11),
            marker=dict(color=colors[name], line=dict(color=colors[name], width=1.5),
                        pattern=dict(shape=["x" if n else ("/" if is_reference(name) else "") for n in no_cache], fgcolor="white", size=7)),
            error_y=dict(type="data", symmetric=False, array=whisker, arrayminus=[0] * len(values), thickness=1.2, width=4, color="#555") if whisker else None,
            hovertemplate=f"<b>{name}</b><br>%{{x}}<br>{y_title}: %{{y:{fmt}}}" + ("<br>no KV cache" if any(no_cache) else "") + "<extra></extra>",
            legendrank=0 if is_reference(name) else 1000,
        ))
    if not fig.data:
        return empty_figure(title, "No generation was measured at this batch size.")
    fig = style_figure(fig, title.format(batch=batch_size), "", y_title)
    fig.update_layout(barmode="group", bargap=0.25, title_subtitle_text=subtitle, title_subtitle_font=dict(size=12, color="#777"))
    top = max(float(v) for t in fig.data for v in t.y)
    fig.update_yaxes(range=[0, top * 1.25])
    fig.update_xaxes(categoryorder="array", categoryarray=[f"{p}-token prompt" for p in prompts])
    return fig


def ttft_figure(report: dict, batch_size: int | None = None) -> go.Figure:
    return _generation_bars(report, batch_size, field="ttft_ms", p90="ttft_p90_ms", title="Time to first token (batch {batch})",
                            y_title="Time to first token (ms, p50)", fmt=".1f",
                            subtitle="prompt tokenized and prefilled, first token chosen · whiskers reach p90 · lower is better · hatched: no KV cache")


def tokens_per_s_figure(report: dict, batch_size: int | None = None) -> go.Figure:
    new = (report.get("settings") or {}).get("new_tokens")
    return _generation_bars(report, batch_size, field="tokens_per_s", p90=None, title="Generated tokens per second (batch {batch})",
                            y_title="Tokens per second (higher is better)", fmt=".1f",
                            subtitle=(f"{new} new tokens" if new else "new tokens") + " per prompt, greedy · first token included · hatched: no KV cache")
