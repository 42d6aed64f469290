"""Plotly figure builders for the dashboard and the HTML export: pure functions, report dict -> go.Figure.

Every chart uses the same colour for a variant (``variant_colors``), marks the fp32 reference the same way
(dark grey, diamond, "fp32 reference"), names its units on the axes, and works on a report that was
loaded from JSON (nothing here needs torch or Streamlit).
"""

from __future__ import annotations

import html
import itertools
import math
import re
from typing import Iterable

import plotly.graph_objects as go

from .recipes.registry import COLORS as RECIPE_COLORS  # each recipe family declares its recipes' colours (core/recipes/<family>/)
from .tasks import EMBEDDING, find_task

REFERENCE = "fp32"
REFERENCE_COLOR = "#3b3b3b"
EXTRA_COLORS = ["#6a3d9a", "#b15928", "#1b9e77", "#7fc97f", "#66a61e", "#7570b3", "#e6ab02", "#386cb0", "#f0027f", "#bf5b17"]
FONT = dict(family="Inter, 'Source Sans Pro', Helvetica, Arial, sans-serif", size=13)


# -- small helpers ------------------------------------------------------------------------------
def recipe_of(variant: str) -> str:
    return str(variant).split(":", 1)[0]


def is_reference(variant: str) -> bool:
    return str(variant) == REFERENCE


def ok_results(report: dict) -> list[dict]:
    """Results that have measurements (a variant that failed carries an error and no numbers)."""
    return [r for r in report.get("results") or [] if not r.get("error")]


def variant_colors(variants: Iterable[str]) -> dict[str, str]:
    """A stable colour per variant: by recipe name, so 'onnx-int8' is the same red in every run and chart."""
    colors, used, extra = {}, set(), itertools.cycle(EXTRA_COLORS)   # any number of variants: colours repeat, never run out
    for v in variants:
        if v in colors:
            continue
        c = RECIPE_COLORS.get(recipe_of(v))
        if c is None or c in used:  # a second variant of one recipe (other params) gets its own colour
            c = next(extra)
        colors[v] = c
        used.add(c)
    return colors


def report_colors(report: dict) -> dict[str, str]:
    names = [r["variant"] for r in report.get("results") or []]
    # the exact-recipe variant claims the recipe colour first, whatever the order of results
    names.sort(key=lambda v: (":" in v))
    return variant_colors(names)


def fmt_bytes(n: float | int | None) -> str:
    if n is None:
        return "n/a"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def quality_spec(report: dict) -> tuple[str, str, bool, bool]:
    """(metric key, axis title, higher is better, percent) for the report's task."""
    task = find_task(report.get("task"), default=EMBEDDING)   # the quality axis the task declares (an unknown task: embedding's)
    key, title, higher, pct = task.primary, task.axis.title, task.higher_is_better, task.axis.percent
    if pct:
        values = [quality_value(r, key) for r in ok_results(report)]
        if any(v is not None and v > 1.0 for v in values):  # already in percent
            pct = False
            title = title.replace("%, ", "")
    return key, title, higher, pct


def quality_value(result: dict, key: str) -> float | None:
    value = (result.get("quality") or {}).get(key)
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def shown_quality(report: dict, result: dict) -> float | None:
    key, _, _, pct = quality_spec(report)
    value = quality_value(result, key)
    return None if value is None else (value * 100 if pct else value)


def is_generation(report: dict) -> bool:
    """A generation run (causal LMs): speed is decode time per token, by prompt length, instead of one forward pass."""
    if (report.get("settings") or {}).get("scenario") == "generate":
        return True
    rs = ok_results(report)
    return bool(rs) and all(r.get("generation") and not r.get("latency") for r in rs)


def latency_points(result: dict) -> list[dict]:
    """The result's speed cells: its latency cells, or in a generation run its generation cells read as
    (batch size, prompt length) -> decode ms per token (p50, p90), so every speed chart works for both."""
    if not result.get("latency") and result.get("generation"):
        return [{"batch_size": g["batch_size"], "seq_len": g["prompt_len"], "p50_ms": g.get("decode_ms_per_token_p50"),
                 "p90_ms": g.get("decode_ms_per_token_p90")} for g in result["generation"] if g.get("decode_ms_per_token_p50") is not None]
    return [p for p in result.get("latency") or [] if p.get("p50_ms") is not None]


def speed_words(report: dict) -> dict:
    """Axis titles and units of the speed figure: end-to-end latency per batch, or decode time per token."""
    if is_generation(report):
        return {"axis": "Decode time per token (ms, p50, lower is better)", "short": "ms/token", "what": "decode time per token",
                "length": "prompt length", "lengths": "Prompt length (tokens)"}
    return {"axis": "Median latency per batch (ms, lower is better)", "short": "ms", "what": "latency", "length": "sequence length",
            "lengths": "Sequence length (tokens)"}


def batch_sizes(report: dict) -> list[int]:
    return sorted({int(p["batch_size"]) for r in ok_results(report) for p in latency_points(r)})


