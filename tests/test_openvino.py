"""The OpenVINO family (core/recipes/openvino/): IR builds from the lab's fp32 ONNX graph, NNCF static int8 and
weight-only compression, the KV-cache decoder, the export snippet, the slow-variant cause and the hardware probe.

Tiny random models (tests/tiny_models.py) for each task: code paths and agreement with fp32 only, never evidence of
quality or speed. One real-model test (the bundled MiniLM, marked slow) holds openvino-int8 to the 0.99 fidelity budget.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import cli
from core.engine.variants import get_variant, variant_key
from core.inputs import calibration
from core.inputs.sources import resolve as resolve_source
from core.measure import metrics
from core.measure.generation import greedy_tokens
from core.recipes import RECIPES, BuildContext, registry
from core.recipes.openvino import FAMILY
from core.recipes.openvino.recipes import NO_INT8_ISA_NOTE, int8_isa_note
from core.reporting.results import VariantResult
from core.tasks import CAUSAL_LM, CLASSIFICATION, EMBEDDING

pytest.importorskip("openvino")
pytest.importorskip("nncf")

OPENVINO = ["openvino-fp32", "openvino-bf16", "openvino-int8", "openvino-int8-wo", "openvino-int4"]
MODELS = {EMBEDDING: "tiny_embedder_dir", CLASSIFICATION: "tiny_classifier_dir", CAUSAL_LM: "tiny_llama_dir"}
TEXTS = ["Quantization maps floats onto a few integer levels.", "The quick brown fox jumps over the lazy dog near the river bank today.",
         "Short.", "Return a new list containing the items in reverse order."]
CALIBRATION = ["The central bank raised interest rates.", "A striker scored twice.", "Water vapour on a distant planet.",
               "Return the number of items in the container.", "The function raises ValueError if the argument is negative."] * 4


def _applies(task: str, name: str) -> bool:
    return task in RECIPES[name].tasks


CASES = [(task, name) for task in MODELS for name in OPENVINO if _applies(task, name)]


@pytest.fixture(scope="module")
def built(request) -> dict:
    """Per task: the source, the token ids and mask of TEXTS, fp32's output, and every OpenVINO recipe that applies
    (built after onnx-fp32, so they may start from its stored graph), loaded with its output on TEXTS."""
    out = {}
    for task, fixture in MODELS.items():
        source = resolve_source(str(request.getfixturevalue(fixture)))
        ctx = BuildContext(source=source)
        enc = ctx.tokenizer()(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="np")
        ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
        out[task] = {"source": source, "ids": ids, "mask": mask, "fp32": get_variant(source, "fp32", context=ctx).variant(ids, mask)}
        get_variant(source, "onnx-fp32", context=ctx)
        for name in OPENVINO:
            if _applies(task, name):
                lv = get_variant(source, name, context=ctx, calibration_texts=CALIBRATION)
                out[task][name] = (lv, lv.variant(ids, mask))
    return out


def _agreement(task: str, out: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> float:
    """Embeddings: the lowest cosine of the pooled vectors; classifiers: the lowest cosine of the logits; causal LMs:
    the share of real positions whose top next token is fp32's."""
    if task == EMBEDDING:
        return float(metrics.row_cosine(metrics.mean_pool(out, mask), metrics.mean_pool(ref, mask)).min())
    if task == CLASSIFICATION:
        return float(metrics.row_cosine(out, ref).min())
    real = mask.astype(bool)
    return float((out[real].argmax(-1) == ref[real].argmax(-1)).mean())


# how close each recipe must stay to fp32 on the tiny models (by _agreement); openvino-fp32 is held to allclose as well
FLOORS = {"openvino-fp32": 0.9999, "openvino-bf16": 0.98, "openvino-int8": 0.98, "openvino-int8-wo": 0.99, "openvino-int4": 0.9}


