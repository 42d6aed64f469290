"""Figure builders (core/charts/): pure functions report -> go.Figure, checked without Streamlit."""

from __future__ import annotations

import numpy as np
import pytest

from core import charts


def cell(batch, seq, p50, p90=None):
    p90 = p90 if p90 is not None else p50 * 1.1
    return {"batch_size": batch, "seq_len": seq, "p50_ms": p50, "p90_ms": p90, "p99_ms": p90, "mean_ms": p50, "std_ms": 0.1,
            "throughput_per_s": batch / p50 * 1000, "forward_p50_ms": p50 * 0.9}


def result(variant, *, size_mb, speed, quality, error=None):
    """``speed``: latency multiplier against a base curve (1.0 = fp32)."""
    lat = [cell(b, s, (2.0 + 0.5 * b + 0.05 * s) * speed) for b in (1, 8) for s in (16, 64)]
    return {"variant": variant, "size_bytes": int(size_mb * 2**20), "param_bytes": int(size_mb * 2**20), "build_s": 1.0, "cache_hit": False,
            "load_s": 0.1, "peak_rss_bytes": 10**8, "quality": quality, "latency": [] if error else lat,
            "dataset_throughput": {} if error else {"sorted": {"texts_per_s": 100 / speed}, "unsorted": {"texts_per_s": 80 / speed}, "batch_size": 1},
            "notes": [], "error": error}


def classification_report(recommended="onnx-int8"):
    return {
        "task": "classification", "model": "minilm-classifier", "run_id": "a" * 32, "created": "2026-01-01T00:00:00+00:00",
        "environment": {"cpu": "Test CPU", "threads": 2, "cores": 2, "device": "cpu", "instruction_sets": ["avx2"]},
        "recommended": {"variant": recommended, "reason": "fastest within budget", "batch_size": 1} if recommended else None,
        "budgets": {}, "data": {"name": "news.csv", "rows": 40},
        "results": [
            result("fp32", size_mb=88.0, speed=1.0, quality={"accuracy": 0.90}),
            result("onnx-int8", size_mb=22.0, speed=1 / 3.0, quality={"accuracy": 0.896}),
            result("dynamic-int8", size_mb=30.0, speed=0.5, quality={"accuracy": 0.85}),   # dominated by onnx-int8
            result("bf16", size_mb=44.0, speed=2.0, quality={"accuracy": 0.90}),           # dominated by fp32
            result("torchao-int8", size_mb=22.0, speed=1.0, quality={}, error="it broke"),
        ],
    }


def trace_named(fig, name):
    found = [t for t in fig.data if t.name == name]
    assert found, f"no trace named {name!r} in {[t.name for t in fig.data]}"
    return found[0]


def test_variant_colors_are_stable_and_distinct():
    a = charts.variant_colors(["fp32", "onnx-int8", "dynamic-int8"])
    b = charts.variant_colors(["dynamic-int8", "onnx-int8", "fp32", "bf16"])
    assert a["onnx-int8"] == b["onnx-int8"] == charts.RECIPE_COLORS["onnx-int8"]
    assert a["fp32"] == b["fp32"] == charts.REFERENCE_COLOR
    two = charts.report_colors({"results": [{"variant": "dynamic-int8:engine=qnnpack"}, {"variant": "dynamic-int8"}]})
    assert two["dynamic-int8"] == charts.RECIPE_COLORS["dynamic-int8"]  # the plain recipe keeps its colour whatever the order
    assert two["dynamic-int8:engine=qnnpack"] != two["dynamic-int8"]


@pytest.mark.parametrize("higher", [True, False])
def test_pareto_front(higher):
    pts = [("a", 1.0, 0.5), ("b", 2.0, 0.9), ("c", 3.0, 0.8), ("d", 0.5, 0.1)]
    if higher:
        assert charts.pareto_front(pts, True) == ["d", "a", "b"]
    else:  # lower quality is better (perplexity): d is fastest and best
        assert charts.pareto_front(pts, False) == ["d"]