def seq_lengths(report: dict) -> list[int]:
    return sorted({int(p["seq_len"]) for r in ok_results(report) for p in latency_points(r)})


def default_point(report: dict) -> tuple[int | None, int | None]:
    """The (batch size, sequence length) a headline latency is read at: the recommended batch size (or 1, or the
    smallest measured) and ``None`` = the geometric mean over the sequence-length sweep (as the recommendation does)."""
    bs = batch_sizes(report)
    rec = (report.get("recommended") or {}).get("batch_size") or (report.get("settings") or {}).get("recommend_batch_size")
    batch = rec if rec in bs else (1 if 1 in bs else (bs[0] if bs else None))
    return batch, None


def latency_at(result: dict, batch_size: int | None, seq_len: int | None, field: str = "p50_ms") -> float | None:
    """A latency statistic at one cell; with ``seq_len=None`` the geometric mean over the measured lengths at that batch."""
    values = []
    for p in latency_points(result):
        if int(p["batch_size"]) != batch_size or (seq_len is not None and int(p["seq_len"]) != seq_len):
            continue
        value = p.get(field)
        if value is not None and float(value) > 0:
            values.append(float(value))
    if not values:
        return None
    if seq_len is not None:
        return values[0]
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def point_words(report: dict, batch_size: int | None, seq_len: int | None) -> str:
    prompt = "-token prompts" if is_generation(report) else " tokens"
    if seq_len is not None:
        return f"batch {batch_size}, {seq_len}{prompt}"
    seqs = seq_lengths(report)
    if len(seqs) == 1:
        return f"batch {batch_size}, {seqs[0]}{prompt}"
    return f"batch {batch_size}, geometric mean over {', '.join(map(str, seqs))}{prompt}"


def pareto_front(points: list[tuple[str, float, float]], higher_is_better: bool = True) -> list[str]:
    """Names on the quality/latency Pareto front: no other point is at least as fast and at least as good
    while strictly better in one. ``points`` are (name, latency, quality). Returned sorted by latency."""
    front = []
    for name, lat, q in points:
        dominated = False
        for other, lat2, q2 in points:
            if other == name:
                continue
            better_q = q2 >= q if higher_is_better else q2 <= q
            strictly = lat2 < lat or (q2 > q if higher_is_better else q2 < q)
            if lat2 <= lat and better_q and strictly:
                dominated = True
                break
        if not dominated:
            front.append((lat, name))
    return [name for _, name in sorted(front)]


def _style(fig: go.Figure, title: str, x_title: str, y_title: str, *, height: int = 420, legend: bool = True) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, x=0.0, xanchor="left", font=dict(size=17)),
        xaxis_title=x_title,
        yaxis_title=y_title,
        template="plotly_white",
        font=FONT,
        height=height,
        margin=dict(l=70, r=30, t=70, b=60),
        legend=dict(title_text="Variant", orientation="v", x=1.01, y=1.0, bgcolor="rgba(255,255,255,0.6)") if legend else None,
        showlegend=legend,
        hoverlabel=dict(font_size=12),
    )
    fig.update_xaxes(showline=True, linecolor="#bbb", gridcolor="#eee", zeroline=False)
    fig.update_yaxes(showline=True, linecolor="#bbb", gridcolor="#eee", zeroline=False)
    return fig


def _legend_below(fig: go.Figure, title: str = "Variant") -> go.Figure:
    """A horizontal legend under the plot, so a half-width chart keeps its plotting area."""
    fig.update_layout(legend=dict(title_text=title, orientation="h", x=0.0, xanchor="left", y=-0.22, yanchor="top", bgcolor="rgba(0,0,0,0)"),
                      margin=dict(l=70, r=20, t=70, b=40))
    return fig


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=14, color="#666"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _style(fig, title, "", "", height=300, legend=False)


def _marker(variant: str, color: str, size: int = 13) -> dict:
    if is_reference(variant):
        return dict(color=color, size=size + 3, symbol="diamond", line=dict(color="white", width=1.5))
    return dict(color=color, size=size, symbol="circle", line=dict(color="white", width=1.5))


def _legend_name(variant: str) -> str:
    return f"{variant} (reference)" if is_reference(variant) else variant


# -- Compare page charts ------------------------------------------------------------------------
def reference_quality(report: dict) -> dict:
    """fp32's quality: its own result when measured, else the report's ``reference`` block (quality-only fp32 run)."""
    ref = next((r for r in ok_results(report) if is_reference(r["variant"])), None)
    return dict((ref or {}).get("quality") or (report.get("reference") or {}).get("quality") or {})


