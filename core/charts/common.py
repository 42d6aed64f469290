"""What every chart shares: the colour of each recipe (one table, ``RECIPE_COLORS``), the fp32 reference's look, the
layout defaults, and the words of the speed axis.

Every chart uses the same colour for a variant (``variant_colors``), marks the fp32 reference the same way
(dark grey, diamond, "fp32 reference"), names its units on the axes, and works on a report that was
loaded from JSON (nothing here needs torch or Streamlit).
"""

from __future__ import annotations

import itertools
from typing import Iterable

import plotly.graph_objects as go

from ..scenarios import scenario_of
from .report_access import is_reference, seq_lengths

REFERENCE_COLOR = "#3b3b3b"
from ..recipes.registry import COLORS as RECIPE_COLORS  # noqa: E402 - each recipe family declares its colours (core/recipes/<family>/)

EXTRA_COLORS = ["#6a3d9a", "#b15928", "#1b9e77", "#7fc97f", "#66a61e", "#7570b3", "#e6ab02", "#386cb0", "#f0027f", "#bf5b17"]
FONT = dict(family="Inter, 'Source Sans Pro', Helvetica, Arial, sans-serif", size=13)


def recipe_of(variant: str) -> str:
    return str(variant).split(":", 1)[0]


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


def speed_words(report: dict) -> dict:
    """Axis titles and units of the speed figure: end-to-end latency per batch, or decode time per token."""
    return scenario_of(report).speed.as_dict()


def point_words(report: dict, batch_size: int | None, seq_len: int | None) -> str:
    prompt = scenario_of(report).speed.suffix
    if seq_len is not None:
        return f"batch {batch_size}, {seq_len}{prompt}"
    seqs = seq_lengths(report)
    if len(seqs) == 1:
        return f"batch {batch_size}, {seqs[0]}{prompt}"
    return f"batch {batch_size}, geometric mean over {', '.join(map(str, seqs))}{prompt}"


def style_figure(fig: go.Figure, title: str, x_title: str, y_title: str, *, height: int = 420, legend: bool = True) -> go.Figure:
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


def legend_below(fig: go.Figure, title: str = "Variant") -> go.Figure:
    """A horizontal legend under the plot, so a half-width chart keeps its plotting area."""
    fig.update_layout(legend=dict(title_text=title, orientation="h", x=0.0, xanchor="left", y=-0.22, yanchor="top", bgcolor="rgba(0,0,0,0)"),
                      margin=dict(l=70, r=20, t=70, b=40))
    return fig


def empty_figure(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=14, color="#666"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return style_figure(fig, title, "", "", height=300, legend=False)


def variant_marker(variant: str, color: str, size: int = 13) -> dict:
    if is_reference(variant):
        return dict(color=color, size=size + 3, symbol="diamond", line=dict(color="white", width=1.5))
    return dict(color=color, size=size, symbol="circle", line=dict(color="white", width=1.5))


def legend_name(variant: str) -> str:
    return f"{variant} (reference)" if is_reference(variant) else variant
