"""Compare: quality against latency with the Pareto front, sizes, latency sweeps, batching, the table against fp32, notes."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.charts.cell_check import fidelity_figure, has_checks
from core.charts.compare import latency_batch_figure, latency_seq_figure, quality_latency_figure, size_figure
from core.charts.compare_batching import batching_figure
from core.charts.compare_generation import tokens_per_s_figure, ttft_figure
from core.charts.cross_hardware import hardware_speedup_figure
from core.charts.report_access import (
    batch_sizes,
    default_point,
    generation_cells,
    is_generation,
    ok_results,
    quality_spec,
    reference_quality,
    reference_rows,
    seq_lengths,
    target_label,
)
from core.tasks import EMBEDDING, find_task
from ui.shared import guarded, load_current_report, md, opened_by_link, owner, owner_email, run_page, visitor

ALL_SEQS = 0   # the sequence-length choice "all (geometric mean)" (None would show as no choice)
PLOTLY_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"], "toImageButtonOptions": {"scale": 2}}


def chart(fig, key: str) -> None:
    st.plotly_chart(fig, key=key, theme=None, config=PLOTLY_CONFIG)


def report_budgets(report: dict) -> dict:
    """The budgets the run was recommended with (the defaults for reports that did not record them)."""
    from core.reporting.recommend import budgets_for

    try:
        return budgets_for(report.get("budgets") or {})
    except (TypeError, ValueError):
        return budgets_for({})


def live_recommendation(report: dict, budgets: dict, batch: int) -> dict | None:
    """The recommendation recomputed from the report's measurements for these budgets and batch size."""
    from core.reporting.recommend import recommend

    return recommend(report.get("results") or [], report.get("task") or EMBEDDING, budgets, int(batch),
                     reference_quality=reference_quality(report) or None)


def recommendation_controls(report: dict, batches: list[int], seqs: list[int]) -> tuple[int, int | None, dict]:
    """Batch size (charts and recommendation), sequence length (charts), and the quality budget: the measure it is on
    and its limit; each reset to the run's own when another run opens. Returns the budgets to judge by."""
    from core.reporting.recommend import with_budget

    ss = st.session_state
    task = find_task(report.get("task"), default=EMBEDDING)
    saved, saved_limit = task.chosen_budget(report_budgets(report))
    if ss.get("cmp_for_run") != report["run_id"]:
        d_batch, _ = default_point(report)
        ss["cmp_for_run"] = report["run_id"]
        ss["cmp_batch"] = d_batch if d_batch in batches else batches[0]
        ss["cmp_seq"] = ALL_SEQS
        ss["cmp_measure"] = saved.key
        for b in task.all_budgets:
            ss[f"cmp_budget_{b.key}"] = min(max(saved_limit if b is saved else b.default, b.min_value), b.max_value)
    if ss.get("cmp_batch") not in batches:
        d_batch, _ = default_point(report)
        ss["cmp_batch"] = d_batch if d_batch in batches else batches[0]
    if ss.get("cmp_seq") not in [ALL_SEQS] + seqs:
        ss["cmp_seq"] = ALL_SEQS
    if task.budget_by_key(ss.get("cmp_measure") or "") is None:
        ss["cmp_measure"] = saved.key
    for b in task.all_budgets:
        ss.setdefault(f"cmp_budget_{b.key}", min(max(saved_limit if b is saved else b.default, b.min_value), b.max_value))
    c1, c2, c3, c4 = st.columns([1.1, 1.4, 1.5, 1.8])
    batch = c1.selectbox("Batch size", batches, key="cmp_batch", persist_state="session",
                         help="The batch size the charts, the table and the recommendation are read at.")
    length = "Prompt length (charts)" if is_generation(report) else "Sequence length (charts)"
    seq = c2.selectbox(length, [ALL_SEQS] + seqs, key="cmp_seq",
                       format_func=lambda s: "all (geometric mean)" if s == ALL_SEQS else f"{s} tokens", persist_state="session",
                       help="The recommendation always uses the geometric mean over every measured length.")
    keys = [b.key for b in task.all_budgets]
    c3.selectbox("Budget on", keys, key="cmp_measure", format_func=lambda k: task.budget_by_key(k).quantity, persist_state="session",
                 help="The quality measure the budget applies to: the recommendation and each timed cell's mark follow it.")
    spec = task.budget_by_key(ss["cmp_measure"])
    limit = c4.number_input(spec.label, min_value=spec.min_value, max_value=spec.max_value, step=spec.step, format=spec.fmt,
                            key=f"cmp_budget_{spec.key}", persist_state="session",
                            help=spec.help + " Changing it here recomputes the recommendation from the saved measurements; nothing is measured again.")
    return int(batch), (None if seq == ALL_SEQS else int(seq)), with_budget(report_budgets(report), task.name, spec.key, float(limit))