def test_quality_latency_marks_reference_recommended_and_front():
    rep = classification_report()
    fig = charts.quality_latency_figure(rep)
    ref = trace_named(fig, "fp32 (reference)")
    assert ref.marker.symbol == "diamond" and ref.marker.color == charts.REFERENCE_COLOR
    assert trace_named(fig, "onnx-int8").marker.color == charts.RECIPE_COLORS["onnx-int8"]
    star = trace_named(fig, "recommended")
    assert star.marker.symbol == "star" and star.x[0] == pytest.approx(charts.latency_at(rep["results"][1], 1, None))
    front = trace_named(fig, "Pareto front")
    # fastest first: onnx-int8 (fast, 89.6 %) then fp32 (slower, 90.0 %); dynamic-int8 and bf16 are dominated
    assert list(front.y) == pytest.approx([89.6, 90.0])
    assert "torchao-int8" not in [t.name for t in fig.data]  # failed variant: no point
    assert "ms" in fig.layout.xaxis.title.text and "Accuracy (%" in fig.layout.yaxis.title.text
    texts = [a.text for a in fig.layout.annotations]
    assert "fp32 reference" in texts and any("recommended: onnx-int8" in t for t in texts)


def test_perplexity_is_lower_is_better():
    rep = classification_report(recommended=None)
    rep["task"] = "causal-lm"
    for r, ppl in zip(rep["results"], (10.0, 10.1, 12.0, 10.0, 0)):
        r["quality"] = {"perplexity": ppl}
    fig = charts.quality_latency_figure(rep, batch_size=8, seq_len=64)
    assert "lower is better" in fig.layout.yaxis.title.text
    assert "batch 8, 64 tokens" in fig.layout.title.text
    front = trace_named(fig, "Pareto front")
    assert list(front.y) == pytest.approx([10.1, 10.0])


def test_size_bars_say_ratio_and_mark_reference():
    fig = charts.size_figure(classification_report())
    onnx = trace_named(fig, "onnx-int8")
    assert "4.0x smaller" in onnx.text[0]
    ref = trace_named(fig, "fp32 (reference)")
    assert ref.marker.pattern.shape == "/" and "reference" in ref.text[0]
    assert fig.layout.yaxis.title.text == "Size on disk (MB)"


def test_latency_sweeps_use_the_same_colours():
    rep = classification_report()
    colors = charts.report_colors(rep)
    for fig in (charts.latency_batch_figure(rep), charts.latency_seq_figure(rep)):
        for name in ("onnx-int8", "dynamic-int8"):
            assert trace_named(fig, name).line.color == colors[name]
        assert "ms" in fig.layout.yaxis.title.text
    fig = charts.latency_batch_figure(rep, seq_len=64)
    assert fig.layout.xaxis.title.text == "Batch size (texts)"
    assert list(trace_named(fig, "fp32 (reference)").x) == [1, 8]
    assert "Sequence length (tokens)" == charts.latency_seq_figure(rep).layout.xaxis.title.text


def test_batching_figure_reads_texts_per_second():
    fig = charts.batching_figure(classification_report())   # a report saved before repeated passes: one number per mode
    sorted_trace = [t for t in fig.data if t.name == "sorted by length" and t.x and t.x[0] is not None][0]
    assert list(sorted_trace.x) == ["fp32", "onnx-int8", "dynamic-int8", "bf16"]
    assert sorted_trace.y[0] == pytest.approx(100.0)
    assert "texts/s" in fig.layout.yaxis.title.text
    assert not sorted_trace.error_y.visible
    notes = [a.text for a in fig.layout.annotations]
    assert "Saved before repeated passes: one pass per mode, no spread." in notes
    assert any("sorting cannot matter" in n for n in notes)                  # the old report was at batch 1


def throughput(spreads, batch, pads=(0.05, 0.38), passes=5):
    """``spreads``: per variant ((median, min, max) sorted, (median, min, max) unsorted)."""
    def mode(stats, pad):
        med, lo, hi = stats
        return {"texts_per_s": med, "texts_per_s_min": lo, "texts_per_s_max": hi, "passes": passes, "padding_fraction": pad, "texts": 120}

    rep = classification_report()
    for r, (s, u) in zip(rep["results"], spreads):
        r["dataset_throughput"] = {"sorted": mode(s, pads[0]), "unsorted": mode(u, pads[1]), "batch_size": batch}
    return rep


