"""The OpenVINO GenAI family (core/recipes/openvino_genai/): the stateful model (KV cache in the CPU plugin) built from
the fp32 transformers model without optimum-intel, NNCF int8 / int4 weights, the folder openvino_genai.LLMPipeline
loads, the lab's decoder on the compiled model's infer request, and a generate-scenario comparison end to end.

Tiny random models (tests/tiny_models.py): code paths and agreement with fp32 only, never evidence of quality or speed.
"""

from __future__ import annotations

import importlib.util
import json
import types

import numpy as np
import pytest

from core import cli as core_cli
from core.engine.variants import get_variant, variant_key
from core.inputs.sources import resolve as resolve_source
from core.measure.generation import greedy_tokens
from core.recipes import RECIPES, BuildContext, registry
from core.recipes.openvino_genai import FAMILY
from core.recipes.openvino_genai import recipes as genai_recipes
from core.tasks import CAUSAL_LM

NAME = "openvino-genai"
VARIANTS = [NAME, f"{NAME}:weights=int4"]
MISSING = [m for m in ("openvino", "openvino_genai", "openvino_tokenizers", "nncf") if importlib.util.find_spec(m) is None]
needs_genai = pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed here (pip install -r requirements.txt)")
MODELS = ["tiny_gpt2_dir", "tiny_llama_dir"]
TEXTS = ["Quantization maps floats onto a few integer levels.", "The quick brown fox jumps over the lazy dog near the river bank today.",
         "Short.", "Return a new list containing the items in reverse order."]
FILES = ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "openvino_detokenizer.xml", "config.json", "generation_config.json")


@pytest.fixture(scope="module")
def built(request) -> dict:
    """Per tiny model: the source, TEXTS' ids and mask (right-padded), fp32's logits, and both variants loaded with theirs."""
    out = {}
    for fixture in MODELS:
        source = resolve_source(str(request.getfixturevalue(fixture)))
        ctx = BuildContext(source=source)
        enc = ctx.tokenizer()(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="np")
        ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
        out[fixture] = {"source": source, "ctx": ctx, "ids": ids, "mask": mask, "fp32": get_variant(source, "fp32", context=ctx).variant(ids, mask)}
        for spec in VARIANTS:
            lv = get_variant(source, spec, context=ctx)
            out[fixture][spec] = (lv, lv.variant(ids, mask))
    return out


