"""Models & variants: the model, its task, the variants with their parameters, and the hardware settings."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import hosting
from core.errors import QlabError
from core.inputs.calibration import SOURCES as CALIBRATION_SOURCES
from core.measure.generation import MAX_NEW_TOKENS
from core.recipes import RECIPES
from core.tasks import EMBEDDING, TASKS, find_task
from ui.shared import (
    BATCH_CHOICES,
    MEASUREMENTS,
    PROMPT_CHOICES,
    SCENARIOS,
    SEQ_CHOICES,
    TASK_NAMES,
    budget_of,
    chosen_scenario,
    error_line,
    hardware_targets,
    machine,
    md,
    model_name,
    model_task,
    policy,
    run_page,
    scenarios_for,
    show_error,
    targets_for,
    variant_specs,
)


@st.cache_resource(show_spinner=False, ttl=120, max_entries=16)
def _resolve(name: str, task: str | None, allow_local: bool):
    """Resolve without training or building; errors are returned, not raised, so they are cached too."""
    from core.serving.playground import resolve_ready

    try:
        return resolve_ready(name, task, allow_local=allow_local), None
    except QlabError as err:
        return None, str(err)


def _keep_valid(key: str, options: list, multi: bool = False) -> None:
    """Drop a remembered choice that is no longer offered (the options depend on the task and device)."""
    ss = st.session_state
    if key not in ss:
        return
    if multi:
        ss[key] = [v for v in ss[key] if v in options]
    elif ss[key] not in options:
        del ss[key]


def model_section(pol) -> None:
    from core.bundled import BUNDLED
    from core.serving.playground import bundled_needs_build

    st.subheader("Model")
    kinds = {"bundled": "Bundled", "hub": "Hugging Face hub id"}
    if pol.allow_local:
        kinds["local"] = "Local folder"
    _keep_valid("m_kind", list(kinds))
    st.radio("Where the model comes from", list(kinds), format_func=kinds.get, horizontal=True, key="m_kind", persist_state="session")
    if not pol.allow_local:
        st.caption(":material/lock: Local model folders are disabled on this hosted lab.")
    kind = st.session_state.get("m_kind", "bundled")
    if kind == "bundled":
        _keep_valid("m_bundled", list(BUNDLED))
        st.selectbox("Bundled model", list(BUNDLED), key="m_bundled", persist_state="session",
                     format_func=lambda n: f"{n} — {BUNDLED[n].description}")
        name = st.session_state.get("m_bundled") or "minilm"
        st.caption(f"Task: **{BUNDLED[name].task}** (fixed by the model).")
        if BUNDLED[name].note:
            st.warning(BUNDLED[name].note, icon=":material/info:")
        if BUNDLED[name].card:
            with st.expander(f"Model card: {name}", expanded=False):
                st.markdown(BUNDLED[name].card)
        if bundled_needs_build(name):
            st.info(f"**{name}** is {BUNDLED[name].first_use}; the Run page shows its progress.",
                    icon=":material/model_training:")
    else:
        if kind == "hub":
            st.text_input("Hub id", key="m_hub", persist_state="session", placeholder="sentence-transformers/all-MiniLM-L6-v2",
                          help="Weights are read from safetensors only; trust_remote_code is never enabled.")
        else:
            st.text_input("Local folder (saved with save_pretrained)", key="m_local", persist_state="session", placeholder="/models/my-bert")
        st.selectbox("Task", list(TASKS), key="m_task", persist_state="session", format_func=TASK_NAMES.get)


def variants_section(pol, source) -> None:
    from core.engine.variants import is_stored

    task, device = model_task(), st.session_state.get("hw_device") or "cpu"
    st.subheader("Variants")
    rows, runnable = [], []
    for name, recipe in RECIPES.items():
        reason = recipe.unavailable_reason(device, task)
        stored = None
        if source is not None and reason is None:
            try:
                stored = is_stored(source, name)
            except QlabError:
                stored = None
        if reason is None:
            runnable.append(name)
        rows.append({"variant": name, "runs here": "yes" if reason is None else "no", "why not": reason or "",
                     "in store": "yes" if stored else ("no" if stored is False else "—"), "what it is": recipe.summary,
                     "deprecated": "yes" if recipe.deprecated else ""})
    _keep_valid("v_variants", runnable, multi=True)
    st.multiselect("Variants to compare (fp32 is the reference; it is always measured for quality)", runnable, key="v_variants",
                   persist_state="session", placeholder="Choose variants")
    chosen = st.session_state.get("v_variants") or []
    with_params = [n for n in chosen if any(p.name != "engine" for p in RECIPES[n].params)]
    if with_params:
        cols = st.columns(min(3, len(with_params)))
        for i, name in enumerate(with_params):
            with cols[i % len(cols)].expander(f"{name} parameters", expanded=False):
                for p in RECIPES[name].params:
                    if p.name == "engine":
                        continue
                    key = f"p_{name}_{p.name}"
                    st.session_state.setdefault(key, RECIPES[name].defaults()[p.name])
                    options = p.options()
                    if options:
                        _keep_valid(key, options)
                        st.selectbox(p.name, options, key=key, help=p.help, persist_state="session",
                                     index=options.index(RECIPES[name].defaults()[p.name]) if key not in st.session_state else None)
                    else:
                        st.text_input(p.name, key=key, help=p.help, persist_state="session")
    st.text_input("More variant specs (optional, comma-separated)", key="v_extra", persist_state="session",
                  placeholder="dynamic-int8:engine=qnnpack, absmax-int8:granularity=tensor",
                  help="Compare a recipe with other parameters side by side, e.g. the per-tensor absmax or the qnnpack engine. "
                       f"Accepted form: {md(hosting.SPEC_FORM, 400)}.")
    try:
        from core.recipes import expand

        specs = expand(variant_specs(), task, device) if variant_specs() else []
        st.caption("Will compare: " + (", ".join(f"`{s}`" for s in specs) or "nothing yet"))
    except QlabError as err:
        show_error(err)
    frame = pd.DataFrame(rows)
    st.dataframe(frame, hide_index=True, height=min(440, 38 + 35 * len(rows)),
                 column_config={"what it is": st.column_config.TextColumn(width="large"), "why not": st.column_config.TextColumn(width="medium")})
    unavailable = [r for r in rows if r["runs here"] == "no"]
    if unavailable:
        st.caption(f"{len(unavailable)} variant(s) cannot run here for {task} on {device}: the table says why.")


def isa_badges(isa: list[str]) -> str:
    """Instruction-set flags as badges: green where int8/bf16 get real hardware support."""
    fast = ("vnni", "amx", "bf16", "asimddot")
    return " ".join(f":green-badge[{f}]" if any(k in f for k in fast) else f":gray-badge[{f}]" for f in isa) or ":gray-badge[no vector int8 flags]"


def targets_section() -> None:
    """Where to measure: this machine, or nodes of the team's Ray cluster (QLAB_RAY_ADDRESS)."""
    from core.charts.report_access import target_label
    from core.execution.hardware import speedup_hint

    targets, error = hardware_targets()
    if error:
        show_error(QlabError(error))
    if not targets:
        return
    ids = [t["id"] for t in targets if t.get("alive")]
    if len(targets) == 1 and targets[0]["id"] == "local":
        t = targets[0]
        st.markdown(f"**Hardware target:** {t['name']} · {t.get('cpu')} · {t.get('cores')} cores  \n" + isa_badges(t.get("isa") or []))
        st.caption(f"{speedup_hint(t.get('isa') or [])}. "
                   "To compare several machines, join them to a Ray cluster and set QLAB_RAY_ADDRESS (docs/cluster.md).")
        return
    by_id = {t["id"]: t for t in targets}
    st.session_state["hw_targets"] = targets_for(targets, st.session_state.get("hw_targets"))   # as the sidebar and Run say
    st.multiselect("Hardware targets", ids, key="hw_targets", persist_state="session", format_func=lambda i: target_label(by_id[i]),
                   help="Every chosen machine builds its own variants and fp32 reference and measures them; one variant at a time per machine.")
    for tid in st.session_state.get("hw_targets") or []:
        t = by_id[tid]
        where = " (this machine)" if t.get("this_machine") else ""
        st.markdown(f"**{t['name']}**{where} · {t.get('cpu')} · {t.get('cores')} cores" + (f" · {t['gpu']}" if t.get("gpu") else "")
                    + "  \n" + isa_badges(t.get("isa") or []) + f"  \n:gray[{speedup_hint(t.get('isa') or [])}]")
    lost = [t["name"] for t in targets if not t.get("alive")]
    if lost:
        st.caption("Not reachable now: " + ", ".join(lost))