SPREADS = [((100, 95, 104), (80, 78, 83)), ((300, 250, 320), (290, 240, 310)), ((200, 190, 210), (150, 140, 160)), ((50, 45, 55), (40, 38, 42))]


def test_batching_figure_whiskers_padding_and_noise_verdict():
    fig = charts.batching_figure(throughput(SPREADS, batch=32))
    assert fig.layout.title.text.endswith("batch 32)")
    s_bar = [t for t in fig.data if t.name == "sorted by length" and t.x[0] is not None][0]
    u_bar = [t for t in fig.data if t.name == "file order (unsorted)" and t.x[0] is not None][0]
    assert s_bar.error_y.visible and list(s_bar.error_y.array) == [4, 20, 10, 5] and list(s_bar.error_y.arrayminus) == [5, 50, 10, 5]
    assert list(u_bar.error_y.array) == [3, 20, 10, 2] and list(u_bar.error_y.arrayminus) == [2, 50, 10, 2]
    legend = [t.name for t in fig.data if t.x[0] is None]
    assert legend == ["sorted by length, padding 5%", "file order (unsorted), padding 38%"]
    verdicts = {a.x: a.text for a in fig.layout.annotations if a.name == "verdict"}
    assert verdicts == {"fp32": "sorted 1.25x", "onnx-int8": "no difference within noise", "dynamic-int8": "sorted 1.33x", "bf16": "sorted 1.25x"}
    notes = [a.text for a in fig.layout.annotations if a.name == "note"]
    assert notes == ["Median of 5 alternated passes per mode; whiskers: slowest to fastest pass."]


def test_batching_figure_at_batch_1_says_sorting_cannot_matter():
    fig = charts.batching_figure(throughput(SPREADS, batch=1, pads=(0.0, 0.0)))
    notes = [a.text for a in fig.layout.annotations if a.name == "note"]
    assert notes[0] == "Batch 1: no padding, so sorting cannot matter here; any gap is noise."
    verdicts = {a.x: a.text for a in fig.layout.annotations if a.name == "verdict"}
    assert verdicts["onnx-int8"] == "no difference within noise" and verdicts["dynamic-int8"] == "1.33x: noise, not sorting"


def test_reference_rows_in_words_and_numbers():
    rows = {r["variant"]: r for r in charts.reference_rows(classification_report(), batch_size=1)}
    onnx = rows["onnx-int8"]
    assert onnx["speedup"] == pytest.approx(3.0)
    assert onnx["size_ratio"] == pytest.approx(4.0)
    assert onnx["words"] == "3.0x faster, 4.0x smaller, -0.4 pt accuracy"
    assert onnx["quality"] == pytest.approx(89.6)
    assert rows["fp32"]["words"] == "reference"
    assert rows["torchao-int8"]["words"].startswith("failed")


def test_empty_report_gives_a_message_not_an_error():
    rep = {"task": "embedding", "model": "m", "results": [result("fp32", size_mb=1, speed=1, quality={}, error="x")]}
    for fig in charts.compare_figures(rep).values():
        assert fig.layout.annotations, "an empty chart says why it is empty"


def test_weight_charts():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(32, 16)).astype(np.float32)
    fig = charts.weight_histogram_figure("L0 query", w, {"absmax (channel)": w + 0.01, "zeropoint (channel)": w - 0.01})
    names = [t.name for t in fig.data]
    assert "fp32 original" in names and "absmax (channel) int8 → fp32" in names
    assert sum(trace_named(fig, "fp32 original").y) * (fig.data[0].width) == pytest.approx(1.0, rel=1e-3)  # a density
    fig4 = charts.layer_error_figure([{"layer": "L0 q", "tensor": 0.3, "channel": 0.1, "group": 0.07}], "zeropoint", bits=4, group_size=64)
    assert [t.name for t in fig4.data] == ["per tensor (one scale)", "per channel (one scale per row)", "per group of 64"]
    assert "int4" in fig4.layout.title.text and list(fig4.data[2].y) == pytest.approx([7.0])
    fig = charts.layer_error_figure([{"layer": "L0 q", "tensor": 0.02, "channel": 0.005}], "absmax")
    assert list(fig.data[0].y) == pytest.approx([2.0]) and "%" in fig.layout.yaxis.title.text


