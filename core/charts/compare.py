"""The Compare page's charts: quality against latency (with the Pareto front, the fp32 reference, the recommended
variant and the quality budget), size on disk, and latency against batch size and sequence length; ``compare_figures``
gathers every Compare chart of a report (also for the HTML export)."""

from __future__ import annotations

import plotly.graph_objects as go

from ..tasks import EMBEDDING, find_task
from .cell_check import fidelity_figure, has_checks, wrong_markers
from .common import REFERENCE_COLOR, empty_figure, legend_below, legend_name, point_words, report_colors, speed_words, style_figure, variant_marker
from .compare_batching import batching_figure
from .compare_generation import tokens_per_s_figure, ttft_figure
from .report_access import (
    batch_sizes,
    default_point,
    is_generation,
    is_reference,
    latency_at,
    latency_points,
    ok_results,
    pareto_front,
    quality_spec,
    reference_quality,
    seq_lengths,
    shown_quality,
)


def budget_threshold(report: dict, budgets: dict | None) -> tuple[float, str] | None:
    """The quality budget as a value on the quality axis of ``quality_latency_figure`` and in words, or None.

    Embeddings: cosine fidelity >= min_cosine. Classification: fp32's accuracy minus max_accuracy_drop points.
    Causal LMs: fp32's perplexity times (1 + max_ppl_increase / 100). None when the budget is on another measure
    than the axis shows (mean KL divergence, retrieval agreement...).
    """
    if not budgets:
        return None
    task = find_task(report.get("task") or EMBEDDING)
    if task is None:
        return None
    chosen, limit = task.chosen_budget(budgets)
    if chosen is not task.budget or budgets.get(chosen.key) is None:
        return None
    key, _, _, pct = quality_spec(report)
    ref = reference_quality(report).get(key)
    try:
        return task.budget_line(limit, ref, pct)
    except (TypeError, ValueError):
        return None


def quality_latency_figure(report: dict, batch_size: int | None = None, seq_len: int | None = None, budgets: dict | None = None) -> go.Figure:
    """Quality against median latency at one (batch size, sequence length), with the Pareto front,
    the fp32 reference and the recommended variant marked; with ``budgets``, the quality budget as a dashed line
    (the side that breaks it lightly shaded)."""
    key, q_title, higher, _ = quality_spec(report)
    batch_size = batch_size if batch_size is not None else default_point(report)[0]
    words = speed_words(report)
    title = f"Quality against {words['what']} ({point_words(report, batch_size, seq_len)})"
    colors = report_colors(report)
    points = []
    for r in ok_results(report):
        lat, q = latency_at(r, batch_size, seq_len), shown_quality(report, r)
        if lat is not None and q is not None:
            points.append((r["variant"], lat, q))
    if not points:
        return empty_figure(title, "No variant has both a quality score and a latency at this batch size and length.")
    fig = go.Figure()
    front = pareto_front(points, higher)
    if len(front) >= 2:
        by_name = {n: (lat, q) for n, lat, q in points}
        fig.add_trace(go.Scatter(
            x=[by_name[n][0] for n in front], y=[by_name[n][1] for n in front], mode="lines", name="Pareto front",
            line=dict(color="#9a9a9a", width=2, dash="dash", shape="hv" if higher else "linear"), hoverinfo="skip", legendrank=2000,
        ))
    for name, lat, q in points:
        fig.add_trace(go.Scatter(
            x=[lat], y=[q], mode="markers", name=legend_name(name), marker=variant_marker(name, colors[name], 15),
            hovertemplate=f"<b>{name}</b><br>p50 %{{x:.2f}} {words['short']}<br>{key} %{{y:.4g}}<extra></extra>",
            legendrank=0 if is_reference(name) else 1000,
        ))
    recommended = (report.get("recommended") or {}).get("variant")
    for name, lat, q in points:
        if is_reference(name):
            fig.add_annotation(x=lat, y=q, text="fp32 reference", showarrow=False, yshift=24,
                               font=dict(color=REFERENCE_COLOR, size=12), bgcolor="rgba(255,255,255,0.85)")
        if name == recommended:
            fig.add_trace(go.Scatter(
                x=[lat], y=[q], mode="markers", name="recommended", legendrank=1999,
                marker=dict(symbol="star", size=30, color="rgba(0,0,0,0)", line=dict(color="#f2a900", width=3)),
                hovertemplate=f"<b>recommended: {name}</b><extra></extra>",
            ))
            fig.add_annotation(x=lat, y=q, text=f"★ recommended: {name}", showarrow=False, yshift=-26,
                               font=dict(color="#8a6100", size=12), bgcolor="rgba(255,255,255,0.85)")
    fig = style_figure(fig, title, words["axis"], q_title, height=460)
    lats = [p[1] for p in points]
    lo, hi = min(lats), max(lats)
    pad = (hi - lo) * 0.12 or max(hi * 0.1, 0.1)
    fig.update_xaxes(range=[max(0.0, lo - pad), hi + pad])
    qs = [p[2] for p in points]
    qlo, qhi = min(qs), max(qs)
    qpad = (qhi - qlo) * 0.2 or max(abs(qhi) * 0.01, 1e-3)
    y0, y1 = qlo - qpad, qhi + qpad
    budget = budget_threshold(report, budgets)
    if budget is not None:
        value, words = budget
        span = max(qhi - qlo, qpad)
        if qlo - 2 * span - qpad <= value <= qhi + 2 * span + qpad:  # near the points: draw it (and make room for it)
            y0, y1 = min(y0, value - qpad * 0.5), max(y1, value + qpad * 0.5)
            fig.add_hrect(y0=y0 if higher else value, y1=value if higher else y1, fillcolor="rgba(214,39,40,0.07)", line_width=0, layer="below")
            fig.add_hline(y=value, line=dict(color="#b23b3b", width=1.5, dash="dash"),
                          annotation=dict(text=f"quality budget: {words}", font=dict(color="#b23b3b", size=12), bgcolor="rgba(255,255,255,0.85)"),
                          annotation_position="bottom right" if higher else "top right")
        else:  # far from every point: say where it is instead of squashing the points
            side = "below" if value < qlo else "above"
            fig.add_annotation(text=f"quality budget ({words}) is far {side} every point", showarrow=False, xref="paper", yref="paper",
                               x=1.0, xanchor="right", y=0.0 if side == "below" else 1.0, yanchor="bottom" if side == "below" else "top",
                               font=dict(color="#b23b3b", size=12), bgcolor="rgba(255,255,255,0.85)")
    fig.update_yaxes(range=[y0, y1])
    return fig


