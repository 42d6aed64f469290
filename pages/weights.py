"""Weights: what int8 rounding does to a layer's weights (absmax vs zero-point), and the error of every layer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core import charts
from pages._shared import model_name, model_task, policy, run_page

PLOTLY_CONFIG = {"displaylogo": False}


@st.cache_resource(show_spinner=False, max_entries=2)
def _model(name: str, task: str, allow_local: bool):
    from core.playground import load_reference, resolve_ready

    source = resolve_ready(name, task, allow_local=allow_local)
    return source, load_reference(source)


@st.cache_data(show_spinner=False, max_entries=8)
def _layer_errors(name: str, task: str, allow_local: bool, scheme: str, _fingerprint: str) -> list[dict]:
    from core.playground import layer_errors

    _, model = _model(name, task, allow_local)
    return layer_errors(model, scheme)


@st.cache_data(show_spinner=False, max_entries=32)
def _round_trips(name: str, task: str, allow_local: bool, layer: str, granularity: str, _fingerprint: str):
    from core.playground import relative_error, round_trip

    _, model = _model(name, task, allow_local)
    out, errors = {}, {}
    original = None
    for scheme in ("absmax", "zeropoint"):
        w, dq = round_trip(model, layer, scheme, granularity)
        original = w
        out[scheme] = dq
        errors[scheme] = relative_error(w, dq)
    return original, out, errors


def main() -> None:
    from core.playground import bundled_needs_build, short_layer_name, weight_layers

    pol = policy()
    st.title("Weights")
    st.caption("Weight-only int8 round to nearest: **absmax** (symmetric, scale = 127 / max|W|) and **zero-point** "
               "(asymmetric, scale = 255 / (max − min)), with one scale per tensor or per output channel.")
    name, task = model_name(), model_task()
    if not name:
        st.info("Choose a model on Models & variants first.")
        return
    if bundled_needs_build(name):
        st.info(f"**{name}** is trained on first use and has not been built yet: run a comparison with it (Run page) or build it from the Playground; "
                "then its weights appear here.", icon=":material/model_training:")
        return
    with st.spinner(f"Loading {name}..."):
        source, model = _model(name, task, pol.allow_local)
    layers = weight_layers(model)
    if not layers:
        st.warning("This model has no Linear layers to quantize.")
        return
    st.markdown(f"**{name}** · {len(layers)} Linear weights · fingerprint `{source.fingerprint[:12]}`")

    c1, c2 = st.columns([3, 1])
    layer = c1.selectbox("Layer", layers, format_func=lambda n: f"{short_layer_name(n)}  ({n})", key="w_layer")
    granularity = c2.radio("Scales", ["channel", "tensor"], format_func={"channel": "per channel", "tensor": "per tensor"}.get, key="w_gran", horizontal=True)
    original, dequantized, errors = _round_trips(name, task, pol.allow_local, layer, granularity, source.fingerprint)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Shape", " × ".join(str(d) for d in original.shape))
    m2.metric("Range", f"{original.min():.3f} … {original.max():.3f}")
    m3.metric("absmax relative error", f"{errors['absmax'] * 100:.3f}%")
    m4.metric("zero-point relative error", f"{errors['zeropoint'] * 100:.3f}%")
    st.plotly_chart(charts.weight_histogram_figure(short_layer_name(layer), original, {f"{k} ({granularity})": v for k, v in dequantized.items()}),
                    key="fig_weights_hist", theme=None, config=PLOTLY_CONFIG)

    st.subheader("Error of every layer")
    scheme = st.radio("Scheme", ["absmax", "zeropoint"], format_func={"absmax": "absmax (symmetric)", "zeropoint": "zero-point (asymmetric)"}.get,
                      key="w_scheme", horizontal=True)
    with st.spinner("Quantizing every layer..."):
        rows = _layer_errors(name, task, pol.allow_local, scheme, source.fingerprint)
    shown = [dict(r, layer=short_layer_name(r["layer"])) for r in rows]
    st.plotly_chart(charts.layer_error_figure(shown, scheme), key="fig_layer_errors", theme=None, config=PLOTLY_CONFIG)
    worst = max(rows, key=lambda r: r["tensor"])
    ratio = np.median([r["tensor"] / r["channel"] for r in rows if r["channel"] > 0]) if rows else float("nan")
    st.caption(f"Per-channel scales cut the error by a median {ratio:.1f}x here. Worst per-tensor layer: "
               f"{short_layer_name(worst['layer'])} ({worst['tensor'] * 100:.2f}%): one outlier weight squeezes the rest onto few levels.")
    with st.expander("Numbers"):
        st.dataframe(pd.DataFrame([{"layer": r["layer"], "shape": r["shape"], "per tensor %": r["tensor"] * 100, "per channel %": r["channel"] * 100}
                                   for r in rows]), hide_index=True)


run_page(main)