def test_cross_run_figure_one_colour_per_run():
    a, b = classification_report(), classification_report()
    b["run_id"] = "b" * 32
    b["environment"]["cpu"] = "Other CPU"
    fig = charts.cross_run_figure([a, b])
    assert len(fig.data) == 2 and fig.data[0].marker.color != fig.data[1].marker.color
    assert "Other CPU" in fig.data[1].name


# -- accuracy-aware mixed precision (Weights page) --------------------------------------------------
def mixed_record():
    """A search record as core.recipes.onnxrt.mixed.read_sensitivity returns it (nodes deliberately not in loss order)."""
    nodes = [("Attention_0", 0.99980), ("/model/encoder/layer.0/output/dense/MatMul", 0.99869), ("/model/encoder/layer.1/intermediate/dense/MatMul", 0.99939),
             ("Attention_1", 0.99990), ("/model/encoder/layer.1/output/dense/MatMul", 0.99996)]
    return {"target": 0.995, "nodes": [{"node": n, "fidelity": f, "loss": 1 - f} for n, f in nodes],
            "kept_fp32": ["/model/encoder/layer.0/output/dense/MatMul", "/model/encoder/layer.1/intermediate/dense/MatMul"],
            "trail": [{"fp32_nodes": 0, "fidelity": 0.9934}, {"fp32_nodes": 1, "fidelity": 0.9947}, {"fp32_nodes": 2, "fidelity": 0.9953}],
            "final_fidelity": 0.9953}


@pytest.mark.parametrize("node, short", [
    ("/model/encoder/layer.0/output/dense/MatMul", "L0 output.dense"),
    ("/model/bert/encoder/layer.11/attention/output/dense/MatMul", "L11 attention.output.dense"),
    ("Attention_3", "L3 attention"),
    ("Attention", "L0 attention"),
    ("/model/transformer/h.1/mlp/c_fc/MatMul", "L1 mlp.c_fc"),
    ("/model/pooler/dense/MatMul", "pooler.dense"),
    ("/model/classifier/MatMul", "classifier"),
    ("MatMul_7", "MatMul_7"),
])
def test_short_node_names(node, short):
    assert charts.short_node_name(node) == short


def test_sensitivity_bars_sorted_with_kept_nodes_highlighted():
    rec = mixed_record()
    fig = charts.sensitivity_figure(rec)
    bars = [t for t in fig.data if t.x and t.x[0] is not None]
    assert len(bars) == 1
    bar = bars[0]
    assert bar.orientation == "h"
    assert list(bar.x) == sorted(bar.x, reverse=True)                  # most sensitive first ...
    assert list(fig.layout.yaxis.categoryarray) == list(bar.y) and fig.layout.yaxis.autorange == "reversed"   # ... drawn on top
    assert list(bar.y) == ["L0 output.dense", "L1 intermediate.dense", "L0 attention", "L1 attention", "L1 output.dense"]
    assert bar.x[0] == pytest.approx(1 - 0.99869)
    colors = dict(zip(bar.y, bar.marker.color))
    assert colors["L0 output.dense"] == colors["L1 intermediate.dense"] == charts.KEPT_FP32_COLOR
    assert {colors[n] for n in ("L0 attention", "L1 attention", "L1 output.dense")} == {charts.INT8_NODE_COLOR}
    assert charts.KEPT_FP32_COLOR != charts.INT8_NODE_COLOR
    legend = {t.name: t.marker.color for t in fig.data if t.showlegend is not False}
    assert legend == {"kept in fp32 (2)": charts.KEPT_FP32_COLOR, "int8 (3)": charts.INT8_NODE_COLOR}
    assert "1 − cosine" in fig.layout.xaxis.title.text
    assert "/model/encoder/layer.0/output/dense/MatMul" in [c[0] for c in bar.customdata]   # the full ONNX name on hover


