"""The Weights page's charts of accuracy-aware mixed precision (``onnx-int8-mixed``): how sensitive each weight node is,
how the output fidelity climbs as nodes go back to fp32, and the search in one sentence."""

from __future__ import annotations

import re

import plotly.graph_objects as go

from .common import RECIPE_COLORS, empty_figure, style_figure

KEPT_FP32_COLOR = RECIPE_COLORS["onnx-int8-mixed"]   # the onnx-int8-mixed colour: the nodes the search gave back their fp32 weights
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
    the nodes the search kept in fp32 in their own colour. ``record``: core.recipes.onnxrt.mixed.read_sensitivity()."""
    title = "Sensitivity of each weight node (quantized to int8 alone)"
    rows = sorted(record.get("nodes") or [], key=lambda r: float(r.get("loss") or 0.0), reverse=True)
    if not rows:
        return empty_figure(title, "The search recorded no weight nodes.")
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
    fig = style_figure(fig, title, "Fidelity loss (1 − cosine to fp32)", "", height=max(320, 110 + 22 * len(rows)))
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
        return empty_figure(title, "The search recorded no steps.")
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
    fig = style_figure(fig, title, "Weight nodes kept in fp32", "Cosine to fp32", height=320)
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
