"""core.bench: the latency statistics with a fake clock, the stopping rule, and honest seq-length inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import bench


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


def test_measure_cell_and_dataset_throughput_with_fake_variant(tokenizer):
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

    texts = TEXTS * 3
    shapes.clear()
    unsorted = bench.dataset_throughput(FakeVariant(), tokenizer, texts, batch_size=4, max_length=64, sort=False, clock=clock)
    unsorted_shapes = list(shapes[1:])
    shapes.clear()
    sorted_ = bench.dataset_throughput(FakeVariant(), tokenizer, texts, batch_size=4, max_length=64, sort=True, clock=clock)
    sorted_shapes = list(shapes[1:])
    assert sum(s[0] for s in unsorted_shapes) == sum(s[0] for s in sorted_shapes) == len(texts)
    assert [s[1] for s in sorted_shapes] == sorted(s[1] for s in sorted_shapes)
    # sorting by length pads less, so the fake (cost ~ tokens incl. padding) model is faster on sorted batches
    assert sum(a * b for a, b in sorted_shapes) < sum(a * b for a, b in unsorted_shapes)
    assert sorted_["texts_per_s"] > unsorted["texts_per_s"]
    assert unsorted["texts_per_s"] == pytest.approx(len(texts) / (0.001 * sum(a * b for a, b in unsorted_shapes)))