def hardware_section() -> None:
    info = machine()
    st.subheader("Hardware and measurement")
    targets_section()
    c1, c2, c3 = st.columns(3)
    cores = info["cpu"]["logical_cores"]
    with c1:
        st.number_input("CPU threads (0 = library default)", min_value=0, max_value=max(1, cores * 2), step=1, key="hw_threads",
                        persist_state="session", help=f"This machine has {cores} logical cores; more threads than cores oversubscribes it.")
        _keep_valid("hw_device", info["devices"])
        st.selectbox("Device", info["devices"], key="hw_device", persist_state="session",
                     help="CUDA appears here when a GPU is present.")
    with c2:
        engines = next(p for p in RECIPES["dynamic-int8"].params if p.name == "engine").options()
        _keep_valid("hw_engine", engines)
        st.selectbox("Quantized engine (torch int8 variants)", engines, key="hw_engine", persist_state="session",
                     help=f"x86/fbgemm/onednn are Intel/AMD kernels, qnnpack is ARM's. Suggested here: {info['engine']}.")
        st.number_input("Max length (tokens, for quality)", min_value=8, max_value=4096, step=8, key="hw_maxlen", persist_state="session")
        _keep_valid("hw_calibration", list(CALIBRATION_SOURCES))
        st.selectbox("Calibrate static int8 on", list(CALIBRATION_SOURCES), key="hw_calibration", persist_state="session",
                     format_func={"sample": "the bundled sample (held out)", "data": "this run's own texts"}.get,
                     help=f"What {', '.join(r.name for r in RECIPES.values() if r.calibrated)} take their activation ranges from. "
                          + " ".join(f"{k}: {v}." for k, v in CALIBRATION_SOURCES.items()))
    scenario = chosen_scenario(model_task())
    with c3:
        _keep_valid("hw_batches", BATCH_CHOICES, multi=True)
        st.multiselect("Batch sizes", BATCH_CHOICES, key="hw_batches", persist_state="session")
        if scenario.sweep == "prompt_lengths":
            _keep_valid("hw_prompts", PROMPT_CHOICES, multi=True)
            st.multiselect("Prompt lengths (tokens)", PROMPT_CHOICES, key="hw_prompts", persist_state="session",
                           help="Each prompt is real text cut to exactly this many tokens (CLI: --prompt-lengths).")
            st.number_input("New tokens", min_value=1, max_value=MAX_NEW_TOKENS, step=1, key="hw_new_tokens", persist_state="session",
                            help="Tokens generated greedily after each prompt (CLI: --new-tokens).")
        else:
            _keep_valid("hw_seqs", SEQ_CHOICES, multi=True)
            st.multiselect("Sequence lengths (tokens)", SEQ_CHOICES, key="hw_seqs", persist_state="session")
    choices = scenarios_for(model_task())
    if len(choices) > 1:
        st.radio("Scenario", choices, format_func=SCENARIOS.get, key="hw_scenario", horizontal=True, persist_state="session",
                 help="Generation measures the time to the first token and the milliseconds per further token, with each variant's KV cache "
                      "(CLI: --scenario generate). A variant without a cache is measured without one and says so.")
    st.radio("Measurement", list(MEASUREMENTS), format_func=MEASUREMENTS.get, key="hw_measure", horizontal=True, persist_state="session")
    if st.session_state.get("hw_engine") == "qnnpack" and info["cpu"]["arch"].lower() in ("x86_64", "amd64"):
        st.warning("qnnpack is the ARM kernel library: on this x86 CPU torch int8 variants will be slower than fp32.", icon=":material/warning:")