def budget_in_words(report: dict, budgets: dict) -> str:
    budget, limit = find_task(report.get("task"), default=EMBEDDING).chosen_budget(budgets)
    return budget.words(limit)


def recommendation_box(report: dict, rec: dict | None, budgets: dict, batch: int) -> None:
    """The recommendation and its reason in words, prominently; and how it differs from what the saved run said."""
    if rec:
        name, reason = rec["variant"], rec.get("reason") or ""
        words = f"**{md(name)}** {md(reason[len(name):], 1000)}" if reason.startswith(name) else f"**{md(name)}** — {md(reason, 1000)}"
        st.success(f"**Recommended:** {words}.", icon=":material/star:")
    else:
        measured_ref = any(r.get("variant") == "fp32" and not r.get("error") for r in report.get("results") or [])
        st.warning(f"**No recommendation at batch {batch}**: no measured variant keeps {budget_in_words(report, budgets)}"
                   + ("" if measured_ref else " (fp32 was not measured; with it there is always an answer)") + ".", icon=":material/info:")
    saved = report.get("recommended") or {}
    saved_words = budget_in_words(report, report_budgets(report))
    saved_batch = saved.get("batch_size") or (report.get("settings") or {}).get("recommend_batch_size")
    if budget_in_words(report, budgets) != saved_words or (saved_batch and batch != saved_batch):
        st.caption(f"Live for this view: the saved run recommended **{md(saved.get('variant') or 'nothing')}** with {saved_words}"
                   + (f" at batch {saved_batch}" if saved_batch else "") + ". Exports keep the saved recommendation.")


def by_batch_line(report: dict, budgets: dict, batches: list[int]) -> None:
    """The recommendation at every timed batch size, for this budget: the winner changes with the batch size a team
    deploys at ("batch 1: onnx-int8 · batch 32: openvino-bf16")."""
    if len(batches) < 2:
        return
    picks = [(b, live_recommendation(report, budgets, b)) for b in batches]
    words = " · ".join(f"batch {b}: **{md(r['variant'])}**" if r else f"batch {b}: none within budget" for b, r in picks)
    st.markdown(f":material/stacks: Recommended at each batch size: {words}", help="Each is the fastest variant within the budget at "
                "that batch size, whose outputs stay within it at every timed sequence length there.")


def headline(report: dict, rows: list[dict], rec: dict | None) -> None:
    rec = rec or {}
    by_name = {r["variant"]: r for r in rows}
    c1, c2, c3, c4 = st.columns(4)
    name = rec.get("variant")
    c1.metric("Recommended", name or "none", help=md(rec.get("reason"), 1000) or "No measured variant stays within the quality budget at this batch size.")
    row = by_name.get(name or "", {})
    c2.metric(f"Speed vs fp32 (batch {row.get('batch_size') or rec.get('batch_size') or '?'})",
              f"{row['speedup']:.2f}x" if row.get("speedup") else "—")
    if name == "fp32":
        c3.metric("Size vs fp32", "reference")
    else:
        ratio = row.get("size_ratio")
        c3.metric("Size vs fp32", "—" if not ratio else (f"{ratio:.2f}x smaller" if ratio >= 1 else f"{1 / ratio:.2f}x larger"))
    key, _, higher, pct = quality_spec(report)
    delta = row.get("quality_delta")
    unit = row.get("quality_unit") or ""
    c4.metric(f"Quality ({key.replace('_', ' ')})", (f"{row['quality']:.1f}%" if pct else f"{row['quality']:.4f}") if row.get("quality") is not None else "—",
              delta=(f"{delta:+.{4 if unit == 'cosine' else 2}f} {unit}".strip() if delta is not None and name != "fp32" else None),
              delta_color="off" if delta is None else ("normal" if higher else "inverse"))