def size_figure(report: dict) -> go.Figure:
    """Model size on disk per variant, with the ratio against fp32 written on each bar."""
    title = "Model size on disk"
    results = [r for r in ok_results(report) if r.get("size_bytes")]
    if not results:
        return empty_figure(title, "No sizes were measured.")
    colors = report_colors(report)
    ref = next((r for r in results if is_reference(r["variant"])), None)
    fig = go.Figure()
    for r in results:
        mb = r["size_bytes"] / 2**20
        if ref and not is_reference(r["variant"]):
            ratio = ref["size_bytes"] / r["size_bytes"]
            label = f"{mb:.1f} MB<br>{ratio:.1f}x smaller" if ratio >= 1 else f"{mb:.1f} MB<br>{1 / ratio:.1f}x larger"
        else:
            label = f"{mb:.1f} MB" + ("<br>reference" if is_reference(r["variant"]) else "")
        fig.add_trace(go.Bar(
            x=[r["variant"]], y=[mb], name=legend_name(r["variant"]), text=[label], textposition="outside", cliponaxis=False,
            constraintext="none", textfont=dict(size=12),
            marker=dict(color=colors[r["variant"]], pattern=dict(shape="/" if is_reference(r["variant"]) else "", fgcolor="white", size=8),
                        line=dict(color=colors[r["variant"]], width=1.5)),
            hovertemplate=f"<b>{r['variant']}</b><br>%{{y:.2f}} MB<extra></extra>",
        ))
    fig = style_figure(fig, title, "Variant", "Size on disk (MB)", height=420, legend=False)
    top = max(r["size_bytes"] for r in results) / 2**20
    fig.update_yaxes(range=[0, top * 1.25])
    fig.update_layout(bargap=0.35)
    return fig