def budget_threshold(report: dict, budgets: dict | None) -> tuple[float, str] | None:
    """The quality budget as a value on the quality axis of ``quality_latency_figure`` and in words, or None.

    Embeddings: cosine fidelity >= min_cosine. Classification: fp32's accuracy minus max_accuracy_drop points.
    Causal LMs: fp32's perplexity times (1 + max_ppl_increase / 100).
    """
    if not budgets:
        return None
    task = find_task(report.get("task") or EMBEDDING)
    if task is None or budgets.get(task.budget.key) is None:
        return None
    key, _, _, pct = quality_spec(report)
    ref = reference_quality(report).get(key)
    try:
        return task.budget_line(budgets[task.budget.key], ref, pct)
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
        return _empty(title, "No variant has both a quality score and a latency at this batch size and length.")
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
            x=[lat], y=[q], mode="markers", name=_legend_name(name), marker=_marker(name, colors[name], 15),
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
    fig = _style(fig, title, words["axis"], q_title, height=460)
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
        return _empty(title, "No sizes were measured.")
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
            x=[r["variant"]], y=[mb], name=_legend_name(r["variant"]), text=[label], textposition="outside", cliponaxis=False,
            constraintext="none", textfont=dict(size=12),
            marker=dict(color=colors[r["variant"]], pattern=dict(shape="/" if is_reference(r["variant"]) else "", fgcolor="white", size=8),
                        line=dict(color=colors[r["variant"]], width=1.5)),
            hovertemplate=f"<b>{r['variant']}</b><br>%{{y:.2f}} MB<extra></extra>",
        ))
    fig = _style(fig, title, "Variant", "Size on disk (MB)", height=420, legend=False)
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
            x=[int(p[vary]) for p in pts], y=p50, mode="lines+markers", name=_legend_name(name),
            line=dict(color=colors[name], width=3.5 if is_reference(name) else 2.5, dash="dot" if is_reference(name) else "solid"),
            marker=_marker(name, colors[name], 9),
            error_y=dict(type="data", symmetric=False, array=[max(0.0, b - a) for a, b in zip(p50, p90)], arrayminus=[0] * len(p50),
                         thickness=1.2, width=4, color=colors[name]),
            customdata=p90, hovertemplate=f"<b>{name}</b><br>{x_title} %{{x}}<br>p50 %{{y:.2f}} {unit}<br>p90 %{{customdata:.2f}} {unit}<extra></extra>",
            legendrank=0 if is_reference(name) else 1000,
        ))
    if not count:
        return _empty(title, "Nothing measured at this setting.")
    fig = _style(fig, title, x_title, words["axis"].replace(", lower is better", ""))
    xs = batch_sizes(report) if vary == "batch_size" else seq_lengths(report)
    subtitle = "dots: p50 · whiskers reach p90 · lower is better"
    if len(xs) < 2:
        subtitle = f"only one {'batch size' if vary == 'batch_size' else 'sequence length'} measured: add more on Models & variants for a trend"
    fig.update_layout(title_subtitle_text=subtitle, title_subtitle_font=dict(size=12, color="#777"))
    _legend_below(fig)
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


# -- generation: time to first token and tokens per second ------------------------------------------
def generation_cells(result: dict, batch_size: int | None) -> list[dict]:
    return sorted((g for g in result.get("generation") or [] if batch_size is None or int(g["batch_size"]) == batch_size),
                  key=lambda g: int(g["prompt_len"]))


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
            x=[f"{g['prompt_len']}-token prompt" for g in cells], y=values, name=_legend_name(name) + (" (no KV cache)" if any(no_cache) else ""),
            text=[format(v, fmt) for v in values], textposition="outside", cliponaxis=False, textfont=dict(size=11),
            marker=dict(color=colors[name], line=dict(color=colors[name], width=1.5),
                        pattern=dict(shape=["x" if n else ("/" if is_reference(name) else "") for n in no_cache], fgcolor="white", size=7)),
            error_y=dict(type="data", symmetric=False, array=whisker, arrayminus=[0] * len(values), thickness=1.2, width=4, color="#555") if whisker else None,
            hovertemplate=f"<b>{name}</b><br>%{{x}}<br>{y_title}: %{{y:{fmt}}}" + ("<br>no KV cache" if any(no_cache) else "") + "<extra></extra>",
            legendrank=0 if is_reference(name) else 1000,
        ))
    if not fig.data:
        return _empty(title, "No generation was measured at this batch size.")
    fig = _style(fig, title.format(batch=batch_size), "", y_title)
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


def _throughput(value) -> float | None:
    if isinstance(value, dict):
        value = value.get("throughput_per_s", value.get("texts_per_s"))
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _spread(mode: dict | None, median: float | None) -> tuple[float | None, float | None]:
    """(above, below) the median to the pass maximum / minimum: the whiskers (None without repeated passes)."""
    if median is None or not isinstance(mode, dict):
        return None, None
    lo, hi = _throughput(mode.get("texts_per_s_min")), _throughput(mode.get("texts_per_s_max"))
    if lo is None or hi is None:
        return None, None
    return max(0.0, hi - median), max(0.0, median - lo)


def _as_mode(value) -> dict:
    """One mode's record as a dict (a bare number is a texts/s from an older shape; anything else counts as missing)."""
    if isinstance(value, dict):
        return value
    return {"texts_per_s": value} if isinstance(value, (int, float)) and not isinstance(value, bool) else {}


def _pct(value) -> str:
    return f"{float(value):.0%}" if isinstance(value, (int, float)) else "n/a"


