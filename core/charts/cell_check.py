"""Each timed cell's outputs against fp32's on the same inputs (core/measure/cell_check.py), drawn beside the latency
charts: the check's figure against sequence length, one line per variant and batch size, the budget as a line, and
cells whose outputs break it as red crosses. ``wrong_markers`` adds the same crosses to any latency chart."""

from __future__ import annotations

import plotly.graph_objects as go

from ..tasks import EMBEDDING, find_task
from .common import empty_figure, legend_below, legend_name, report_colors, style_figure, variant_marker
from .report_access import batch_sizes, is_reference, latency_points, ok_results, seq_lengths

WRONG_COLOR = "#d40000"


def _measure(report: dict, budgets: dict | None = None):
    """(the task, the measure drawn: the chosen budget's own cell figure)."""
    task = find_task(report.get("task"), default=EMBEDDING)
    return task, task.chosen_budget(report.get("budgets") if budgets is None else budgets)


def cells_of(result: dict) -> list[dict]:
    """A result's timed cells, each with ``x``: its sequence length (latency) or prompt length (generation)."""
    return [dict(c, x=c.get("seq_len", c.get("prompt_len"))) for c in (result.get("latency") or []) + (result.get("generation") or [])]


def has_checks(report: dict) -> bool:
    task = find_task(report.get("task"), default=EMBEDDING)
    return any(c.get(task.budget.cell_metric) is not None for r in ok_results(report) for c in cells_of(r))


def fidelity_figure(report: dict, budgets: dict | None = None) -> go.Figure:
    """The check's figure against sequence length per variant (solid: the smallest batch size, dashed: the others), on
    the measure the budget is on (``budgets``: the ones shown, else the run's own); batch sizes too small for that
    measure show the default measure's figure, on its own axis when nothing else can."""
    task, (chosen, limit) = _measure(report, budgets)
    shown = chosen if any(c.get(chosen.cell_metric) is not None for r in ok_results(report) for c in cells_of(r)) else task.budget
    generating = any(r.get("generation") for r in ok_results(report))
    field, axis = shown.cell_metric, shown.cell_axis
    title = "Outputs against fp32 at every timed shape"
    if not has_checks(report):
        return empty_figure(title, "This report has no per-cell output checks (measured before the lab checked them).")
    colors = report_colors(report)
    fig = go.Figure()
    batches = batch_sizes(report)
    for r in ok_results(report):
        if is_reference(r["variant"]):
            continue
        for k, b in enumerate(batches):
            pts = sorted((c for c in cells_of(r) if c.get("batch_size") == b and c.get(field) is not None), key=lambda c: c["x"])
            if not pts:
                continue
            name, color = r["variant"], colors[r["variant"]]
            fig.add_trace(go.Scatter(
                x=[c["x"] for c in pts], y=[c[field] for c in pts], mode="lines+markers", name=f"{legend_name(name)} · batch {b}",
                line=dict(color=color, width=2.5, dash="solid" if k == 0 else "dash"), marker=variant_marker(name, color, 9),
                hovertemplate=f"<b>{name}</b> batch {b}<br>%{{x}} tokens<br>%{{y:.4f}}<extra></extra>"))
            wrong = [c for c in pts if _wrong(task, c, budgets)]
            if wrong:
                fig.add_trace(go.Scatter(x=[c["x"] for c in wrong], y=[c[field] for c in wrong], mode="markers", showlegend=False,
                                         marker=dict(symbol="x-thin", size=18, line=dict(width=4, color=WRONG_COLOR)),
                                         hovertemplate=f"<b>{name}</b> batch {b}: outputs wrong at %{{x}} tokens<extra></extra>"))
    fig = style_figure(fig, title, "Prompt length (tokens)" if generating else "Sequence length (tokens)", axis)
    if budgets is not None:
        edge = shown.on_cell(limit if shown is chosen else shown.default)
        fig.add_hline(y=edge, line=dict(color=WRONG_COLOR, dash="dot", width=1.5), annotation_position="bottom right",
                      annotation_text=f"budget ({shown.words(limit if shown is chosen else shown.default)})")
    fig.update_layout(title_subtitle_text="each cell's own inputs, the very ones it was timed on · red ✕: outputs beyond the budget",
                      title_subtitle_font=dict(size=12, color="#777"))
    xs = seq_lengths(report)
    fig.update_xaxes(tickvals=xs, ticktext=[str(x) for x in xs])
    legend_below(fig)
    return fig


def _wrong(task, cell: dict, budgets: dict | None) -> bool:
    """Whether a cell's outputs break ``budgets`` (the run's own verdict when none are given)."""
    if budgets is None:
        return bool(cell.get("out_wrong"))
    from ..reporting.cells import GenerationCell, LatencyCell

    kind = GenerationCell if "prompt_len" in cell else LatencyCell   # a generation cell has a prompt length instead
    ok, _ = task.cell_verdict(kind.from_dict(cell), budgets)
    return ok is False


def wrong_markers(fig: go.Figure, report: dict, *, vary: str, fixed_value, speed_of) -> None:
    """Red crosses on a latency chart at the cells whose outputs break the budget (``speed_of(cell)``: its y value)."""
    fixed = "seq_len" if vary == "batch_size" else "batch_size"
    xs, ys, names = [], [], []
    for r in ok_results(report):
        for c in latency_points(r):
            if c.get("out_wrong") and c.get(fixed) == fixed_value and speed_of(c) is not None:
                xs.append(c[vary])
                ys.append(speed_of(c))
                names.append(r["variant"])
    if xs:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="outputs wrong here", customdata=names,
                                 marker=dict(symbol="x-thin", size=20, line=dict(width=4, color=WRONG_COLOR)),
                                 hovertemplate="<b>%{customdata}</b>: outputs wrong at this shape<extra></extra>", legendrank=2000))
