"""Weights: what int8 / int4 rounding does to a layer's weights (absmax vs zero-point), and the error of every layer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.charts.weights import layer_error_figure, weight_histogram_figure
from core.charts.weights_mixed import fidelity_trail_figure, sensitivity_figure, sensitivity_summary, short_node_name
from ui.shared import build_panel, current_config, md, model_name, model_task, policy, run_page, show_error, visitor

MIXED = "onnx-int8-mixed"

PLOTLY_CONFIG = {"displaylogo": False}


def _fingerprint(name: str, task: str, allow_local: bool) -> str:
    """The model's weights fingerprint now (cheap: memoised on file sizes and times); every cache below is keyed on it,
    so a model folder saved again is never answered from the old weights."""
    from core.serving.playground import resolve_ready

    return resolve_ready(name, task, allow_local=allow_local).fingerprint


@st.cache_resource(show_spinner=False, max_entries=2)
def _model(name: str, task: str, allow_local: bool, fingerprint: str):
    from core.serving.playground import load_reference, resolve_ready

    source = resolve_ready(name, task, allow_local=allow_local)
    return source, load_reference(source)


@st.cache_data(show_spinner=False, max_entries=8)
def _layer_errors(name: str, task: str, allow_local: bool, scheme: str, bits: int, group_size: int, fingerprint: str) -> list[dict]:
    from core.serving.playground import layer_errors

    _, model = _model(name, task, allow_local, fingerprint)
    return layer_errors(model, scheme, bits, group_size)


@st.cache_data(show_spinner=False, max_entries=32)
def _round_trips(name: str, task: str, allow_local: bool, layer: str, granularity: str, bits: int, group_size: int, fingerprint: str):
    from core.serving.playground import relative_error, round_trip

    _, model = _model(name, task, allow_local, fingerprint)
    out, errors = {}, {}
    original = None
    for scheme in ("absmax", "zeropoint"):
        w, dq = round_trip(model, layer, scheme, granularity, bits, group_size)
        original = w
        out[scheme] = dq
        errors[scheme] = relative_error(w, dq)
    return original, out, errors


def _choice(key: str, param: str, label: str, column, help: str) -> str:
    """A search parameter: starts from what Models & variants has for the recipe, or the recipe's default."""
    from core.recipes import RECIPES

    ss = st.session_state
    options = next(p for p in RECIPES[MIXED].params if p.name == param).options()
    if ss.get(key) not in options:
        chosen = ss.get(f"p_{MIXED}_{param}")
        ss[key] = chosen if chosen in options else RECIPES[MIXED].defaults()[param]
    return column.selectbox(label, options, key=key, help=help)


def mixed_precision_section(name: str, task: str, source, pol) -> None:
    """Per-node sensitivity and the fp32 nodes chosen by the onnx-int8-mixed search: read from the built artifact, built by a job."""
    from core.engine.variants import stored_entry
    from core.recipes import RECIPES, resolve
    from core.recipes.onnxrt.mixed import read_sensitivity
    from core.serving.jobs import FINISHED, get_queue

    ss = st.session_state
    st.subheader("Accuracy-aware mixed precision (ONNX Runtime int8)")
    st.caption("`onnx-int8-mixed` quantizes each weight node (a MatMul or a fused attention block) to int8 **alone** and measures how far the "
               "model's output moves from fp32 on calibration texts: that node's sensitivity. Then it quantizes every node and gives the most "
               "sensitive ones back their fp32 weights, one at a time, until the output fidelity (cosine to fp32) meets the target.")
    config = current_config(strict=False)
    reason = RECIPES[MIXED].unavailable_reason(config["device"], task)
    if reason:
        st.info(f"Not available here: {reason}.", icon=":material/block:")
        return
    c1, c2, _ = st.columns([1, 1, 2])
    target = _choice("w_mixed_target", "target", "Fidelity target", c1, "Output fidelity (cosine to fp32) the search must reach on the calibration texts.")
    cap = _choice("w_mixed_cap", "max_fp32", "At most this many nodes in fp32", c2, "The search stops here even if the target is not met.")
    _, _, spec = resolve(f"{MIXED}:target={target}:max_fp32={cap}")
    entry = stored_entry(source, spec)
    if entry is None:
        jobs = ss.setdefault("w_mixed_jobs", {})
        job_key = f"{source.fingerprint}|{spec}"
        queue = get_queue()
        job_id = jobs.get(job_key)
        snap = queue.status(job_id) if job_id else None
        busy = snap is not None and snap["state"] not in FINISHED
        if not busy:
            st.info(f"`{spec}` is not built for **{md(name)}** yet. The search quantizes every weight node on its own, then the mixed model a few "
                    "times: about a minute for MiniLM (24 weight nodes), seconds for a tiny model. It runs in the background job queue "
                    "(one job at a time on this machine); this page stays usable.", icon=":material/construction:")
        if st.button("Run the search in the background", icon=":material/build:", disabled=busy, key="w_mixed_build"):
            try:
                job = queue.submit({"model": name, "task": task, "variants": [spec], "device": config["device"], "threads": config["threads"],
                                    "max_length": config["max_length"], "allow_local": pol.allow_local}, kind="build", visitor=visitor())
            except Exception as err:  # noqa: BLE001 - a full queue or a limit: one line, the page stays
                show_error(err)
                return
            jobs[job_key] = job.id
            st.rerun()
        if job_id:
            build_panel(queue, job_id, "Searching")
        return
    record = read_sensitivity(entry.path)
    if not record or not record.get("nodes"):
        st.warning(f"The stored `{spec}` has no sensitivity record (built by an older version of the lab); delete it on the Store page and build it again.",
                   icon=":material/warning:")
        return
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(sensitivity_figure(record), key="fig_mixed_sensitivity", theme=None, config=PLOTLY_CONFIG)
    with right:
        st.plotly_chart(fidelity_trail_figure(record), key="fig_mixed_trail", theme=None, config=PLOTLY_CONFIG)
        st.caption(sensitivity_summary(record, max_fp32=int(cap)))
        st.caption("Sensitivity is measured one node at a time, so it ignores how errors add up across nodes; the line chart shows the real "
                   "fidelity of the whole mixed model as nodes go back to fp32, most sensitive first. "
                   f"Compare its speed and quality: add `{spec}` on Models & variants.")
    with st.expander("Sensitivity numbers"):
        kept = set(record.get("kept_fp32") or [])
        st.dataframe(pd.DataFrame([{"node": short_node_name(r["node"]), "ONNX node": r["node"], "fidelity alone in int8": r.get("fidelity"),
                                    "loss": r.get("loss"), "kept in fp32": r["node"] in kept} for r in record["nodes"]]),
                     hide_index=True, column_config={"fidelity alone in int8": st.column_config.NumberColumn(format="%.5f"),
                                                     "loss": st.column_config.NumberColumn(format="%.2e")})