def test_sensitivity_bars_never_merge_nodes_with_the_same_short_name():
    rec = {"nodes": [{"node": "/a/layer.0/x/MatMul", "fidelity": 0.9, "loss": 0.1}, {"node": "/b/layer.0/x/MatMul", "fidelity": 0.95, "loss": 0.05}],
           "kept_fp32": [], "trail": [], "target": 0.99}
    bar = charts.sensitivity_figure(rec).data[-1]
    assert len(set(bar.y)) == 2


def test_fidelity_trail_has_the_target_as_a_dashed_line():
    fig = charts.fidelity_trail_figure(mixed_record())
    target = trace_named(fig, "target 0.995")
    assert target.line.dash == "dash" and set(target.y) == {0.995}
    assert min(target.x) <= 0 and max(target.x) >= 2   # spans every step
    line = trace_named(fig, "fidelity on calibration texts")
    assert list(line.x) == [0, 1, 2] and list(line.y) == pytest.approx([0.9934, 0.9947, 0.9953])
    assert list(line.customdata) == ["nothing (all int8)", "L0 output.dense", "L1 intermediate.dense"]
    lo, hi = fig.layout.yaxis.range
    assert lo < 0.9934 and hi > 0.995
    assert fig.layout.xaxis.title.text == "Weight nodes kept in fp32"


def test_sensitivity_summary_in_words():
    rec = mixed_record()
    assert charts.sensitivity_summary(rec) == ("2 of 5 weight nodes stay fp32 (L0 output.dense, L1 intermediate.dense); "
                                               "fidelity on calibration texts 0.9934 → 0.9953, target 0.995.")
    missed = dict(rec, target=0.999)
    assert "not reached (the cap of 2)" in charts.sensitivity_summary(missed, max_fp32=2)
    none_kept = dict(rec, kept_fp32=[], trail=[{"fp32_nodes": 0, "fidelity": 0.9971}], final_fidelity=0.9971)
    assert charts.sensitivity_summary(none_kept) == "All 5 weight nodes are int8: fidelity on calibration texts 0.9971 already meets the target 0.995."
    assert "0.99994" in charts.sensitivity_summary(dict(none_kept, target=0.99999, final_fidelity=0.99994))   # enough digits to compare


def test_empty_search_record_gives_a_message():
    for fig in (charts.sensitivity_figure({}), charts.fidelity_trail_figure({})):
        assert fig.layout.annotations


def test_quality_budget_line_on_the_pareto_chart():
    rep = classification_report()
    assert charts.budget_threshold(rep, {"max_accuracy_drop": 1.0}) == (pytest.approx(89.0), "accuracy ≥ fp32 − 1 pt")
    fig = charts.quality_latency_figure(rep, budgets={"max_accuracy_drop": 1.0})
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 1 and lines[0].y0 == pytest.approx(89.0) and lines[0].line.dash == "dash"
    assert any("quality budget" in (a.text or "") for a in fig.layout.annotations)
    assert fig.layout.yaxis.range[0] < 89.0
    far = charts.quality_latency_figure(rep, budgets={"max_accuracy_drop": 60.0})   # far below every point: said, not drawn
    assert not [s for s in far.layout.shapes if s.type == "line"]
    assert any("far below" in (a.text or "") for a in far.layout.annotations)
    assert not charts.quality_latency_figure(rep).layout.shapes   # without budgets: as before
    rep["task"] = "embedding"
    assert charts.budget_threshold(rep, {"min_cosine": 0.995}) == (0.995, "cosine ≥ 0.995")


def test_storage_and_report_accessors_import_no_charts():
    """The charts sit above the run history (storage) and the report accessors: neither imports them, not even inside a function."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for path in ("core/storage/history.py", "core/charts/report_access.py", *(f"core/reporting/{m}.py" for m in ("results", "compare", "table"))):
        imported = set()
        for node in ast.walk(ast.parse((root / path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                imported |= {f"{node.module or ''}.{a.name}".strip(".") for a in node.names} | {node.module or ""}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        assert not [m for m in imported if m in ("charts", "core.charts") or m.startswith(("charts.", "core.charts."))], path
