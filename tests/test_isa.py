"""The ``isa`` what-if (issue 28): oneDNN's instruction set capped in one variant's worker (core/recipes/onednn_isa.py)
on the OpenVINO and PyTorch recipes, so a new Xeon shows what AMX buys over the older CPUs of a fleet.

The refusals, the worker environment and the store keys run everywhere (CPU flags are passed in); on a CPU with AMX,
MiniLM's kernels are read from the runtimes themselves, capped and not (marked slow).
"""

from __future__ import annotations

import pytest

from core import env
from core.engine.variants import variant_key
from core.execution import pool
from core.inputs.sources import resolve as resolve_source
from core.recipes import RECIPES, onednn_isa, registry

AVX2_EPYC = {"sse4_1", "avx", "avx2", "fma", "f16c"}   # an AVX2-only CPU's flags (no AVX-512, no VNNI)
VNNI_XEON = AVX2_EPYC | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"}
WITH_ISA = ["fp32", "bf16", "dynamic-int8", "openvino-fp32", "openvino-bf16", "openvino-int8", "openvino-int8-wo", "openvino-int4"]


def test_the_levels_a_cpu_can_take_follow_its_flags():
    assert onednn_isa.available(AVX2_EPYC) == ["avx2", "all"]
    assert onednn_isa.available(VNNI_XEON) == ["avx2", "avx512_core", "avx512_core_vnni", "all"]
    assert onednn_isa.available(VNNI_XEON | {"avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"})[-2:] == ["avx512_core_amx", "all"]


def test_a_level_the_cpu_lacks_is_refused_in_one_line_that_lists_the_ones_it_has():
    reason = onednn_isa.refuse("avx512_core_vnni", AVX2_EPYC)
    assert reason == ("isa=avx512_core_vnni needs CPU flags this CPU lacks (avx512f, avx512bw, avx512vl, avx512dq, avx512_vnni); "
                      "on this CPU choose one of avx2, all.")
    assert "\n" not in reason
    assert onednn_isa.refuse("avx512_core_vnni", VNNI_XEON) is None and onednn_isa.refuse("all", AVX2_EPYC) is None


def test_the_recipes_refuse_it_before_any_build(monkeypatch):
    monkeypatch.setattr(env, "read_cpuinfo", lambda: ("AVX2 test CPU", frozenset(AVX2_EPYC)))
    for name in WITH_ISA:
        recipe = RECIPES[name]
        assert next(p for p in recipe.params if p.name == "isa").at_load, name
        params = recipe.resolve_params({"isa": "avx512_core_amx"})
        assert "isa=avx512_core_amx needs CPU flags this CPU lacks" in (recipe.unavailable_reason("cpu", None, params) or ""), name
    with pytest.raises(Exception, match="parameter isa=amx is not allowed; choose one of avx2, avx2_vnni"):
        registry.resolve("openvino-int8:isa=amx")


def test_the_cap_is_in_the_workers_environment_and_keeps_the_stored_entry(tiny_embedder_dir):
    capped = registry.worker_env("openvino-int8:isa=avx512_core_vnni", {"OMP_NUM_THREADS": "2"})
    assert capped == {"OMP_NUM_THREADS": "2", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI", "MKL_ENABLE_INSTRUCTIONS": "AVX512_E1"}
    assert registry.worker_env("openvino-int8", {"OMP_NUM_THREADS": "2"}) == {"OMP_NUM_THREADS": "2"}
    assert pool.env_key(capped) != pool.env_key({"OMP_NUM_THREADS": "2"})   # a pooled worker started uncapped never serves it
    source = resolve_source(str(tiny_embedder_dir))
    fp32 = RECIPES["fp32"].defaults()
    assert variant_key(source, "fp32", {**fp32, "isa": "avx2"}) == variant_key(source, "fp32", fp32)   # a runtime cap, not a build option
    label = registry.resolve("fp32")[2]
    assert label == "fp32"


def test_a_direct_load_without_the_workers_environment_says_nothing_is_capped(monkeypatch):
    monkeypatch.delenv(onednn_isa.ENV_VAR, raising=False)
    assert "so nothing is capped here" in onednn_isa.note("avx2")
    monkeypatch.setenv(onednn_isa.ENV_VAR, "AVX2")
    words = onednn_isa.note("avx2", torch=True)
    assert words.startswith("isa=avx2: oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA) in this worker, MKL at AVX2; FBGEMM")
    assert "not the other CPU's clocks, caches or memory" in words
    assert onednn_isa.note("all") is None


def test_a_capped_variant_beside_its_uncapped_one_says_what_the_cap_cost():
    from core.reporting.results import VariantResult
    from test_charts import result

    rs = [VariantResult.from_dict(r) for r in (result("openvino-int8", size_mb=23, speed=0.2, quality={}),
                                                  result("openvino-int8:isa=avx512_core_vnni", size_mb=23, speed=0.3, quality={}),
                                                  result("bf16:isa=avx2", size_mb=45, speed=1.0, quality={}))]
    notes = registry.whatif_notes(rs[1], rs, [1])
    assert len(notes) == 1 and notes[0].startswith("What-if isa=avx512_core_vnni: 1.50x the time of openvino-int8 at batch 1 (")
    assert registry.whatif_notes(rs[0], rs, [1]) == [] and registry.whatif_notes(rs[2], rs, [1]) == []   # nothing to compare with


@pytest.mark.slow
def test_on_amx_the_capped_variant_runs_other_kernels_and_says_so():
    """MiniLM at 16-64 tokens (the AMX run of tests/test_openvino_precision.py, made here when that module did not run):
    uncapped, OpenVINO int8 runs AMX kernels; capped at avx512_core_vnni, the same variant in the same run reports
    AVX-512 kernels, as the runtime itself names them, and its notes say what the cap is and what it cost."""
    if not env.has_amx():
        pytest.skip(f"needs AMX (amx_int8, amx_bf16) to show what the cap takes away; this CPU is {env.isa_words()}")
    from test_openvino_precision import AMX_RUN, test_minilm_openvino_int8_in_bf16_is_marked_wrong_at_32_tokens_and_f32_is_not

    if "report" not in AMX_RUN:
        test_minilm_openvino_int8_in_bf16_is_marked_wrong_at_32_tokens_and_f32_is_not()
    by = {r["variant"]: r for r in AMX_RUN["report"]["results"]}
    capped, uncapped = by["openvino-int8:isa=avx512_core_vnni"], by["openvino-int8"]
    assert "amx" in (uncapped.get("kernels") or "").lower(), uncapped.get("kernels")
    assert "amx" not in (capped.get("kernels") or "").lower() and "on avx512 (int8)" in capped["kernels"], capped.get("kernels")   # brgemm_avx512_I8
    assert any("oneDNN capped at AVX512_CORE_VNNI" in n and "not the other CPU's clocks" in n for n in capped["notes"]), capped["notes"]
    assert any(n.startswith("What-if isa=avx512_core_vnni: ") and "the time of openvino-int8 at batch 1" in n for n in capped["notes"]), capped["notes"]
