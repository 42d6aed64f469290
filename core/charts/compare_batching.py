"""The Compare page's whole-dataset throughput chart: length-sorted batches against batches in file order."""

from __future__ import annotations

import plotly.graph_objects as go

from ..reporting.throughput import DatasetThroughput, ThroughputMode, throughput_summary
from .common import empty_figure, legend_below, report_colors, style_figure
from .report_access import ok_results


def _spread(mode: ThroughputMode, median: float | None) -> tuple[float | None, float | None]:
    """(above, below) the median to the pass maximum / minimum: the whiskers (None without repeated passes)."""
    lo, hi = mode.rate("texts_per_s_min"), mode.rate("texts_per_s_max")
    if median is None or lo is None or hi is None:
        return None, None
    return max(0.0, hi - median), max(0.0, median - lo)


def _pct(value) -> str:
    return f"{float(value):.0%}" if isinstance(value, (int, float)) else "n/a"


def batching_figure(report: dict) -> go.Figure:
    """Whole-dataset throughput with length-sorted batches against batches in file order: median texts/s over
    alternated passes, whiskers from the slowest to the fastest pass, the padding fraction of each mode, and per
    variant either the gain or "no difference within noise" (the two ranges overlap). At batch 1 a note says that
    sorting cannot matter there (no padding)."""
    title = "Sorted against unsorted batching (whole dataset)"
    colors = report_colors(report)
    tputs = [(r, DatasetThroughput.from_dict(r.get("dataset_throughput"))) for r in ok_results(report)]   # its one parser, every age
    sizes = {dt.batch_size for _, dt in tputs} - {None}
    if len(sizes) == 1:
        title = f"Sorted against unsorted batching (whole dataset, batch {next(iter(sizes))})"
    rows = []
    for r, dt in tputs:
        s, u = dt.mode("sorted").rate(), dt.mode("unsorted").rate()
        if s is not None or u is not None:
            rows.append((r["variant"], dt, s, u, throughput_summary(dt)))
    if not rows:
        return empty_figure(title, "Dataset throughput was not measured in this run.")
    names = [row[0] for row in rows]
    cols = [colors[n] for n in names]
    pads = {mode: {row[1].mode(mode).padding_fraction for row in rows} for mode in ("sorted", "unsorted")}
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
        spreads = [_spread(row[1].mode(mode), y) for row, y in zip(rows, ys)]
        whiskers = any(up is not None for up, _ in spreads)
        tops += [y + (up or 0.0) for y, (up, _) in zip(ys, spreads) if y is not None]
        custom = [[m.rate("texts_per_s_min"), m.rate("texts_per_s_max"), m.passes or 1, _pct(m.padding_fraction)]
                  for m in (row[1].mode(mode) for row in rows)]
        fig.add_trace(go.Bar(
            x=names, y=ys, name=label, showlegend=False, offsetgroup=group,
            marker=dict(color=cols, opacity=opacity, pattern=dict(shape=pattern, fgcolor="white", size=7)),
            error_y=dict(type="data", symmetric=False, array=[up or 0.0 for up, _ in spreads], arrayminus=[down or 0.0 for _, down in spreads],
                         color="#444", thickness=1.4, width=5, visible=whiskers),
            text=[f"{y:.0f}" if y is not None else "" for y in ys], textposition="inside", insidetextanchor="start", textangle=0,
            customdata=custom,
            hovertemplate=f"<b>%{{x}}</b><br>{mode}: %{{y:.1f}} texts/s (median)<br>range over passes: %{{customdata[0]:.1f}} to %{{customdata[1]:.1f}}"
                          "<br>passes: %{customdata[2]}<br>padding: %{customdata[3]} of tokens fed<extra></extra>"))
    fig = style_figure(fig, title, "Variant", "Throughput (texts/s, higher is better)")
    fig.update_layout(barmode="group", bargap=0.3)
    legend_below(fig, "Batching")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=names)
    if len(shared_pad) < 2 and any(isinstance(row[1].mode("sorted").padding_fraction, (int, float)) for row in rows):
        fig.update_xaxes(tickmode="array", tickvals=names, ticktext=[  # padding differs by variant: label it under each name
            f"{row[0]}<br>padding {_pct(row[1].mode('unsorted').padding_fraction)} → {_pct(row[1].mode('sorted').padding_fraction)}"
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
        group_top = max(v + (_spread(dt.mode(m), v)[0] or 0.0) for m, v in (("sorted", s), ("unsorted", u)) if v is not None)
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
