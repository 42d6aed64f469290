"""core.measure.bench: the latency statistics with a fake clock, the stopping rule, honest seq-length inputs, and whole-dataset throughput."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.measure import bench


class FakeClock:
    """Time moves only when the fake tokenizer / model say so."""

    def __init__(self):
        self.now = 100.0
        self.reads = 0

    def __call__(self):
        self.reads += 1
        return self.now


def fake_pair(clock, tok_s, fwd_s):
    """tokenize() advances by tok_s[i]; forward() by fwd_s[i] (cycled); returns them and a call log."""
    log = {"tokenize": 0, "forward": 0, "sync": 0}

    def tokenize():
        clock.now += tok_s[log["tokenize"] % len(tok_s)]
        log["tokenize"] += 1
        return np.zeros((2, 4), dtype=np.int64), np.ones((2, 4), dtype=np.int64)

    def forward(ids, mask):
        clock.now += fwd_s[log["forward"] % len(fwd_s)]
        log["forward"] += 1

    def sync():
        log["sync"] += 1

    return tokenize, forward, sync, log


def test_statistics_with_a_fake_clock():
    clock = FakeClock()
    fwd = [0.010, 0.020, 0.030, 0.040, 0.100]
    tok = [0.001]
    tokenize, forward, sync, log = fake_pair(clock, tok, fwd)
    protocol = bench.Protocol(warmup=0, min_iters=5, min_seconds=0.0, max_iters=50)
    e2e, f = bench.time_loop(tokenize, forward, protocol=protocol, clock=clock, sync=sync)
    assert len(e2e) == 5 and log["sync"] == 5
    np.testing.assert_allclose(f, fwd)
    np.testing.assert_allclose(e2e, np.array(fwd) + 0.001)
    t = bench.summarize(e2e, f, batch_size=4, seq_len=16)
    expected = (np.array(fwd) + 0.001) * 1000
    assert t.p50_ms == pytest.approx(31.0)
    assert t.p90_ms == pytest.approx(np.percentile(expected, 90)) and t.p90_ms == pytest.approx(41 + 0.6 * 60)  # linear interpolation
    assert t.p99_ms == pytest.approx(41 + 0.96 * 60)
    assert t.mean_ms == pytest.approx(expected.mean()) and t.mean_ms == pytest.approx(41.0)
    assert t.std_ms == pytest.approx(math.sqrt(sum((x - 41.0) ** 2 for x in expected) / 4))
    assert t.throughput_per_s == pytest.approx(4 / 0.041)
    assert t.forward_p50_ms == pytest.approx(30.0) and t.iterations == 5


def test_warmup_is_not_timed():
    clock = FakeClock()
    tokenize, forward, sync, log = fake_pair(clock, [0.0], [5.0, 5.0] + [0.01] * 10)   # two slow warm-ups, then fast
    e2e, _ = bench.time_loop(tokenize, forward, protocol=bench.Protocol(warmup=2, min_iters=3, min_seconds=0), clock=clock, sync=sync)
    assert log["forward"] == 5 and max(e2e) < 5.0


def test_stops_after_min_iters_and_min_seconds():
    clock = FakeClock()
    tokenize, forward, sync, _ = fake_pair(clock, [0.0], [0.0625])
    e2e, _ = bench.time_loop(tokenize, forward, protocol=bench.Protocol(warmup=0, min_iters=3, min_seconds=1.0, max_iters=1000), clock=clock)
    assert len(e2e) == 16                     # 16 x 62.5 ms reaches 1 s; 3 iterations alone would not
    clock = FakeClock()
    tokenize, forward, sync, _ = fake_pair(clock, [0.0], [0.5])
    e2e, _ = bench.time_loop(tokenize, forward, protocol=bench.Protocol(warmup=0, min_iters=10, min_seconds=1.0, max_iters=1000), clock=clock)
    assert len(e2e) == 10                     # 1 s reached early, iterations still required


def test_caps_on_iterations_and_seconds():
    clock = FakeClock()
    tokenize, forward, _, _ = fake_pair(clock, [0.0], [0.001])
    e2e, _ = bench.time_loop(tokenize, forward, protocol=bench.Protocol(warmup=0, min_iters=10, min_seconds=100.0, max_iters=25), clock=clock)
    assert len(e2e) == 25
    clock = FakeClock()
    tokenize, forward, _, _ = fake_pair(clock, [0.0], [2.0])
    e2e, _ = bench.time_loop(tokenize, forward, protocol=bench.Protocol(warmup=0, min_iters=10, min_seconds=0.0, max_seconds=5.0), clock=clock)
    assert len(e2e) == 3                      # 6 s > 5 s cap after the 3 iterations a percentile needs


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from tiny_models import minilm_tokenizer_dir

    return AutoTokenizer.from_pretrained(str(minilm_tokenizer_dir()))


TEXTS = ["A short one.", "The striker scored twice in the second half to win the match for the home side.",
         "Quantization maps floating-point values onto a small set of integers.", "Tiny."]


@pytest.mark.parametrize("seq_len", [8, 16, 48])
def test_cell_inputs_are_exactly_seq_len_real_tokens(tokenizer, seq_len):
    texts = bench.cell_texts(tokenizer, TEXTS, batch_size=5, seq_len=seq_len)
    assert len(texts) == 5
    ids, mask = bench.make_tokenize(tokenizer, texts, seq_len)()
    assert ids.shape == (5, seq_len) and mask.shape == (5, seq_len)
    assert mask.all(), "the data has enough text: no padding should be measured"
    # trimmed, not just truncated at tokenization: tokenizing without truncation gives about seq_len tokens
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    assert all(seq_len <= n <= seq_len + 2 for n in lengths), lengths


def test_measure_cell_with_fake_variant(tokenizer):
    clock = FakeClock()
    shapes = []

    class FakeVariant:
        def __call__(self, ids, mask):
            shapes.append(ids.shape)
            clock.now += 0.001 * ids.shape[0] * ids.shape[1]
            return np.zeros((ids.shape[0], 3), dtype=np.float32)

        def sync(self):
            pass

    t = bench.measure_cell(FakeVariant(), tokenizer, TEXTS, batch_size=2, seq_len=16,
                           protocol=bench.Protocol(warmup=1, min_iters=4, min_seconds=0), clock=clock)
    assert t.iterations == 4 and all(s == (2, 16) for s in shapes)
    assert t.forward_p50_ms == pytest.approx(32.0) and t.p50_ms == pytest.approx(32.0)   # tokenizing takes no fake time
    assert t.throughput_per_s == pytest.approx(2 / 0.032)


# -- whole-dataset throughput: padding, alternation, stopping, and a real model at batch 1 ---------------------------
LENGTHS = ["One.", "Two words here.", "A somewhat longer sentence with more words in it than the others.", "Short text.",
           "Medium length sentence about the weather.", "Quantization maps floats to a few integer levels, per channel or per tensor.",
           "Hi.", "The striker scored twice in the second half to win the match for the home side, and the crowd sang."]


def test_padding_fraction_counts_padding_over_tokens_fed():
    assert bench.padding_fraction([[3, 3], [5, 1]]) == pytest.approx(4 / 16)     # fed 2*3 + 2*5 = 16 tokens, 12 real
    assert bench.padding_fraction([[7], [2], [9]]) == 0.0                         # batch 1 never pads
    assert bench.padding_fraction([]) == 0.0


class Recorder:
    """A fake model whose cost is the tokens it is fed (padding included), times ``drift`` per call; logs every batch."""

    def __init__(self, clock, per_token=1e-4, drift=0.0):
        self.clock, self.per_token, self.drift, self.calls = clock, per_token, drift, []

    def __call__(self, ids, mask):
        self.calls.append(mask.copy())
        self.clock.now += self.per_token * ids.size * (1 + self.drift * len(self.calls))
        return np.zeros((ids.shape[0], 3), dtype=np.float32)

    def sync(self):
        pass


def test_padding_fraction_is_what_the_model_is_fed(tokenizer):
    clock = FakeClock()
    model = Recorder(clock)
    out = bench.dataset_throughput(model, tokenizer, LENGTHS * 2, batch_size=4, max_length=64,
                                   protocol=bench.Protocol(warmup=0, min_iters=1, min_seconds=0), clock=clock)
    masks = model.calls                       # one pass of each mode: sorted first
    n = out["sorted"]["batches"]
    assert len(masks) == 2 * n == 2 * math.ceil(16 / 4)
    for mode, fed in (("sorted", masks[:n]), ("unsorted", masks[n:])):
        zeros, total = sum(int((m == 0).sum()) for m in fed), sum(m.size for m in fed)
        assert out[mode]["padding_fraction"] == pytest.approx(zeros / total)
        assert out[mode]["tokens_fed"] == total and out[mode]["tokens"] == total - zeros
    assert out["sorted"]["padding_fraction"] < out["unsorted"]["padding_fraction"]
    # the cost model pays for padding, so sorting gains exactly the ratio of tokens fed (no noise: zero spread)
    gain = out["sorted"]["texts_per_s"] / out["unsorted"]["texts_per_s"]
    assert gain == pytest.approx(out["unsorted"]["tokens_fed"] / out["sorted"]["tokens_fed"])
    from core.reporting.throughput import throughput_summary

    summary = throughput_summary(out)
    assert summary["within_noise"] is False and summary["words"].startswith(f"sorted {gain:.2f}x faster; padding ")


def test_modes_alternate_pass_by_pass_after_the_warmup(tokenizer):
    clock = FakeClock()
    model = Recorder(clock)
    texts = LENGTHS * 2
    out = bench.dataset_throughput(model, tokenizer, texts, batch_size=3, max_length=64,
                                   protocol=bench.Protocol(warmup=2, min_iters=4, min_seconds=0), clock=clock)
    plans = {m: bench.batch_plan(tokenizer, texts, 3, 64, sort=m == "sorted") for m in bench.MODES}
    n = len(plans["sorted"].batches)
    shapes = [tuple(int(v) for v in m.sum(axis=1)) for m in model.calls]
    expected = {m: [tuple(b) for b in plans[m].lengths] for m in bench.MODES}
    warm, timed = shapes[:4], shapes[4:]      # 2 warm-up batches per mode: the longest ones
    assert set(warm[:2]) <= set(expected["sorted"]) and set(warm[2:]) <= set(expected["unsorted"])
    assert out["warmup_batches"] == 2
    passes = [timed[k:k + n] for k in range(0, len(timed), n)]
    assert passes == [expected["sorted"], expected["unsorted"]] * 4       # A B A B A B A B
    assert out["sorted"]["passes"] == out["unsorted"]["passes"] == 4 and out["batch_size"] == 3


def test_alternation_shares_drift_so_equal_work_agrees_within_spread(tokenizer):
    """At batch 1 both modes do the same work; a machine that slows down steadily must not make either look faster."""
    from core.reporting.throughput import throughput_summary

    clock = FakeClock()
    out = bench.dataset_throughput(Recorder(clock, drift=0.01), tokenizer, LENGTHS, batch_size=1, max_length=64,
                                   protocol=bench.Protocol(warmup=0, min_iters=5, min_seconds=0), clock=clock)
    assert out["sorted"]["padding_fraction"] == out["unsorted"]["padding_fraction"] == 0.0
    summary = throughput_summary(out)
    assert summary["within_noise"] is True and abs(summary["gain"] - 1) < 0.1
    assert summary["words"] == "batch 1: no padding, so sorting cannot matter here (no difference within noise)"


def test_throughput_stopping_rules(tokenizer):
    def run(protocol, batch=2):
        clock = FakeClock()
        return bench.dataset_throughput(Recorder(clock, per_token=1e-3), tokenizer, LENGTHS, batch_size=batch, max_length=64,
                                        protocol=protocol, clock=clock)

    sorted_tokens = run(bench.Protocol(warmup=0, min_iters=1, min_seconds=0))["sorted"]["tokens_fed"]
    pass_s = 1e-3 * sorted_tokens             # the faster (sorted) mode's pass time
    out = run(bench.Protocol(warmup=0, min_iters=2, min_seconds=pass_s * 5.5, max_seconds=100))
    assert out["sorted"]["passes"] == 6       # min_seconds of timed passes in each mode, not just min_iters
    assert run(bench.Protocol(warmup=0, min_iters=50, min_seconds=0, max_iters=7))["unsorted"]["passes"] == 7
    assert run(bench.Protocol(warmup=0, min_iters=50, min_seconds=0, max_seconds=pass_s))["sorted"]["passes"] == 3
    assert run(bench.Protocol(warmup=0, min_iters=1, min_seconds=0), batch=500)["batch_size"] == len(LENGTHS)   # capped


def test_batch_1_sorted_and_unsorted_agree_within_spread_on_minilm(tokenizer):
    """Regression (issue 12): onnx-int8 once showed 131.6 texts/s sorted vs 87.8 unsorted at batch 1, where sorting
    cannot change the work. The real MiniLM onnx-int8, real passes: the two min-max ranges must overlap. With 9
    alternated passes per mode, two ranges drawn from one distribution miss each other with probability 2/C(18,9) < 1e-4."""
    from core.engine.variants import get_variant
    from core.inputs.sources import resolve
    from core.reporting.throughput import throughput_summary

    variant = get_variant(resolve("minilm", "embedding"), "onnx-int8", max_length=64).variant
    out = bench.dataset_throughput(variant, tokenizer, LENGTHS, batch_size=1, max_length=64,
                                   protocol=bench.Protocol(warmup=2, min_iters=9, min_seconds=0.0, max_seconds=60.0))
    s, u = out["sorted"], out["unsorted"]
    assert s["passes"] == u["passes"] == 9 and s["padding_fraction"] == u["padding_fraction"] == 0.0
    assert s["texts_per_s_min"] <= s["texts_per_s"] <= s["texts_per_s_max"] and s["texts"] == len(LENGTHS)
    summary = throughput_summary(out)
    assert summary["within_noise"], (s, u)
    assert summary["words"].startswith("batch 1: no padding, so sorting cannot matter here")