def batching_figure(report: dict) -> go.Figure:
    """Whole-dataset throughput with length-sorted batches against batches in file order: median texts/s over
    alternated passes, whiskers from the slowest to the fastest pass, the padding fraction of each mode, and per
    variant either the gain or "no difference within noise" (the two ranges overlap). At batch 1 a note says that
    sorting cannot matter there (no padding)."""
    from .report import throughput_summary

    title = "Sorted against unsorted batching (whole dataset)"
    colors = report_colors(report)
    tputs = [(r, r.get("dataset_throughput") if isinstance(r.get("dataset_throughput"), dict) else {}) for r in ok_results(report)]
    sizes = {dt.get("batch_size") for _, dt in tputs} - {None}
    if len(sizes) == 1:
        title = f"Sorted against unsorted batching (whole dataset, batch {next(iter(sizes))})"
    rows = []
    for r, dt in tputs:
        dt = dict(dt, **{m: _as_mode(dt.get(m)) for m in ("sorted", "unsorted")})
        s, u = _throughput(dt.get("sorted")), _throughput(dt.get("unsorted"))
        if s is not None or u is not None:
            rows.append((r["variant"], dt, s, u, throughput_summary(dt)))
    if not rows:
        return _empty(title, "Dataset throughput was not measured in this run.")
    names = [row[0] for row in rows]
    cols = [colors[n] for n in names]
    pads = {mode: {(row[1].get(mode) or {}).get("padding_fraction") for row in rows} for mode in ("sorted", "unsorted")}
    shared_pad = {mode: next(iter(v)) for mode, v in pads.items() if len(v) == 1 and isinstance(next(iter(v)), (int, float))}
    fig = go.Figure()
    modes = (("sorted", "sorted by length", "", 1.0, "s"), ("unsorted", "file order (unsorted)", "/", 0.55, "u"))
    for mode, label, pattern, opacity, group in modes:  # neutral legend keys, with the padding when every variant shares it
        legend = f"{label}, padding {_pct(shared_pad[mode])}" if mode in shared_pad else label
        fig.add_trace(go.Bar(x=[None], y=[None], name=legend, offsetgroup=group,
                             marker=dict(color="#777", opacity=opacity, pattern=dict(shape=pattern, fgcolor="white", size=7)),
                             hoverinfo="skip"))
    tops = []
    for k, (mode, label, pattern, opacity, group) in enumerate(modes):
        ys = [row[2 + k] for row in rows]
        spreads = [_spread(row[1].get(mode), y) for row, y in zip(rows, ys)]
        whiskers = any(up is not None for up, _ in spreads)
        tops += [y + (up or 0.0) for y, (up, _) in zip(ys, spreads) if y is not None]
        custom = [[_throughput((row[1].get(mode) or {}).get("texts_per_s_min")), _throughput((row[1].get(mode) or {}).get("texts_per_s_max")),
                   (row[1].get(mode) or {}).get("passes") or 1, _pct((row[1].get(mode) or {}).get("padding_fraction"))] for row in rows]
        fig.add_trace(go.Bar(
            x=names, y=ys, name=label, showlegend=False, offsetgroup=group,
            marker=dict(color=cols, opacity=opacity, pattern=dict(shape=pattern, fgcolor="white", size=7)),
            error_y=dict(type="data", symmetric=False, array=[up or 0.0 for up, _ in spreads], arrayminus=[down or 0.0 for _, down in spreads],
                         color="#444", thickness=1.4, width=5, visible=whiskers),
            text=[f"{y:.0f}" if y is not None else "" for y in ys], textposition="inside", insidetextanchor="start", textangle=0,
            customdata=custom,
            hovertemplate=f"<b>%{{x}}</b><br>{mode}: %{{y:.1f}} texts/s (median)<br>range over passes: %{{customdata[0]:.1f}} to %{{customdata[1]:.1f}}"
                          "<br>passes: %{customdata[2]}<br>padding: %{customdata[3]} of tokens fed<extra></extra>"))
    fig = _style(fig, title, "Variant", "Throughput (texts/s, higher is better)")
    fig.update_layout(barmode="group", bargap=0.3)
    _legend_below(fig, "Batching")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=names)
    if len(shared_pad) < 2 and any(isinstance((row[1].get("sorted") or {}).get("padding_fraction"), (int, float)) for row in rows):
        fig.update_xaxes(tickmode="array", tickvals=names, ticktext=[  # padding differs by variant: label it under each name
            f"{row[0]}<br>padding {_pct((row[1].get('unsorted') or {}).get('padding_fraction'))} → {_pct((row[1].get('sorted') or {}).get('padding_fraction'))}"
            for row in rows])
    top = max(tops, default=1.0) or 1.0
    for name, dt, s, u, summary in rows:
        if summary is None:
            continue
        if summary["within_noise"]:
            text = "no difference within noise"
        elif summary["batch_size"] == 1:
            text = f"{summary['gain']:.2f}x: noise, not sorting" if summary["gain"] else ""
        else:
            text = f"sorted {summary['gain']:.2f}x" if summary["gain"] else ""
        group_top = max(v + (_spread(dt.get(m), v)[0] or 0.0) for m, v in (("sorted", s), ("unsorted", u)) if v is not None)
        fig.add_annotation(x=name, y=group_top, text=text, showarrow=False, yanchor="bottom", yshift=4, font=dict(size=11, color="#333"),
                           name="verdict")
    notes = []
    if sizes == {1}:
        notes.append("Batch 1: no padding, so sorting cannot matter here; any gap is noise.")
    if any(summary and summary["spread"] is False for *_, summary in rows):
        notes.append("Saved before repeated passes: one pass per mode, no spread.")
    elif rows and rows[0][4] and all(rows[0][4]["passes"]):
        passes = sorted({p for *_, sm in rows if sm for p in sm["passes"] if p})
        notes.append(f"Median of {'/'.join(map(str, passes))} alternated passes per mode; whiskers: slowest to fastest pass.")
    for k, note in enumerate(notes):
        fig.add_annotation(text=note, showarrow=False, x=0.0, xref="paper", xanchor="left", y=1.0, yref="paper", yanchor="bottom",
                           yshift=2 + 16 * (len(notes) - 1 - k), font=dict(size=11, color="#555"), name="note")
    fig.update_layout(margin=dict(t=70 + 16 * max(0, len(notes) - 1)))
    fig.update_yaxes(range=[0, top * 1.22])
    return fig