def table(report: dict, rows: list[dict]) -> None:
    key, q_title, _, pct = quality_spec(report)
    speed = "p50 ms/token" if is_generation(report) else "p50 ms"
    frame = pd.DataFrame([{
        "variant": r["variant"],
        "against fp32": r["words"],
        "speed-up": r.get("speedup"),
        "size ratio": r.get("size_ratio"),
        speed: r.get("p50_ms"),
        "size MB": r.get("size_mb"),
        key.replace("_", " ") + (" %" if pct else ""): r.get("quality"),
        "quality Δ": r.get("quality_delta"),
        "matmul kernels": r.get("kernels") or "",
    } for r in rows])
    for col in frame.columns[2:-1]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")  # missing numbers show as blanks, not "None"
    st.dataframe(frame, hide_index=True, placeholder="—", column_config={
        "against fp32": st.column_config.TextColumn(width="large"),
        "speed-up": st.column_config.NumberColumn(format="%.2fx", help="fp32 p50 / variant p50 (higher is faster)"),
        "size ratio": st.column_config.NumberColumn(format="%.2fx", help="fp32 size / variant size (higher is smaller)"),
        speed: st.column_config.NumberColumn(format="%.2f",
                                             help="decode time per generated token, geometric mean over the prompt lengths" if speed.endswith("token")
                                             else "median end-to-end latency per batch, geometric mean over the length sweep"),
        "size MB": st.column_config.NumberColumn(format="%.1f"),
        key.replace("_", " ") + (" %" if pct else ""): st.column_config.NumberColumn(format="%.2f" if pct else "%.4f"),
        "quality Δ": st.column_config.NumberColumn(format="%+.3f", help="change of the headline metric against fp32 (accuracy in points, perplexity in %)"),
        "matmul kernels": st.column_config.TextColumn(width="medium", help="the instruction set its matrix multiplications ran on, as its runtime "
                                                      "reports it (OpenVINO's runtime graph, oneDNN's verbose output); the notes give the runtime's own names"),
    })


def generated_texts(report: dict, batch: int) -> None:
    """What each variant generated after the first prompt (greedy, so the same prompt gives the same text), with its
    speed and agreement with fp32."""
    rows = []
    for r in ok_results(report):
        for g in generation_cells(r, batch):
            agree = r.get("generation_agreement")
            rows.append({"variant": r["variant"], "prompt": g["prompt_len"], "tokens/s": g.get("tokens_per_s"),
                         "agrees with fp32": agree * 100 if agree is not None else None, "KV cache": "yes" if g.get("kv_cache") else "no",
                         "generated text (first prompt)": g.get("sample") or ""})
    st.markdown("**Generated text** (greedy, first prompt of each length)")
    if not rows:
        st.caption("No generation was measured at this batch size.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
        "tokens/s": st.column_config.NumberColumn(format="%.1f"),
        "agrees with fp32": st.column_config.NumberColumn(format="%.0f%%", help="share of greedy tokens equal to fp32's for the same prompts (all lengths)"),
        "generated text (first prompt)": st.column_config.TextColumn(width="large"),
    })


