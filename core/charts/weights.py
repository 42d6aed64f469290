"""The Weights page's charts of weight-only quantization: a layer's weights against their int8/int4 round trips,
and the quantization error per layer with per-tensor, per-channel and per-group scales."""

from __future__ import annotations

import plotly.graph_objects as go

from .common import RECIPE_COLORS, REFERENCE_COLOR, empty_figure, style_figure

SCHEME_COLORS = {"original": REFERENCE_COLOR, "absmax": RECIPE_COLORS["absmax-int8"], "zeropoint": RECIPE_COLORS["zeropoint-int8"]}


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
    fig = style_figure(fig, f"Weights of {layer}", "", "Density", height=430)
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
        return empty_figure(title, "This model has no Linear layers to quantize.")
    layers = [r["layer"] for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=layers, y=[r["tensor"] * 100 for r in rows], name="per tensor (one scale)", marker_color="#d62728",
                         hovertemplate="<b>%{x}</b><br>per tensor: %{y:.3f}%<extra></extra>"))
    fig.add_trace(go.Bar(x=layers, y=[r["channel"] * 100 for r in rows], name="per channel (one scale per row)", marker_color="#1f77b4",
                         hovertemplate="<b>%{x}</b><br>per channel: %{y:.3f}%<extra></extra>"))
    if all("group" in r for r in rows):
        fig.add_trace(go.Bar(x=layers, y=[r["group"] * 100 for r in rows], name=f"per group of {group_size}", marker_color="#2ca02c",
                             hovertemplate="<b>%{x}</b><br>per group: %{y:.3f}%<extra></extra>"))
    fig = style_figure(fig, title, "Layer", "Relative error ‖W′ − W‖ / ‖W‖ (%)", height=460)
    fig.update_layout(barmode="group", bargap=0.2,
                      legend=dict(title_text="Scales", orientation="h", x=1.0, xanchor="right", y=1.02, yanchor="bottom"))
    fig.update_xaxes(tickangle=-45, tickfont=dict(size=10))
    return fig