def compare_figures(report: dict, batch_size: int | None = None, seq_len: int | None = None) -> dict[str, go.Figure]:
    """Every Compare-page chart, keyed by a short name (also used by the HTML export)."""
    figures = {
        "quality_latency": quality_latency_figure(report, batch_size, seq_len),
        "size": size_figure(report),
        "latency_batch": latency_batch_figure(report, seq_len),
        "latency_seq": latency_seq_figure(report, batch_size),
    }
    if is_generation(report):
        figures.update(ttft=ttft_figure(report, batch_size), tokens_per_s=tokens_per_s_figure(report, batch_size))
    else:
        figures["batching"] = batching_figure(report)
    return figures


# -- words against the reference ------------------------------------------------------------------
def reference_rows(report: dict, batch_size: int | None = None) -> list[dict]:
    """Each variant's change against fp32 in numbers and words ("3.1x faster, 4.0x smaller, -0.4 pt accuracy"),
    from ``core.report.compare_to_reference`` (speed = geometric mean of p50 over the length sweep at the batch
    size), plus the variant's size and headline quality."""
    from .report import compare_to_reference

    key, _, _, pct = quality_spec(report)
    by_name = {r["variant"]: r for r in report.get("results") or []}
    rows = compare_to_reference(report, batch_size)
    for row in rows:
        r = by_name.get(row["variant"], {})
        q = quality_value(r, key)
        row["quality"] = (q * 100 if pct else q) if q is not None else None
        row["size_mb"] = r["size_bytes"] / 2**20 if r.get("size_bytes") else None
    return rows


# -- Weights page charts ------------------------------------------------------------------------
SCHEME_COLORS = {"original": "#3b3b3b", "absmax": "#ff7f0e", "zeropoint": "#bcbd22"}


def _density(values, edges):
    import numpy as np

    counts, _ = np.histogram(values, bins=edges, density=True)
    return counts


def weight_histogram_figure(layer: str, original, dequantized: dict, bins: int = 120, bits: int = 8) -> go.Figure:
    """Histogram of a layer's fp32 weights against its int8 (or int4) round trips (absmax, zero-point), and of the rounding error.

    Histograms are computed here with numpy (exact, every weight counted) and drawn as bars, so the figure stays
    small whatever the layer size.
    """
    import numpy as np
    from plotly.subplots import make_subplots

    original = np.asarray(original, dtype=np.float32).ravel()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Weight values", "Rounding error (quantized − original)"), horizontal_spacing=0.1)
    lo, hi = float(original.min()), float(original.max())
    if hi <= lo:
        hi = lo + 1e-6
    edges = np.linspace(lo, hi, bins + 1)
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    fig.add_trace(go.Bar(x=centers, y=_density(original, edges), width=width, name="fp32 original", marker_color=SCHEME_COLORS["original"],
                         opacity=0.45, hovertemplate="value %{x:.4f}<br>density %{y:.3g}<extra>fp32</extra>"), row=1, col=1)
    errors = {label: np.asarray(values, dtype=np.float32).ravel() - original for label, values in dequantized.items()}
    span = max((float(np.abs(e).max()) for e in errors.values()), default=1e-6) or 1e-6
    err_edges = np.linspace(-span, span, 81)
    err_centers = (err_edges[:-1] + err_edges[1:]) / 2
    for label, values in dequantized.items():
        values = np.asarray(values, dtype=np.float32).ravel()
        color = SCHEME_COLORS.get(label.split()[0])
        fig.add_trace(go.Scatter(x=centers, y=_density(values, edges), mode="lines", line=dict(color=color, width=2, shape="hvh"),
                                 name=f"{label} int{bits} → fp32", hovertemplate=f"value %{{x:.4f}}<br>density %{{y:.3g}}<extra>{label}</extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=err_centers, y=_density(errors[label], err_edges), mode="lines", line=dict(color=color, width=2, shape="hvh"),
                                 name=f"{label} error", showlegend=False,
                                 hovertemplate=f"error %{{x:.2e}}<br>density %{{y:.3g}}<extra>{label}</extra>"), row=1, col=2)
    fig.update_layout(bargap=0)
    fig = _style(fig, f"Weights of {layer}", "", "Density", height=430)
    fig.update_layout(legend=dict(title_text="Weights", orientation="h", y=-0.22, x=0))
    fig.update_xaxes(title_text="Weight value", row=1, col=1)
    fig.update_xaxes(title_text="Error (weight units)", row=1, col=2)
    fig.update_yaxes(title_text="Density", row=1, col=1)
    fig.update_yaxes(title_text="Density", row=1, col=2)
    return fig