def test_the_family_declares_its_recipes_layout_and_registry_line():
    assert FAMILY in registry.FAMILIES and [r.name for r in FAMILY.recipes] == OPENVINO
    assert {n for n in OPENVINO if RECIPES[n].calibrated} == {"openvino-int8"}
    assert RECIPES["openvino-int8-wo"].tasks == RECIPES["openvino-int4"].tasks == (CAUSAL_LM,)
    assert set(RECIPES["openvino-int8"].tasks) == {EMBEDDING, CLASSIFICATION, CAUSAL_LM}
    assert FAMILY.causal_layout == "decoder-with-past" and not FAMILY.loads_transformers
    assert {FAMILY.exporters[n].kind for n in OPENVINO} == {"openvino"} and set(FAMILY.colors) == set(OPENVINO)
    assert set(FAMILY.exporters[OPENVINO[0]].runtime) == {"openvino", "tokenizers", "numpy"}


def test_python_m_core_variants_lists_them_and_says_they_run_here(capsys):
    assert cli.main(["variants", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name in OPENVINO:
        assert rows[name]["family"] == "openvino" and rows[name]["available"], rows[name]
    assert rows["openvino-int8"]["params"]["preset"] == {"default": "mixed", "choices": ["mixed", "performance"],
                                                         "help": rows["openvino-int8"]["params"]["preset"]["help"]}
    assert not RECIPES["openvino-int8"].describe("cuda")["available"]


@pytest.mark.parametrize("task,name", CASES)
def test_each_recipe_builds_loads_and_stays_close_to_fp32(built, task, name):
    b = built[task]
    lv, out = b[name]
    ref, mask = b["fp32"], b["mask"]
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert (lv.entry.path / "model.xml").is_file() and (lv.entry.path / "model.bin").is_file()
    assert lv.variant.name == name and lv.variant.param_bytes > 0
    assert any("OpenVINO CPU plugin" in n for n in lv.variant.notes)
    # the tiny Llama has no ONNX Runtime fusion pattern, so its stored onnx-fp32 graph is the plain export and is reused;
    # the BERTs' stored graphs are fused for ONNX Runtime, so OpenVINO gets a plain export of its own
    origin = "onnx-fp32 graph (entry" if task == CAUSAL_LM else "without ONNX Runtime's bert fusions"
    assert any(origin in n for n in lv.variant.notes), lv.variant.notes
    score = _agreement(task, out, ref, mask)
    assert score >= FLOORS[name], (task, name, score)
    real = mask.astype(bool) if out.ndim == 3 else slice(None)
    if name == "openvino-fp32":
        np.testing.assert_allclose(out[real], ref[real], atol=1e-4, rtol=1e-3)
    elif name == "openvino-bf16" and not any(n.startswith("OpenVINO CPU plugin: bf16") for n in lv.variant.notes):
        assert any("does not run bf16" in n for n in lv.variant.notes), lv.variant.notes   # compiled f32 here, and said
    else:
        assert not np.allclose(out[real], ref[real], atol=1e-6), f"{name} returned fp32's outputs unchanged"


@pytest.mark.parametrize("task", list(MODELS))
def test_quantized_irs_are_smaller_than_fp32(built, task):
    fp32 = built[task]["openvino-fp32"][0].variant.param_bytes
    # static int8 quantizes the matmuls' weights; the tiny Llama's tied embedding table (a quarter of it) stays fp32
    assert built[task]["openvino-int8"][0].variant.param_bytes < (0.7 if task == CAUSAL_LM else 0.6) * fp32
    if task == CAUSAL_LM:
        int8_wo, int4 = built[task]["openvino-int8-wo"][0].variant.param_bytes, built[task]["openvino-int4"][0].variant.param_bytes
        assert int4 < int8_wo < 0.6 * fp32


def test_the_store_key_holds_the_calibration_texts_for_int8_only(built):
    source = built[EMBEDDING]["source"]
    int8 = RECIPES["openvino-int8"].defaults()
    assert variant_key(source, "openvino-int8", int8, CALIBRATION) != variant_key(source, "openvino-int8", int8, CALIBRATION[:3])
    assert variant_key(source, "openvino-int8", int8, CALIBRATION) != variant_key(source, "openvino-int8", int8)
    assert variant_key(source, "openvino-fp32", {}, CALIBRATION) == variant_key(source, "openvino-fp32", {})
    assert built[EMBEDDING]["openvino-int8"][0].entry.key == variant_key(source, "openvino-int8", int8, CALIBRATION)


@pytest.mark.parametrize("name", [n for n in OPENVINO if _applies(CAUSAL_LM, n)])
def test_kv_cache_decoding_gives_the_tokens_of_a_full_recompute(built, name):
    b = built[CAUSAL_LM]
    variant = b[name][0].variant
    assert variant.decoder is not None and variant.new_decoder().kv_cache
    prompt = np.repeat(b["ids"][:1, :6], 2, axis=0)   # unpadded prompts, as generation feeds them
    cached = greedy_tokens(variant, prompt, 8)
    recomputed = greedy_tokens(variant, prompt, 8, cache=False)
    assert cached.shape == (2, 8) and (cached == recomputed).all(), (cached, recomputed)


@pytest.mark.parametrize("task,name", [(EMBEDDING, "openvino-int8"), (EMBEDDING, "openvino-bf16"), (CLASSIFICATION, "openvino-int8"),
                                       (CAUSAL_LM, "openvino-int4")])
def test_the_exported_snippet_runs_alone_and_equals_the_lab(request, tmp_path, task, name):
    from core.exporting.export import export_variant
    from test_export import HARNESS, HELD_OUT, assert_same_outputs, lab_outputs, run_snippets

    (tmp_path / "harness.py").write_text(HARNESS)
    (tmp_path / "held_out.json").write_text(json.dumps(HELD_OUT))
    model = str(request.getfixturevalue(MODELS[task]))
    done = export_variant(model, name, tmp_path / "export")
    meta = done.meta
    assert meta["runtime"] == ["numpy", "openvino", "tokenizers"] and sorted(meta["files"])[:2] == ["model.bin", "model.xml"]
    assert "import torch" not in done.code and "onnxruntime" not in done.code
    precision = "bf16" if name == "openvino-bf16" else "f32"   # the snippet compiles in the precision the lab compiles in
    assert f'{{"INFERENCE_PRECISION_HINT": "{precision}"}}' in done.code and meta["recipe"]["precision"] == precision
    assert meta["inputs"][0]["name"] == "input_ids" and meta["outputs"][0] == {**meta["outputs"][0], "name": "output", "dtype": "float32"}
    got = run_snippets([done.folder], tmp_path)[0]
    lab, mask = lab_outputs(model, name, meta["tokenizer"]["max_length"])
    assert_same_outputs(task, got, lab, mask)


def test_int8_without_vnni_or_amx_is_explained():
    note = int8_isa_note(["avx2", "fma"], x86=True)
    assert note and NO_INT8_ISA_NOTE in note
    assert int8_isa_note(["avx2", "avx512_vnni"], x86=True) is None and int8_isa_note(["avx2", "amx_int8"], x86=True) is None
    assert int8_isa_note([], x86=False) is None
    result = VariantResult(variant="openvino-int8", size_bytes=1, param_bytes=1, build_s=0.1, cache_hit=False, load_s=0.1, peak_rss_bytes=1,
                           quality={}, latency=[], notes=[note])
    assert [c.code for c in registry.slow_causes(result, {})] == ["openvino-int8-no-vnni"]
    result.notes = ["OpenVINO CPU plugin: f32 inference precision, 2 threads, latency hint."]
    assert registry.slow_causes(result, {}) == []


def test_the_hardware_probe_lists_openvinos_devices():
    from core.execution.hardware import probe

    found = probe()["runtimes"]["openvino"]
    assert "CPU" in found["devices"] and found["cpu"] and "FP32" in found["capabilities"] and found["version"]


@pytest.mark.slow
def test_minilm_openvino_int8_keeps_the_embedding_fidelity_budget():
    """The real MiniLM: NNCF static int8 (64 calibration texts) against fp32 on held-out sentences, cosine >= 0.99."""
    source = resolve_source("minilm")
    ctx = BuildContext(source=source)
    texts = calibration.default_texts(EMBEDDING, limit=200)[64:]   # held out: the first 64 calibrate
    enc = ctx.tokenizer()(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    ref = get_variant(source, "fp32", context=ctx).variant(ids, mask)
    out = get_variant(source, "openvino-int8", context=ctx, calibration_texts=calibration.default_texts(EMBEDDING)).variant(ids, mask)
    cos = metrics.row_cosine(metrics.mean_pool(out, mask), metrics.mean_pool(ref, mask))
    assert cos.mean() >= 0.99 and cos.min() >= 0.97, (cos.mean(), cos.min())