def _latency_lines(report: dict, *, vary: str, fixed_value: int | None, title: str, x_title: str) -> go.Figure:
    fixed = "seq_len" if vary == "batch_size" else "batch_size"
    words = speed_words(report)
    unit = words["short"]
    colors = report_colors(report)
    fig = go.Figure()
    count = 0
    for r in ok_results(report):
        pts = sorted((p for p in latency_points(r) if int(p[fixed]) == fixed_value), key=lambda p: int(p[vary]))
        if not pts:
            continue
        count += 1
        p50 = [float(p["p50_ms"]) for p in pts]
        p90 = [float(p.get("p90_ms") or p["p50_ms"]) for p in pts]
        name = r["variant"]
        fig.add_trace(go.Scatter(
            x=[int(p[vary]) for p in pts], y=p50, mode="lines+markers", name=legend_name(name),
            line=dict(color=colors[name], width=3.5 if is_reference(name) else 2.5, dash="dot" if is_reference(name) else "solid"),
            marker=variant_marker(name, colors[name], 9),
            error_y=dict(type="data", symmetric=False, array=[max(0.0, b - a) for a, b in zip(p50, p90)], arrayminus=[0] * len(p50),
                         thickness=1.2, width=4, color=colors[name]),
            customdata=p90, hovertemplate=f"<b>{name}</b><br>{x_title} %{{x}}<br>p50 %{{y:.2f}} {unit}<br>p90 %{{customdata:.2f}} {unit}<extra></extra>",
            legendrank=0 if is_reference(name) else 1000,
        ))
    if not count:
        return empty_figure(title, "Nothing measured at this setting.")
    wrong_markers(fig, report, vary=vary, fixed_value=fixed_value, speed_of=lambda c: c.get("p50_ms"))   # timed, but wrong
    fig = style_figure(fig, title, x_title, words["axis"].replace(", lower is better", ""))
    xs = batch_sizes(report) if vary == "batch_size" else seq_lengths(report)
    subtitle = "dots: p50 · whiskers reach p90 · lower is better"
    if len(xs) < 2:
        subtitle = f"only one {'batch size' if vary == 'batch_size' else 'sequence length'} measured: add more on Models & variants for a trend"
    fig.update_layout(title_subtitle_text=subtitle, title_subtitle_font=dict(size=12, color="#777"))
    legend_below(fig)
    fig.update_xaxes(type="log" if len(xs) > 2 and xs[-1] / max(xs[0], 1) >= 8 else "linear", tickvals=xs, ticktext=[str(x) for x in xs])
    fig.update_yaxes(rangemode="tozero")
    return fig


def latency_batch_figure(report: dict, seq_len: int | None = None) -> go.Figure:
    seq_len = seq_len if seq_len is not None else (seq_lengths(report) or [None])[-1]
    if is_generation(report):
        return _latency_lines(report, vary="batch_size", fixed_value=seq_len,
                              title=f"Decode time per token against batch size ({seq_len}-token prompts)", x_title="Batch size (prompts)")
    return _latency_lines(report, vary="batch_size", fixed_value=seq_len,
                          title=f"Latency against batch size ({seq_len} tokens per text)", x_title="Batch size (texts)")


def latency_seq_figure(report: dict, batch_size: int | None = None) -> go.Figure:
    batch_size = batch_size if batch_size is not None else default_point(report)[0]
    if is_generation(report):
        return _latency_lines(report, vary="seq_len", fixed_value=batch_size,
                              title=f"Decode time per token against prompt length (batch {batch_size})", x_title="Prompt length (tokens)")
    return _latency_lines(report, vary="seq_len", fixed_value=batch_size,
                          title=f"Latency against sequence length (batch {batch_size})", x_title="Sequence length (tokens)")


def compare_figures(report: dict, batch_size: int | None = None, seq_len: int | None = None) -> dict[str, go.Figure]:
    """Every Compare-page chart, keyed by a short name (also used by the HTML export)."""
    figures = {
        "quality_latency": quality_latency_figure(report, batch_size, seq_len),
        "size": size_figure(report),
        "latency_batch": latency_batch_figure(report, seq_len),
        "latency_seq": latency_seq_figure(report, batch_size),
    }
    if has_checks(report):
        figures["cell_fidelity"] = fidelity_figure(report)
    if is_generation(report):
        figures.update(ttft=ttft_figure(report, batch_size), tokens_per_s=tokens_per_s_figure(report, batch_size))
    else:
        figures["batching"] = batching_figure(report)
    return figures
