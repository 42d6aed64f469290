"""Playground: one input through two variants side by side (generation, classification, or similarity)."""

from __future__ import annotations

import os
import time

import pandas as pd
import streamlit as st

from core.charts.playground import difference_figure, similarity_figure
from core.errors import QlabError
from core.execution.events import Cancelled
from core.execution.machine_lock import machine_lock
from core.serving.jobs import FINISHED, get_queue
from core.storage.history import store_root
from core.tasks import get_task
from ui.shared import build_panel, current_config, md, model_name, model_task, policy, run_page, show_error, visitor

PLAYGROUND_WAIT_S = float(os.environ.get("QLAB_PLAYGROUND_WAIT_S") or 120)   # how long a run here waits for an evaluation holding the machine


@st.cache_resource(show_spinner=False, ttl=120, max_entries=8)
def _source(name: str, task: str, allow_local: bool):
    from core.serving.playground import resolve_ready

    return resolve_ready(name, task, allow_local=allow_local)


@st.cache_resource(show_spinner=False, max_entries=4)
def _loaded(name: str, task: str, allow_local: bool, fingerprint: str, spec: str, device: str, threads: int | None):
    from core.serving.playground import load_stored

    return load_stored(_source(name, task, allow_local), spec, device=device, threads=threads)


def show_result(task: str, spec: str, result: dict, other: dict | None) -> None:
    if get_task(task).generates:   # generated text
        st.markdown(f"> {md(result['prompt'], 2000)} **{md(result['text'], 4000)}**")
        st.metric("tokens/s", f"{result['tokens_per_s']:.1f}", help="generated tokens / whole generation time, first token included")
        speed = [f"{len(result['tokens'])} tokens in {result['seconds']:.2f} s"]
        if result.get("ttft_s") is not None:
            speed.append(f"first token after {result['ttft_s'] * 1000:.0f} ms")
        if result.get("decode_ms_per_token"):
            speed.append(f"then {result['decode_ms_per_token']:.1f} ms per token")
        speed.append("KV cache" if result.get("kv_cache", False) else "no KV cache: every token re-runs the whole text")
        st.caption(" · ".join(speed))
        if other is not None:
            from core.serving.playground import first_divergence

            i = first_divergence(other["tokens"], result["tokens"])
            st.caption("Same tokens as the other variant." if i is None else f"Differs from the other variant from token {i + 1} on.")
    elif get_task(task).has_labels:   # a label per text
        frame = pd.DataFrame([{"text": r["text"], "label": r["label"], "confidence": r["confidence"]} for r in result["rows"]])
        st.dataframe(frame, hide_index=True, column_config={"confidence": st.column_config.ProgressColumn(format="%.3f", min_value=0, max_value=1)})
        if other is not None:
            same = sum(a["label"] == b["label"] for a, b in zip(result["rows"], other["rows"]))
            st.caption(f"Agrees with the other variant on {same} of {len(result['rows'])} texts.")
    else:
        st.plotly_chart(similarity_figure(result["texts"], result["matrix"], f"Cosine similarity: {spec}"), theme=None,
                        key=f"fig_sim_{spec}", config={"displaylogo": False})