def wrong_cells(report: dict, budgets: dict) -> None:
    """Each variant whose outputs break the budget at a timed shape, in words that name the shape (at these budgets)."""
    from core.reporting.recommend import mark_cells, wrong_words
    from core.reporting.results import VariantResult

    task = report.get("task") or EMBEDDING
    found = False
    for r in report.get("results") or []:
        if r.get("error") or r.get("variant") == "fp32":
            continue
        result = VariantResult.from_dict(r)
        mark_cells([result], task, budgets)
        words = wrong_words(result, task, budgets)
        if words:
            found = True
            st.error(f"**{md(r['variant'])}**: {md(words)}. Its latency there timed wrong outputs; it is not recommended at those batch sizes.",
                     icon=":material/error:")
    if not found:
        st.success("Every timed cell's outputs stay within the budget against fp32's on the same inputs.", icon=":material/task_alt:")
    st.caption("Each latency cell's last timed call is compared with fp32's outputs for the very same inputs "
               "(embeddings: cosine; classification: labels; causal LMs: KL divergence of the next-token distributions).")


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
        st.markdown(f"**{md(r['variant'])}**")
        for n in slow:
            st.markdown(f"- :orange[:material/speed:] {md(n, 2000)}")
        for n in other:
            st.markdown(f"- {md(n, 2000)}")
    if not any_note:
        st.caption("No notes: every variant ran as expected on this machine.")


def throughput_caption(report: dict) -> None:
    """Under the batching chart: each variant's sorted / unsorted texts/s with their ranges, and the verdict in words."""
    from core.reporting.throughput_table import throughput_heading, throughput_rows

    rows = throughput_rows(report)
    if rows:
        st.caption(throughput_heading(rows) + ":  \n" + "  \n".join(
            f"**{r['variant']}**: {r['sorted_range']} / {r['unsorted_range']}; {r['words']}." for r in rows))


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


def hardware_view(report: dict) -> dict | None:
    """The cross-hardware view of a comparison run on several targets; returns the chosen target's own report for
    the detailed charts below it (None when no target finished)."""
    from core.reporting.compare import cross_hardware_rows
    from core.reporting.results import Report

    targets = report.get("hardware") or []
    st.subheader("Across hardware targets")
    for t in targets:
        if t.get("status") != "ok":
            st.warning(f"**{md(t.get('name'))}**: {md(t.get('error') or t.get('status'))}. The other targets' results are kept.", icon=":material/cloud_off:")
    ok = [t for t in targets if t.get("status") == "ok"]
    if not ok:
        return None
    versions = {str((t.get("probe") or {}).get("lab_version")) for t in ok if (t.get("probe") or {}).get("lab_version")}
    if len(versions) > 1:
        st.warning("The targets ran different versions of the lab's code; update every node's checkout for a like-for-like comparison.",
                   icon=":material/difference:")
    batches = batch_sizes(report)
    if st.session_state.get("cmp_xbatch") not in batches:
        st.session_state["cmp_xbatch"] = default_point(report)[0] if default_point(report)[0] in batches else batches[0]
    batch = st.selectbox("Batch size (across targets)", batches, key="cmp_xbatch", help="Speed-ups are against each target's own fp32 at this batch size.")
    chart(hardware_speedup_figure(report, batch), "fig_hardware_speedup")
    cols = st.columns(min(3, len(ok)))
    for i, t in enumerate(ok):
        rec = (report.get("recommended_by_hardware") or {}).get(t["id"])
        with cols[i % len(cols)]:
            st.markdown(f"**{md(t.get('name'))}** · {md(t.get('cpu') or '?')}  \n" + (" · ".join(md(f) for f in t.get("isa") or []) or "no vector int8 flags"))
            if rec:
                st.success(f"Ship **{md(rec['variant'])}**: {md(rec.get('reason', ''))}", icon=":material/star:")
            else:
                st.info("No variant within the quality budget here.", icon=":material/info:")
    rows = [r for r in cross_hardware_rows(report, batch) if r.get("variant")]
    frame = pd.DataFrame([{"target": r["name"], "variant": r["variant"], "p50 ms": r.get("p50_ms"), "x fp32 speed": r.get("speedup"),
                           "x smaller": r.get("size_ratio"), "change against fp32": r.get("words"), "recommended": "★" if r.get("recommended") else ""}
                          for r in rows])
    st.dataframe(frame, hide_index=True, column_config={"p50 ms": st.column_config.NumberColumn(format="%.2f"),
                                                        "x fp32 speed": st.column_config.NumberColumn(format="%.2fx"),
                                                        "x smaller": st.column_config.NumberColumn(format="%.2fx")})
    st.caption("Each target built its own variants and its own fp32 reference and measured them on its own cores: "
               "no timing or artifact is copied between machines.")
    by_id = {t["id"]: t for t in ok}
    if st.session_state.get("cmp_target") not in by_id:
        st.session_state["cmp_target"] = ok[0]["id"]
    chosen = st.selectbox("Detailed charts for", list(by_id), key="cmp_target", format_func=lambda i: target_label(by_id[i]))
    st.divider()
    return Report.from_dict(report).for_hardware(chosen).to_dict()