def _cosines(out: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The cosine of each real position's logits to fp32's."""
    real = mask.astype(bool)
    a, b = out[real], ref[real]
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_the_family_declares_its_recipe_libraries_and_registry_line():
    assert FAMILY in registry.FAMILIES and [r.name for r in FAMILY.recipes] == [NAME]
    recipe = RECIPES[NAME]
    assert recipe.tasks == (CAUSAL_LM,) and not recipe.calibrated
    assert recipe.defaults() == {"weights": "int8", "precision": "f32", "kv_cache": "float"}
    assert {p.name for p in recipe.params if p.at_load} == {"precision", "kv_cache"}   # compile options: one stored folder for every value
    assert FAMILY.versions == ("openvino", "openvino-genai", "openvino-tokenizers", "nncf")
    assert set(FAMILY.not_exported) == {NAME} and not FAMILY.exporters and set(FAMILY.colors) == {NAME}
    assert FAMILY.causal_layout == "stateful" and not FAMILY.loads_transformers
    assert set(registry.declared_libraries([NAME])) >= {"openvino-genai", "openvino-tokenizers", "nncf", "torch"}


def test_unavailable_with_a_one_line_reason_when_openvino_genai_is_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(genai_recipes, "util", types.SimpleNamespace(find_spec=lambda m: None if m == "openvino_genai" else real(m)))
    reason = RECIPES[NAME].unavailable_reason("cpu", CAUSAL_LM)
    assert reason and "openvino-genai is not installed" in reason and "\n" not in reason
    assert not RECIPES[NAME].describe()["available"]
    assert NAME not in registry.available(CAUSAL_LM)


def test_a_genai_built_for_another_openvino_is_unavailable(monkeypatch):
    if MISSING:
        pytest.skip(f"{', '.join(MISSING)} not installed here")
    versions = {"openvino": "2026.4.1", "openvino-genai": "2026.3.0.0", "openvino-tokenizers": "2026.4.1.0"}
    monkeypatch.setattr(genai_recipes, "version_of", versions.get)
    reason = genai_recipes.missing_reason()
    assert reason and "openvino-genai 2026.3.0.0 is built for openvino 2026.3.0" in reason
    versions["openvino-genai"] = "2026.4.1.0"
    assert genai_recipes.missing_reason() is None


def test_it_refuses_other_devices_and_other_tasks():
    recipe = RECIPES[NAME]
    assert "does not apply to embedding" in recipe.unavailable_reason("cpu", "embedding")
    assert recipe.unavailable_reason("cuda", CAUSAL_LM)


@needs_genai
def test_python_m_core_variants_lists_both_variants(cli):
    proc = cli("variants")   # the conftest fixture: python -m core in a subprocess
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith(NAME + " "))
    assert "openvino-genai" in row and "causal-lm" in row and "weights=int8 (int8|int4)" in row and "precision=f32 (f32|bf16)" in row
    assert row.rstrip().endswith("yes"), row


@needs_genai
def test_variants_json_describes_the_parameters(capsys):
    assert core_cli.main(["variants", "--json"]) == 0
    row = {r["name"]: r for r in json.loads(capsys.readouterr().out)}[NAME]
    assert row["family"] == "openvino-genai" and row["available"], row
    assert row["params"]["weights"]["choices"] == ["int8", "int4"] and row["params"]["weights"]["default"] == "int8"
    assert row["params"]["precision"]["choices"] == ["f32", "bf16"] and row["params"]["precision"]["default"] == "f32"


@needs_genai
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("spec", VARIANTS)
def test_each_variant_builds_a_genai_folder_and_stays_close_to_fp32(built, model, spec):
    b = built[model]
    lv, out = b[spec]
    ref, mask = b["fp32"], b["mask"]
    assert out.dtype == np.float32 and out.shape == ref.shape
    for name in FILES:
        assert (lv.entry.path / name).is_file(), name
    assert lv.variant.name == spec and lv.variant.param_bytes > 0 and lv.variant.decoder is not None
    weights = "int4 weights (NNCF INT4_ASYM, groups of 64)" if "int4" in spec else "int8 weights (NNCF INT8_ASYM)"
    threads = lv.variant.module.get_property("INFERENCE_NUM_THREADS")
    assert (f"OpenVINO GenAI stateful model: the KV cache lives in the CPU plugin (no past inputs); {weights}; f32 inference precision; "
            f"{threads} threads.") in lv.variant.notes, lv.variant.notes
    cos = _cosines(out, ref, mask)
    assert cos.min() > (0.95 if "int4" in spec else 0.99), (spec, cos.min())   # random tiny weights: code paths, not quality
    real = mask.astype(bool)
    assert not np.allclose(out[real], ref[real], atol=1e-6), "the compressed weights returned fp32's logits unchanged"
    assert [i.get_any_name() for i in lv.variant.module.inputs] == ["input_ids", "attention_mask", "position_ids", "beam_idx"]
    assert [o.get_any_name() for o in lv.variant.module.outputs] == ["logits"]   # no past inputs, no present outputs: the cache is state


@needs_genai
@pytest.mark.parametrize("model", MODELS)
def test_int4_is_smaller_than_int8(built, model):
    assert built[model][VARIANTS[1]][0].variant.param_bytes < built[model][NAME][0].variant.param_bytes


@needs_genai
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("spec", VARIANTS)
def test_kv_cache_decoding_gives_the_tokens_and_logits_of_a_full_recompute(built, model, spec):
    b = built[model]
    variant = b[spec][0].variant
    decoder = variant.new_decoder()
    assert decoder.kv_cache and type(decoder).__name__ == "StatefulDecoder"
    prompt = np.repeat(b["ids"][:1, :6], 2, axis=0)   # unpadded prompts, as generation feeds them
    kept_cached, kept_recomputed = [], []
    cached = greedy_tokens(variant, prompt, 8, keep=kept_cached)
    recomputed = greedy_tokens(variant, prompt, 8, cache=False, keep=kept_recomputed)
    assert cached.shape == (2, 8) and (cached == recomputed).all(), (cached, recomputed)
    for step, (a, r) in enumerate(zip(kept_cached, kept_recomputed)):
        np.testing.assert_allclose(a, r, atol=1e-4, rtol=1e-4, err_msg=f"step {step}")
    again = greedy_tokens(variant, prompt[:1], 8)   # a new prompt resets the plugin's state: no cache of the last one is kept
    assert (again[0] == cached[0]).all()


@needs_genai
def test_precision_and_kv_cache_are_applied_at_load_from_one_stored_folder(built):
    b = built["tiny_llama_dir"]
    source, ctx = b["source"], b["ctx"]
    defaults = RECIPES[NAME].defaults()
    key = variant_key(source, NAME, defaults)
    assert b[NAME][0].entry.key == key
    assert variant_key(source, NAME, {**defaults, "precision": "bf16", "kv_cache": "u8"}) == key
    assert variant_key(source, NAME, {**defaults, "weights": "int4"}) != key
    u8 = get_variant(source, f"{NAME}:kv_cache=u8", context=ctx)
    assert u8.entry.key == key and u8.entry.cache_hit
    assert any("KV cache in u8 (kv_cache=u8" in n for n in u8.variant.notes), u8.variant.notes
    assert any("KV cache in f32 (kv_cache=float" in n for n in b[NAME][0].variant.notes)
    if "bf16" not in genai_recipes.offered():
        pytest.skip("OpenVINO's CPU plugin offers no BF16 on this CPU")
    bf16 = get_variant(source, f"{NAME}:precision=bf16", context=ctx)
    assert bf16.entry.key == key and any("bf16 inference precision;" in n for n in bf16.variant.notes), bf16.variant.notes
    cos = _cosines(bf16.variant(b["ids"], b["mask"]), b["fp32"], b["mask"])
    assert cos.min() > 0.98, cos.min()


@needs_genai
@pytest.mark.parametrize("backend", ["PA", "SDPA"])
def test_llm_pipeline_loads_the_stored_folder_and_generates_the_labs_tokens(built, backend):
    import openvino as ov
    import openvino_genai

    b = built["tiny_llama_dir"]
    lv = b[NAME][0]
    ids = b["ids"][:1, :7]
    pipe = openvino_genai.LLMPipeline(str(lv.entry.path), "CPU", ATTENTION_BACKEND=backend, INFERENCE_PRECISION_HINT="f32", KV_CACHE_PRECISION="f32")
    config = openvino_genai.GenerationConfig(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert pipe.generate(ov.Tensor(ids), config).tokens == greedy_tokens(lv.variant, ids, 6).tolist()
    assert isinstance(pipe.generate(TEXTS[0], config), str)   # through openvino_tokenizer.xml / openvino_detokenizer.xml


@needs_genai
def test_a_generate_comparison_runs_end_to_end_with_the_cache_in_the_plugin(tiny_gpt2_dir):
    from core.engine.evaluate import EvalConfig, run_evaluation

    report = run_evaluation(EvalConfig(task="causal-lm", model=str(tiny_gpt2_dir), variants=["fp32", NAME], scenario="generate", batch_sizes=[1],
                                       prompt_lengths=[8], new_tokens=4, protocol={"warmup": 1, "min_iters": 3, "min_seconds": 0.02, "max_seconds": 0.5}))
    by = {r["variant"]: r for r in report["results"]}
    assert set(by) == {"fp32", NAME}
    result = by[NAME]
    assert not result.get("error"), result.get("error")
    cells = result["generation"]
    assert [(c["batch_size"], c["prompt_len"], c["new_tokens"]) for c in cells] == [(1, 8, 4)]
    assert all(c["kv_cache"] for c in cells) and all(c["ttft_ms"] > 0 and c["decode_ms_per_token_p50"] > 0 for c in cells)
    assert not any("Generation without a KV cache" in n for n in result["notes"])
    assert any(n.startswith("OpenVINO GenAI stateful model") for n in result["notes"]), result["notes"]
