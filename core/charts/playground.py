"""The Playground's charts: cosine similarity of a few sentences under one variant, and how another variant moves them."""

from __future__ import annotations

import html

import plotly.graph_objects as go

from .common import style_figure


def similarity_figure(texts: list[str], matrix, title: str, *, zmin: float = -0.2, zmax: float = 1.0) -> go.Figure:
    """Cosine similarity heatmap of a few sentences (labels are the sentences' first words)."""
    import numpy as np

    matrix = np.asarray(matrix, dtype=np.float64)
    labels = [html.escape(f"{i + 1}. {t[:28]}{'…' if len(t) > 28 else ''}") for i, t in enumerate(texts)]   # typed text: no plotly tags
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, zmin=zmin, zmax=zmax, colorscale="Blues", colorbar=dict(title="cosine"),
                               text=[[f"{v:.3f}" for v in row] for row in matrix], texttemplate="%{text}",
                               hovertemplate="%{y}<br>%{x}<br>cosine %{z:.4f}<extra></extra>"))
    fig = style_figure(fig, title, "", "", height=360 + 18 * len(texts), legend=False)
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
    fig = style_figure(fig, title, "", "", height=360 + 18 * len(texts), legend=False)
    fig.update_yaxes(autorange="reversed", showgrid=False)
    fig.update_xaxes(tickangle=-30, showgrid=False)
    return fig