def download_controls(report: dict, variant: str, key: str) -> None:
    """A Download button for one variant (a zip of the folder ``python -m core export`` writes) and its snippet."""
    from pathlib import Path

    from core.access import hosting
    from core.storage import audit, exports

    if opened_by_link(report.get("run_id")):
        st.caption(":material/lock: Opened through a share link: downloads of the variants are for the run's owner.")
        return
    made = st.session_state.setdefault("exports_made", {})   # "model|task|variant" -> export id, prepared this session
    ident = f"{report['model']}|{report['task']}|{variant}"
    rec = exports.latest(report["model"], report["task"], variant, origin="dashboard")
    if rec is None or ident not in made:
        who, limit = visitor(), hosting.exports_per_visitor()
        over = bool(limit) and hosting.exports_used(who) >= limit and ident not in made
        label = "Prepare download again" if rec else "Prepare download (zip)"
        if st.button(label, key=f"exp_prep_{key}", icon=":material/folder_zip:", disabled=over,
                     help="Writes the variant as a folder that runs without the lab (weights, tokenizer, qlab.json, README with a "
                          "load-and-run snippet) and zips it. The store entry is only read."):
            with guarded():
                hosting.take_export(who, ident)   # counts per person with sign-in on, across their browsers
                try:
                    with st.spinner(f"Exporting {variant} ..."):
                        rec = exports.prepare_download(report["model"], report["task"], variant, max_bytes=hosting.export_cap_bytes(),
                                                       owner=owner(), owner_email=owner_email())
                except Exception:
                    hosting.give_back_export(who, ident)   # a download that failed does not count
                    raise
                made[ident] = rec["id"]
                audit.record("exported", owner(), variant, email=owner_email(), model=report["model"], export=rec["id"][:8])
            if ident in made:
                st.rerun()   # every button of this variant (row and recommended card) and the limits show the new download
    if rec:
        zip_path = Path(rec["zip"])
        st.download_button(f"Download {variant} ({(rec.get('zip_bytes') or 0) / 2**20:.1f} MB zip)", data=lambda p=zip_path: p.read_bytes(),
                           file_name=zip_path.name, mime="application/zip", key=f"exp_dl_{key}", icon=":material/download:", on_click="ignore",
                           type="primary")
        from core.exporting.snippets import snippet_of

        code = snippet_of(rec)
        if code:
            st.caption(f"Unzip, then from inside the folder (needs {', '.join(rec.get('runtime') or [])}, never the lab):")
            st.code(code, language="python")
    else:
        st.caption("The download is a folder that runs without the lab, with a load-and-run snippet of at most 15 lines.")


def take_it_home(report: dict, results: list[dict]) -> None:
    """One download per measured variant, with the hosted limits in words."""
    from core.access import hosting

    st.subheader("Take it home")
    words = hosting.export_limits_words(hosting.exports_used(visitor()))
    st.caption("Download any variant as a folder that runs without the lab: its weights in a safe format (ONNX or safetensors), "
               "the tokenizer, qlab.json (spec, source fingerprint, inputs and outputs, post-processing, versions, what was measured here) "
               "and a README with a load-and-run snippet." + (f" {words}" if words else ""))
    for r in results:
        if r.get("error"):
            continue
        with st.expander(f"{r['variant']}", icon=":material/folder_zip:"):
            download_controls(report, r["variant"], f"row_{r['variant']}")