def recommendation_section() -> None:
    """The quality budget of the current task (only that one) and the batch size the recommendation is made at."""
    from core.reporting.recommend import default_batch_size

    ss = st.session_state
    task = model_task()
    t = find_task(task, default=EMBEDDING)
    st.subheader("Recommendation")
    c0, c1, c2 = st.columns([1.3, 2, 1])
    with c0:
        st.selectbox("Budget on", [b.key for b in t.all_budgets], key=f"bm_{t.name}", persist_state="session",
                     format_func=lambda k: t.budget_by_key(k).quantity,
                     help="The quality measure the budget applies to; the recommendation and each timed cell's mark follow it. "
                          f"Default: {t.budget.quantity} (CLI: one of {', '.join(b.flag for b in t.all_budgets)}).")
    spec = budget_of(task)
    with c1:
        st.number_input(spec.label, min_value=spec.min_value, max_value=spec.max_value, step=spec.step, format=spec.fmt,
                        key=f"b_{spec.key}", persist_state="session",
                        help=spec.help + f" Default {spec.default:g}.")
    batches = sorted(int(b) for b in ss.get("hw_batches") or [])
    with c2:
        if batches:
            _keep_valid("hw_rec_batch", batches)
            st.selectbox("Recommend at batch size", batches, key="hw_rec_batch", persist_state="session",
                         index=batches.index(default_batch_size(batches)) if "hw_rec_batch" not in ss else None,
                         help="The recommendation is the fastest variant at this batch size whose quality stays within the budget "
                              "(CLI: --recommend-batch-size). Only measured batch sizes are offered.")
        else:
            st.caption("Choose batch sizes above first.")
    from ui.shared import budget_value, recommend_batch

    bs = recommend_batch(batches) if batches else None
    st.caption(f"The run recommends the fastest variant{f' at batch {bs}' if bs else ''} with {spec.words(budget_value(task))}; "
               "both can be changed again on Compare after the run, without measuring again.")


def main() -> None:
    pol = policy()
    st.title("Models & variants")
    st.caption(pol.describe())
    model_section(pol)
    name, task = model_name(), model_task()
    source = None
    from core.serving.playground import bundled_needs_build

    if name and st.session_state.get("m_kind") == "bundled" and bundled_needs_build(name):
        pass  # trained by the first run; nothing to check yet
    elif name:
        with st.spinner("Checking the model..."):
            source, error = _resolve(name, task if st.session_state.get("m_kind") != "bundled" else None, pol.allow_local)
        if error:
            st.error(error_line(error), icon=":material/error:")
        elif source is not None:
            st.caption(f":material/check_circle: {md(source.name)} · {source.kind} · task {source.task}"
                       + (f" · labels: {md(', '.join(map(str, source.labels)))}" if source.labels else ""))
    else:
        st.info("Type a model to compare.")
    st.divider()
    variants_section(pol, source)
    st.divider()
    hardware_section()
    st.divider()
    recommendation_section()
    st.page_link("pages/run.py", label="Next: run the comparison", icon=":material/arrow_forward:")


run_page(main)
