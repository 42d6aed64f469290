"""Compare: quality against latency with the Pareto front, sizes, latency sweeps, batching, the table against fp32, notes."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import charts
from pages._shared import load_current_report, run_page

PLOTLY_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"], "toImageButtonOptions": {"scale": 2}}


def chart(fig, key: str) -> None:
    st.plotly_chart(fig, key=key, theme=None, config=PLOTLY_CONFIG)


def headline(report: dict, rows: list[dict]) -> None:
    rec = report.get("recommended") or {}
    by_name = {r["variant"]: r for r in rows}
    c1, c2, c3, c4 = st.columns(4)
    name = rec.get("variant")
    c1.metric("Recommended", name or "none", help=rec.get("reason") or (report.get("settings") or {}).get("no_recommendation_reason"))
    row = by_name.get(name or "", {})
    c2.metric(f"Speed vs fp32 (batch {row.get('batch_size') or rec.get('batch_size') or '?'})",
              f"{row['speedup']:.2f}x" if row.get("speedup") else "—")
    if name == "fp32":
        c3.metric("Size vs fp32", "reference")
    else:
        ratio = row.get("size_ratio")
        c3.metric("Size vs fp32", "—" if not ratio else (f"{ratio:.2f}x smaller" if ratio >= 1 else f"{1 / ratio:.2f}x larger"))
    key, _, _, pct = charts.quality_spec(report)
    delta = row.get("quality_delta")
    unit = row.get("quality_unit") or ""
    c4.metric(f"Quality ({key.replace('_', ' ')})", (f"{row['quality']:.1f}%" if pct else f"{row['quality']:.4f}") if row.get("quality") is not None else "—",
              delta=(f"{delta:+.2f} {unit}".strip() if delta is not None and name != "fp32" else None),
              delta_color="off" if delta is None else ("normal" if report.get("task") != "causal-lm" else "inverse"))
    if rec.get("reason"):
        st.caption(f":material/star: **{name}**: {rec['reason']}")
    elif (report.get("settings") or {}).get("no_recommendation_reason"):
        st.caption(f":material/info: No recommendation: {report['settings']['no_recommendation_reason']}.")


def table(report: dict, rows: list[dict]) -> None:
    key, q_title, _, pct = charts.quality_spec(report)
    frame = pd.DataFrame([{
        "variant": r["variant"],
        "against fp32": r["words"],
        "speed-up": r.get("speedup"),
        "size ratio": r.get("size_ratio"),
        "p50 ms": r.get("p50_ms"),
        "size MB": r.get("size_mb"),
        key.replace("_", " ") + (" %" if pct else ""): r.get("quality"),
        "quality Δ": r.get("quality_delta"),
    } for r in rows])
    for col in frame.columns[2:]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")  # missing numbers show as blanks, not "None"
    st.dataframe(frame, hide_index=True, placeholder="—", column_config={
        "against fp32": st.column_config.TextColumn(width="large"),
        "speed-up": st.column_config.NumberColumn(format="%.2fx", help="fp32 p50 / variant p50 (higher is faster)"),
        "size ratio": st.column_config.NumberColumn(format="%.2fx", help="fp32 size / variant size (higher is smaller)"),
        "p50 ms": st.column_config.NumberColumn(format="%.2f", help="median end-to-end latency per batch, geometric mean over the length sweep"),
        "size MB": st.column_config.NumberColumn(format="%.1f"),
        key.replace("_", " ") + (" %" if pct else ""): st.column_config.NumberColumn(format="%.2f" if pct else "%.4f"),
        "quality Δ": st.column_config.NumberColumn(format="%+.3f", help="change of the headline metric against fp32 (accuracy in points, perplexity in %)"),
    })


def notes(report: dict) -> None:
    results = report.get("results") or []
    any_note = False
    for r in results:
        items = list(r.get("notes") or [])
        if r.get("error"):
            items.insert(0, f"Failed: {r['error']}")
        if not items:
            continue
        any_note = True
        slow = [n for n in items if n.startswith("Slower than fp32") or n.startswith("Failed")]
        other = [n for n in items if n not in slow]
        st.markdown(f"**{r['variant']}**")
        for n in slow:
            st.markdown(f"- :orange[:material/speed:] {n}")
        for n in other:
            st.markdown(f"- {n}")
    if not any_note:
        st.caption("No notes: every variant ran as expected on this machine.")


def measurement_caveats(report: dict) -> list[str]:
    """What the reader should know before trusting small differences: the protocol and how busy the machine was."""
    settings = report.get("settings") or {}
    env = report.get("environment") or {}
    out = []
    protocol = settings.get("protocol") or {}
    if protocol and int(protocol.get("min_iters", 10)) < 10:
        out.append(f"Quick measurement (at least {protocol.get('min_iters')} timed runs per cell): differences under about 20% can be noise; "
                   "use Standard on Models & variants before deciding.")
    load = settings.get("load_average") or {}
    cores = env.get("cores") or 0
    busy = [v for v in (load.get("start"), load.get("end")) if isinstance(v, (int, float))]
    if cores and busy and max(busy) > 0.5 * cores:
        out.append(f"The machine was busy while measuring (load average up to {max(busy):.1f} on {cores} cores): other work shared the CPU, "
                   "so timings are disturbed.")
    return out


def main() -> None:
    st.title("Compare")
    report = load_current_report()
    if report is None:
        st.info("No comparison open yet: run one on the Run page, or open a saved run on History & share.", icon=":material/info:")
        st.page_link("pages/run.py", label="Go to Run", icon=":material/play_circle:")
        return
    st.query_params["run"] = report["run_id"]
    env = report.get("environment") or {}
    data = report.get("data") or {}
    st.markdown(f"**{report['model']}** ({report['task']}) on **{data.get('name', '?')}** ({data.get('rows', '?')} rows) · "
                f"{env.get('cpu', '?')}, {env.get('threads', '?')} threads, {env.get('device', 'cpu')} · run `{report['run_id'][:8]}` · {report.get('created', '')}")
    batches, seqs = charts.batch_sizes(report), charts.seq_lengths(report)
    if not batches:
        st.warning("This run has no latency measurements (every variant failed?); the notes below say why.", icon=":material/warning:")
        notes(report)
        return
    d_batch, _ = charts.default_point(report)
    c1, c2, _ = st.columns([1, 2, 3])
    batch = c1.selectbox("Batch size", batches, index=batches.index(d_batch) if d_batch in batches else 0, key="cmp_batch")
    seq_options = [None] + seqs
    seq = c2.selectbox("Sequence length", seq_options, key="cmp_seq",
                       format_func=lambda s: "all (geometric mean)" if s is None else f"{s} tokens")
    rows = charts.reference_rows(report, batch)
    headline(report, rows)
    for caveat in measurement_caveats(report):
        st.warning(caveat, icon=":material/speed:")

    chart(charts.quality_latency_figure(report, batch, seq), "fig_quality_latency")
    left, right = st.columns(2)
    with left:
        chart(charts.size_figure(report), "fig_size")
    with right:
        chart(charts.batching_figure(report), "fig_batching")
    left, right = st.columns(2)
    with left:
        chart(charts.latency_batch_figure(report, seq if seq is not None else seqs[-1]), "fig_latency_batch")
    with right:
        chart(charts.latency_seq_figure(report, batch), "fig_latency_seq")

    st.subheader("Against the fp32 reference")
    st.caption(f"Speed at batch {batch}: geometric mean of median end-to-end latency (tokenization included) over {', '.join(map(str, seqs))} tokens. "
               "Size: the artifact on disk. Timings belong to this machine and do not transfer to other hardware.")
    table(report, rows)
    st.subheader("Notes")
    notes(report)
    st.caption(f"Share this view: add `?run={report['run_id']}` to the lab's address, or export it on History & share.")


run_page(main)