def main() -> None:
    st.title("Compare")
    report = load_current_report()
    if report is None:
        st.info("No comparison open yet: run one on the Run page, or open a saved run on History & share.", icon=":material/info:")
        st.page_link("pages/run.py", label="Go to Run", icon=":material/play_circle:")
        return
    st.query_params["run"] = report["run_id"]
    st.session_state["opened_link"] = report["run_id"]   # the address names the run shown, not a new one to open (app.py)
    if report.get("hardware"):
        report = hardware_view(report)
        if report is None:
            st.error("No hardware target finished this comparison; the warnings above say why.", icon=":material/error:")
            return
    env = report.get("environment") or {}
    data = report.get("data") or {}
    st.markdown(f"**{md(report['model'])}** ({md(report['task'])}) on **{md(data.get('name', '?'))}** ({md(data.get('rows', '?'))} rows) · "
                f"{md(env.get('cpu', '?'))}, {md(env.get('threads', '?'))} threads, {md(env.get('device', 'cpu'))} · "
                f"run `{report['run_id'][:8]}` · {md(report.get('created', ''))}")
    batches, seqs = batch_sizes(report), seq_lengths(report)
    if not batches:
        st.warning("This run has no latency measurements (every variant failed?); the notes below say why.", icon=":material/warning:")
        notes(report)
        return
    batch, seq, budgets = recommendation_controls(report, batches, seqs)
    rec = live_recommendation(report, budgets, batch)
    recommendation_box(report, rec, budgets, batch)
    by_batch_line(report, budgets, batches)
    if rec and rec.get("variant"):
        with st.expander(f"Download {rec['variant']}, the recommended variant", icon=":material/download:"):
            download_controls(report, rec["variant"], "recommended")
    rows = reference_rows(report, batch)
    headline(report, rows, rec)
    for caveat in measurement_caveats(report):
        st.warning(caveat, icon=":material/speed:")

    live = dict(report, recommended=rec, budgets=budgets)
    chart(quality_latency_figure(live, batch, seq, budgets=live["budgets"]), "fig_quality_latency")
    generating = is_generation(report)
    if generating:   # full width: one group of bars per prompt length, one bar per variant
        chart(ttft_figure(report, batch), "fig_ttft")
        chart(tokens_per_s_figure(report, batch), "fig_tokens_per_s")
    left, right = st.columns(2)
    with left:
        chart(size_figure(report), "fig_size")
    with right:
        if generating:
            generated_texts(report, batch)
        else:
            chart(batching_figure(report), "fig_batching")
            throughput_caption(report)
    left, right = st.columns(2)
    with left:
        chart(latency_batch_figure(report, seq if seq is not None else seqs[-1]), "fig_latency_batch")
    with right:
        chart(latency_seq_figure(report, batch), "fig_latency_seq")
    if has_checks(report):   # quality where speed is measured: each timed cell's outputs against fp32's
        left, right = st.columns(2)
        with left:
            chart(fidelity_figure(report, budgets), "fig_cell_fidelity")
        with right:
            wrong_cells(report, budgets)

    st.subheader("Against the fp32 reference")
    speed = (f"decode time per token (p50) over {', '.join(map(str, seqs))}-token prompts" if generating else
             f"median end-to-end latency (tokenization included) over {', '.join(map(str, seqs))} tokens")
    st.caption(f"Speed at batch {batch}: geometric mean of {speed}. "
               "Size: the artifact on disk. Timings belong to this machine and do not transfer to other hardware.")
    table(report, rows)
    take_it_home(report, report.get("results") or [])
    st.subheader("Notes")
    notes(report)
    st.caption(f"Share this view: add `?run={report['run_id']}` to the lab's address, or export it on History & share.")


run_page(main)