def layer_error_figure(rows: list[dict], scheme: str, bits: int = 8, group_size: int = 32) -> go.Figure:
    """Relative quantization error per layer: per-tensor against per-channel (and, where the rows have it, per-group) scales.

    ``rows``: [{"layer", "tensor", "channel", "group"?}] with relative Frobenius error ||W' - W|| / ||W||.
    """
    title = f"Quantization error per layer ({scheme}, int{bits})"
    if not rows:
        return _empty(title, "This model has no Linear layers to quantize.")
    layers = [r["layer"] for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=layers, y=[r["tensor"] * 100 for r in rows], name="per tensor (one scale)", marker_color="#d62728",
                         hovertemplate="<b>%{x}</b><br>per tensor: %{y:.3f}%<extra></extra>"))
    fig.add_trace(go.Bar(x=layers, y=[r["channel"] * 100 for r in rows], name="per channel (one scale per row)", marker_color="#1f77b4",
                         hovertemplate="<b>%{x}</b><br>per channel: %{y:.3f}%<extra></extra>"))
    if all("group" in r for r in rows):
        fig.add_trace(go.Bar(x=layers, y=[r["group"] * 100 for r in rows], name=f"per group of {group_size}", marker_color="#2ca02c",
                             hovertemplate="<b>%{x}</b><br>per group: %{y:.3f}%<extra></extra>"))
    fig = _style(fig, title, "Layer", "Relative error ‖W′ − W‖ / ‖W‖ (%)", height=460)
    fig.update_layout(barmode="group", bargap=0.2,
                      legend=dict(title_text="Scales", orientation="h", x=1.0, xanchor="right", y=1.02, yanchor="bottom"))
    fig.update_xaxes(tickangle=-45, tickfont=dict(size=10))
    return fig


# -- Weights page: accuracy-aware mixed precision (onnx-int8-mixed) ---------------------------------
KEPT_FP32_COLOR = "#e7298a"      # the onnx-int8-mixed colour: the nodes the search gave back their fp32 weights
INT8_NODE_COLOR = "#9db4c8"      # every other node: quantized to int8
TARGET_COLOR = "#b23b3b"
_WRAPPERS = {"model", "bert", "roberta", "distilbert", "transformer", "encoder", "decoder", "gpt2", "base_model"}


def short_node_name(node: str) -> str:
    """An ONNX weight node as a short layer name: '/model/encoder/layer.0/output/dense/MatMul' -> 'L0 output.dense',
    'Attention_3' (a fused attention block) -> 'L3 attention', '/model/pooler/dense/MatMul' -> 'pooler.dense'."""
    name = str(node)
    fused = re.fullmatch(r"(Attention|MultiHeadAttention)(?:_(\d+))?", name)
    if fused:
        return f"L{fused.group(2) or 0} attention"
    parts = [p for p in name.strip("/").split("/") if p]
    if len(parts) > 1 and re.fullmatch(r"(MatMul|Gemm|Attention|FusedMatMul)(_\d+)?", parts[-1]):
        parts = parts[:-1]
    for i, part in enumerate(parts):
        layer = re.fullmatch(r"(?:layer|layers|h|block|blocks)\.(\d+)", part)
        if layer:
            rest = ".".join(parts[i + 1:])
            return f"L{layer.group(1)} {rest}".strip()
    kept = [p for p in parts if p not in _WRAPPERS]
    return ".".join(kept or parts) or name