def main() -> None:
    from core.serving.playground import bundled_needs_build, short_layer_name, weight_layers

    pol = policy()
    st.title("Weights")
    st.caption("Weight-only round to nearest at 8 or 4 bits: **absmax** (symmetric, scale = 127 / max|W| at 8 bits, 7 / max|W| at 4) and "
               "**zero-point** (asymmetric, scale = 255 / (max − min) at 8 bits, 15 / (max − min) at 4), with one scale per tensor, "
               "per output channel, or per group of 32/64/128 weights in a row (as GPTQ, AWQ and GGUF do at 4 bits).")
    name, task = model_name(), model_task()
    if not name:
        st.info("Choose a model on Models & variants first.")
        return
    if bundled_needs_build(name):
        st.info(f"**{md(name)}** is trained on first use and has not been built yet: run a comparison with it (Run page) or build it from the Playground; "
                "then its weights appear here.", icon=":material/model_training:")
        return
    with st.spinner(f"Loading {md(name)}..."):
        source, model = _model(name, task, pol.allow_local, _fingerprint(name, task, pol.allow_local))
    layers = weight_layers(model)
    if not layers:
        st.warning("This model has no Linear layers to quantize.")
        return
    st.markdown(f"**{md(name)}** · {len(layers)} Linear weights · fingerprint `{source.fingerprint[:12]}`")

    c1, c2, c3, c4 = st.columns([3, 1, 2, 1])
    layer = c1.selectbox("Layer", layers, format_func=lambda n: f"{short_layer_name(n)}  ({n})", key="w_layer")
    bits = c2.radio("Bits", [8, 4], format_func=lambda b: f"int{b}", key="w_bits", horizontal=True)
    granularity = c3.radio("Scales", ["channel", "tensor", "group"], format_func={"channel": "per channel", "tensor": "per tensor", "group": "per group"}.get,
                           key="w_gran", horizontal=True)
    group_size = c4.selectbox("Group size", [32, 64, 128], key="w_group", help="Weights per group when the scales are per group.")
    original, dequantized, errors = _round_trips(name, task, pol.allow_local, layer, granularity, bits, group_size, source.fingerprint)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Shape", " × ".join(str(d) for d in original.shape))
    m2.metric("Range", f"{original.min():.3f} … {original.max():.3f}")
    m3.metric("absmax relative error", f"{errors['absmax'] * 100:.3f}%")
    m4.metric("zero-point relative error", f"{errors['zeropoint'] * 100:.3f}%")
    where = f"group {group_size}" if granularity == "group" else granularity
    st.plotly_chart(weight_histogram_figure(short_layer_name(layer), original, {f"{k} ({where})": v for k, v in dequantized.items()}, bits=bits),
                    key="fig_weights_hist", theme=None, config=PLOTLY_CONFIG)

    st.subheader("Error of every layer")
    scheme = st.radio("Scheme", ["absmax", "zeropoint"], format_func={"absmax": "absmax (symmetric)", "zeropoint": "zero-point (asymmetric)"}.get,
                      key="w_scheme", horizontal=True)
    with st.spinner("Quantizing every layer..."):
        rows = _layer_errors(name, task, pol.allow_local, scheme, bits, group_size, source.fingerprint)
    shown = [dict(r, layer=short_layer_name(r["layer"])) for r in rows]
    st.plotly_chart(layer_error_figure(shown, scheme, bits, group_size), key="fig_layer_errors", theme=None, config=PLOTLY_CONFIG)
    worst = max(rows, key=lambda r: r["tensor"])
    ratio = np.median([r["tensor"] / r["channel"] for r in rows if r["channel"] > 0]) if rows else float("nan")
    group_ratio = np.median([r["channel"] / r["group"] for r in rows if r["group"] > 0]) if rows else float("nan")
    st.caption(f"At int{bits}, per-channel scales cut the error by a median {ratio:.1f}x here, and groups of {group_size} by a further {group_ratio:.1f}x. "
               f"Worst per-tensor layer: {short_layer_name(worst['layer'])} ({worst['tensor'] * 100:.2f}%): "
               "one outlier weight squeezes the rest onto few levels.")
    with st.expander("Numbers"):
        st.dataframe(pd.DataFrame([{"layer": r["layer"], "shape": r["shape"], "per tensor %": r["tensor"] * 100, "per channel %": r["channel"] * 100,
                                    f"per group of {group_size} %": r["group"] * 100} for r in rows]), hide_index=True)

    st.divider()
    mixed_precision_section(name, task, source, pol)


run_page(main)