def main() -> None:
    from core.recipes import available, expand
    from core.serving.playground import bundled_needs_build, run_task, stored_variants

    ss = st.session_state
    pol = policy()
    queue = get_queue()
    st.title("Playground")
    name, task = model_name(), model_task()
    config = current_config(strict=False)
    st.caption(f"One input through two variants of **{md(name)}** ({task}), side by side. Generation uses a fixed seed, so the two runs "
               "differ only where the variants' logits differ.")
    try:
        chosen = expand(config["variants"], task, config["device"]) if config["variants"] else []
    except QlabError:
        chosen = []
    options = chosen + [v for v in available(task, config["device"]) if v not in chosen]
    if "fp32" not in options:
        options.insert(0, "fp32")
    c1, c2 = st.columns(2)
    a = c1.selectbox("Variant A", options, index=options.index("fp32"), key="pg_a")
    others = [v for v in options if v != "fp32"]
    b = c2.selectbox("Variant B", options, index=options.index(others[0]) if others else 0, key="pg_b")

    job_id = ss.get("pg_job")
    if bundled_needs_build(name):
        missing = [a, b]
        source = None
        st.info(f"**{md(name)}** is trained on first use (a few minutes); build it and the two variants in the background.", icon=":material/model_training:")
    else:
        source = _source(name, task, pol.allow_local)
        stored = stored_variants(source, [a, b])
        missing = [v for v, ok in stored.items() if not ok]
    if missing:
        st.warning(f"Not built yet: {', '.join(f'`{m}`' for m in missing)}. Building runs in the background job queue "
                   "(shared with comparisons, one at a time on this machine).", icon=":material/construction:")
        snap = queue.status(job_id) if job_id else None
        busy = snap is not None and snap["state"] not in FINISHED
        if st.button("Build in the background", icon=":material/build:", disabled=busy, key="pg_build"):
            try:
                job = queue.submit({"model": name, "task": task, "variants": sorted(set(missing), key=missing.index), "device": config["device"],
                                    "threads": config["threads"], "max_length": config["max_length"], "allow_local": pol.allow_local},
                                   kind="build", visitor=visitor())
            except Exception as err:  # noqa: BLE001 - a full queue or a limit: one line, the page stays
                show_error(err)
                return
            ss["pg_job"] = job.id
            st.rerun()
        if job_id:
            build_panel(queue, job_id)
        return

    with st.form("pg_form"):
        if get_task(task).generates:
            text = st.text_area("Prompt", value=get_task(task).example, key="pg_prompt", height=90)
            g1, g2, g3 = st.columns(3)
            max_new = g1.slider("New tokens", 5, 120, 40, key="pg_new")
            temperature = g2.slider("Temperature (0 = greedy)", 0.0, 1.5, 0.0, 0.1, key="pg_temp")
            seed = g3.number_input("Seed", 0, 2**31 - 1, 0, key="pg_seed")
        else:
            text = st.text_area("Sentences, one per line", value=get_task(task).example, key="pg_text", height=140)
            max_new, temperature, seed = 0, 0.0, 0
        submitted = st.form_submit_button("Run both", type="primary", icon=":material/play_arrow:")
    if submitted:
        results = {}
        waiting = st.empty()
        started = time.monotonic()

        def on_wait(message: str) -> None:   # an evaluation is timing variants on these cores: wait for it, and say so
            waiting.info(f"The playground {message.replace('waiting for', 'waits for', 1)} (so neither disturbs the other's timings).",
                         icon=":material/hourglass_top:")

        try:
            with machine_lock(store_root(), {"by": "playground run", "model": name}, on_wait=on_wait,
                              should_stop=lambda: time.monotonic() - started > PLAYGROUND_WAIT_S), st.spinner("Running both variants..."):
                for spec in (a, b):
                    ready = _loaded(name, task, pol.allow_local, source.fingerprint, spec, config["device"], config["threads"])
                    if get_task(task).generates:
                        from core.inputs.sources import max_positions

                        results[spec] = run_task(task, ready.variant, ready.tokenizer, text, max_new_tokens=max_new, temperature=temperature,
                                                 seed=int(seed), max_positions=max_positions(source.path))
                    else:
                        results[spec] = run_task(task, ready.variant, ready.tokenizer, text, labels=list(source.labels), max_length=config["max_length"])
        except Cancelled:
            waiting.warning(f"An evaluation is still measuring on this machine after {PLAYGROUND_WAIT_S:.0f} s; run the playground again when it has finished.",
                            icon=":material/hourglass_top:")
            return
        except Exception as err:  # noqa: BLE001
            show_error(err)
            return
        waiting.empty()
        ss["pg_results"] = {"task": task, "model": name, "a": a, "b": b, "results": results}
    shown = ss.get("pg_results")
    if not shown or shown["model"] != name or shown["task"] != task or {shown["a"], shown["b"]} != {a, b}:
        return
    left, right = st.columns(2)
    res = shown["results"]
    for col, spec, other in ((left, a, b), (right, b, a)):
        with col:
            st.subheader(spec)
            show_result(task, spec, res[spec], res.get(other) if other != spec else None)
    if get_task(task).pooled and a != b:   # sentence vectors: how b moves a's similarities
        st.plotly_chart(difference_figure(res[a]["texts"], res[a]["matrix"], res[b]["matrix"], f"How {b} moves the similarities of {a}"),
                        theme=None, key="fig_sim_diff", config={"displaylogo": False})


run_page(main)