def _unique_labels(names: list[str]) -> list[str]:
    """Short names, made unique (two nodes that shorten alike must not share one bar)."""
    out, seen = [], {}
    for name in names:
        label = short_node_name(name)
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def sensitivity_figure(record: dict) -> go.Figure:
    """Per weight node: fidelity loss (1 - cosine to fp32) when only that node is int8, most sensitive on top,
    the nodes the search kept in fp32 in their own colour. ``record``: core.recipes.mixed.read_sensitivity()."""
    title = "Sensitivity of each weight node (quantized to int8 alone)"
    rows = sorted(record.get("nodes") or [], key=lambda r: float(r.get("loss") or 0.0), reverse=True)
    if not rows:
        return _empty(title, "The search recorded no weight nodes.")
    kept = set(record.get("kept_fp32") or [])
    labels = _unique_labels([r["node"] for r in rows])
    losses = [float(r.get("loss") or 0.0) for r in rows]
    colors = [KEPT_FP32_COLOR if r["node"] in kept else INT8_NODE_COLOR for r in rows]
    fig = go.Figure()
    for name, color in ((f"kept in fp32 ({len(kept)})", KEPT_FP32_COLOR), (f"int8 ({len(rows) - len(kept)})", INT8_NODE_COLOR)):
        fig.add_trace(go.Bar(x=[None], y=[None], orientation="h", name=name, marker_color=color, hoverinfo="skip"))  # legend keys
    fig.add_trace(go.Bar(
        x=losses, y=labels, orientation="h", name="fidelity loss", showlegend=False, marker=dict(color=colors),
        text=[f"{v:.2g}" for v in losses], textposition="outside", cliponaxis=False, textfont=dict(size=11),
        customdata=[[r["node"], float(r.get("fidelity") or 0.0), "kept in fp32" if r["node"] in kept else "int8"] for r in rows],
        hovertemplate="<b>%{y}</b> (%{customdata[2]})<br>%{customdata[0]}<br>alone in int8: fidelity %{customdata[1]:.5f}, loss %{x:.2e}<extra></extra>",
    ))
    fig = _style(fig, title, "Fidelity loss (1 − cosine to fp32)", "", height=max(320, 110 + 22 * len(rows)))
    fig.update_layout(title_subtitle_text="loss of the model's output with only this node in int8 · longer bar = more sensitive",
                      title_subtitle_font=dict(size=12, color="#777"))
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=labels, autorange="reversed", showgrid=False, tickfont=dict(size=12))
    top = max(losses) if max(losses) > 0 else 1e-6
    fig.update_xaxes(range=[min(0.0, min(losses)), top * 1.18], exponentformat="e", showexponent="all", rangemode="tozero")
    fig.update_layout(bargap=0.25, legend=dict(title_text="", orientation="h", x=1.0, xanchor="right", y=1.0, yanchor="bottom"),
                      margin=dict(l=170, r=30, t=95, b=60))
    return fig


def fidelity_trail_figure(record: dict) -> go.Figure:
    """Output fidelity of the mixed model against the number of nodes kept in fp32 (most sensitive first),
    with the target as a dashed line."""
    title = "Fidelity as nodes go back to fp32"
    trail = sorted(record.get("trail") or [], key=lambda t: int(t.get("fp32_nodes") or 0))
    if not trail:
        return _empty(title, "The search recorded no steps.")
    kept = list(record.get("kept_fp32") or [])
    xs = [int(t.get("fp32_nodes") or 0) for t in trail]
    ys = [float(t.get("fidelity") or 0.0) for t in trail]
    added = ["nothing (all int8)" if x == 0 else (short_node_name(kept[x - 1]) if x - 1 < len(kept) else "?") for x in xs]
    fig = go.Figure()
    target = record.get("target")
    lo_x, hi_x = min(xs) - 0.4, max(max(xs), 1) + 0.6   # room for the last point's label
    if target is not None:
        fig.add_trace(go.Scatter(x=[lo_x, hi_x], y=[float(target)] * 2, mode="lines", name=f"target {float(target):g}",
                                 line=dict(color=TARGET_COLOR, width=1.5, dash="dash"), hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="lines+markers+text", name="fidelity on calibration texts", line=dict(color=KEPT_FP32_COLOR, width=2.5),
        marker=dict(size=9, color=KEPT_FP32_COLOR, line=dict(color="white", width=1.5)),
        text=[f"{v:.{_fidelity_digits(target)}f}" for v in ys], textfont=dict(size=11), cliponaxis=False, customdata=added,
        textposition=["bottom right" if target is not None and v < float(target) else "top center" for v in ys],  # off the target line
        hovertemplate="%{x} node(s) in fp32<br>fidelity %{y:.5f}<br>last added: %{customdata}<extra></extra>",
    ))
    fig = _style(fig, title, "Weight nodes kept in fp32", "Cosine to fp32", height=320)
    values = ys + ([float(target)] if target is not None else [])
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.3 or 1e-3
    fig.update_yaxes(range=[lo - pad, hi + pad], tickformat=".4f")
    fig.update_xaxes(range=[lo_x, hi_x], dtick=1, tick0=0)
    fig.update_layout(legend=dict(title_text="", orientation="h", x=0.0, y=-0.28, yanchor="top"), margin=dict(l=70, r=20, t=60, b=40))
    return fig


def _fidelity_digits(target) -> int:
    text = f"{float(target):g}" if target is not None else ""
    return max(4, len(text.split(".")[1]) if "." in text else 0)


def sensitivity_summary(record: dict, max_fp32: int | None = None) -> str:
    """The search in one sentence: '2 of 24 weight nodes stay fp32 (L0 output.dense, L4 intermediate.dense);
    fidelity on calibration texts 0.9934 → 0.9953, target 0.995.'"""
    nodes, kept = record.get("nodes") or [], list(record.get("kept_fp32") or [])
    trail = sorted(record.get("trail") or [], key=lambda t: int(t.get("fp32_nodes") or 0))
    target = record.get("target")
    final = record.get("final_fidelity", trail[-1]["fidelity"] if trail else None)
    start = trail[0]["fidelity"] if trail else final
    if final is None or target is None:
        return f"{len(kept)} of {len(nodes)} weight nodes stay fp32."
    d = _fidelity_digits(target)
    met = float(final) >= float(target) - 1e-12
    if not kept:
        return (f"All {len(nodes)} weight nodes are int8: fidelity on calibration texts {float(final):.{d}f} already "
                + (f"meets the target {float(target):g}." if met else f"misses the target {float(target):g}, and no node was allowed to stay fp32."))
    names = ", ".join(short_node_name(n) for n in kept)
    text = (f"{len(kept)} of {len(nodes)} weight nodes stay fp32 ({names}); fidelity on calibration texts "
            f"{float(start):.{d}f} → {float(final):.{d}f}, target {float(target):g}")
    if met:
        return text + "."
    cap = f" (the cap of {max_fp32})" if max_fp32 is not None and len(kept) >= int(max_fp32) else ""
    return text + f": not reached{cap}; allow more fp32 nodes or lower the target."


# -- History page: runs across machines ------------------------------------------------------------
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
        return _empty(title, "The selected runs have no latency measurements.")
    fig = _style(fig, title, "Variant", "Median latency per batch (ms)", height=440)
    fig.update_layout(barmode="group", legend=dict(title_text="Run", orientation="h", y=-0.25, x=0))
    return fig


# -- Playground ------------------------------------------------------------------------------------
def similarity_figure(texts: list[str], matrix, title: str, *, zmin: float = -0.2, zmax: float = 1.0) -> go.Figure:
    """Cosine similarity heatmap of a few sentences (labels are the sentences' first words)."""
    import numpy as np

    matrix = np.asarray(matrix, dtype=np.float64)
    labels = [html.escape(f"{i + 1}. {t[:28]}{'…' if len(t) > 28 else ''}") for i, t in enumerate(texts)]   # typed text: no plotly tags
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, zmin=zmin, zmax=zmax, colorscale="Blues", colorbar=dict(title="cosine"),
                               text=[[f"{v:.3f}" for v in row] for row in matrix], texttemplate="%{text}",
                               hovertemplate="%{y}<br>%{x}<br>cosine %{z:.4f}<extra></extra>"))
    fig = _style(fig, title, "", "", height=360 + 18 * len(texts), legend=False)
    fig.update_yaxes(autorange="reversed", showgrid=False)
    fig.update_xaxes(tickangle=-30, showgrid=False)
    return fig


def difference_figure(texts: list[str], a, b, title: str) -> go.Figure:
    """Heatmap of (b - a): how far one variant's similarities move from the other's."""
    import numpy as np

    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    span = max(float(np.abs(diff).max()), 1e-4)
    labels = [html.escape(f"{i + 1}. {t[:28]}{'…' if len(t) > 28 else ''}") for i, t in enumerate(texts)]   # typed text: no plotly tags
    fig = go.Figure(go.Heatmap(z=diff, x=labels, y=labels, zmin=-span, zmax=span, zmid=0, colorscale="RdBu", colorbar=dict(title="Δ cosine"),
                               text=[[f"{v:+.4f}" for v in row] for row in diff], texttemplate="%{text}",
                               hovertemplate="%{y}<br>%{x}<br>Δ %{z:+.5f}<extra></extra>"))
    fig = _style(fig, title, "", "", height=360 + 18 * len(texts), legend=False)
    fig.update_yaxes(autorange="reversed", showgrid=False)
    fig.update_xaxes(tickangle=-30, showgrid=False)
    return fig


# -- across hardware targets ----------------------------------------------------------------------
TARGET_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


def target_label(target: dict) -> str:
    """'edge-1 · AMD EPYC · avx2' : how a target is named on charts and selectors."""
    isa = ([f for f in target.get("isa") or [] if f in ("avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "asimddot")]
           or [f for f in target.get("isa") or []][:1])
    return " · ".join(p for p in (str(target.get("name") or target.get("id")), str(target.get("cpu") or ""), " ".join(isa)) if p)


def hardware_speedup_figure(report: dict, batch_size: int | None = None) -> go.Figure:
    """Speed-up against each target's own fp32, every variant on every target, as grouped bars (1.0 = as fast as fp32).

    The bar of each target's recommended variant is outlined and labelled with a star."""
    from .report import cross_hardware_rows

    rows = [r for r in cross_hardware_rows(report, batch_size) if r.get("variant") and r["variant"] != "fp32"]
    title = "Speed-up against fp32 on each hardware target" + (f" (batch {rows[0]['batch_size']})" if rows else "")
    if not rows:
        return _empty(title, "No target has both fp32 and another variant measured.")
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
    _style(fig, title, "Variant", "Speed-up vs that target's fp32 (x, higher is faster)", height=460)
    fig.update_layout(barmode="group", legend_title_text="Hardware target")
    return _legend_below(fig, "Hardware target")
