"""Latency protocol: end to end from raw text (tokenization included), forward-only beside it.

For each (batch_size, seq_len) cell:

1. Inputs: ``batch_size`` texts from the data, each long enough (consecutive texts are joined) to give at least
   ``seq_len`` tokens, cut at the character where the ``seq_len``-th token ends, and tokenized with
   ``truncation + padding="max_length"`` to exactly ``seq_len`` tokens. So a seq-length sweep measures real tokens,
   not padding, and every variant sees the very same inputs.
2. ``warmup`` untimed runs, then timed iterations until at least ``min_iters`` iterations AND ``min_seconds`` have
   passed (capped by ``max_iters`` / ``max_seconds``). Each iteration reads the clock three times:
   before tokenizing, after tokenizing, after the forward pass (and ``sync()``, which waits for CUDA).
3. Statistics over iterations: p50/p90/p99 (numpy linear percentiles), mean, std (sample, ddof=1),
   throughput = batch_size / mean seconds; ``forward_p50_ms`` is the median of the forward-only times.

Whole-dataset mode runs every text once in batches of the chosen size (padding to the longest in each batch),
in data order and sorted by length, and reports texts per second.

The clock is injectable (any callable returning seconds) so tests can check the statistics exactly.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .report import LatencyCell  # one latency record, the same in the bench and in reports

Clock = Callable[[], float]


@dataclass
class Protocol:
    warmup: int = 2
    min_iters: int = 10
    min_seconds: float = 0.5
    max_iters: int = 500
    max_seconds: float = 10.0

    def to_dict(self) -> dict:
        return asdict(self)


QUICK = Protocol(warmup=1, min_iters=3, min_seconds=0.0, max_iters=20, max_seconds=2.0)


def summarize(e2e_s: list[float], forward_s: list[float], batch_size: int, seq_len: int) -> LatencyCell:
    e2e = np.asarray(e2e_s, dtype=np.float64) * 1000.0
    fwd = np.asarray(forward_s, dtype=np.float64) * 1000.0
    p50, p90, p99 = (float(v) for v in np.percentile(e2e, [50, 90, 99]))
    mean = float(e2e.mean())
    std = float(e2e.std(ddof=1)) if len(e2e) > 1 else 0.0
    return LatencyCell(batch_size=batch_size, seq_len=seq_len, p50_ms=p50, p90_ms=p90, p99_ms=p99, mean_ms=mean, std_ms=std,
                  throughput_per_s=batch_size / (mean / 1000.0) if mean > 0 else float("inf"),
                  forward_p50_ms=float(np.percentile(fwd, 50)), forward_mean_ms=float(fwd.mean()), iterations=len(e2e))


def time_loop(tokenize: Callable[[], tuple], forward: Callable[..., object], *, protocol: Protocol = Protocol(),
              clock: Clock = time.perf_counter, sync: Callable[[], None] = lambda: None) -> tuple[list[float], list[float]]:
    """Run warm-ups, then timed iterations; returns (end-to-end seconds, forward-only seconds) per iteration."""
    for _ in range(protocol.warmup):
        forward(*tokenize())
        sync()
    e2e, fwd = [], []
    started = clock()
    while True:
        t0 = clock()
        inputs = tokenize()
        t1 = clock()
        forward(*inputs)
        sync()
        t2 = clock()
        e2e.append(t2 - t0)
        fwd.append(t2 - t1)
        n, elapsed = len(e2e), t2 - started
        if n >= protocol.max_iters or (n >= protocol.min_iters and elapsed >= protocol.min_seconds):
            break
        if elapsed >= protocol.max_seconds and n >= min(3, protocol.min_iters):
            break
    return e2e, fwd


# -- inputs -------------------------------------------------------------------------------------
def _n_content_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def cell_texts(tokenizer, texts: list[str], batch_size: int, seq_len: int) -> list[str]:
    """``batch_size`` texts of at least ``seq_len`` tokens each (consecutive data texts joined, cycling through the data
    when it is short), trimmed at the character where the ``seq_len``-th token ends, so tokenizing with truncation
    gives exactly ``seq_len`` real tokens and no padding.

    Each data text is tokenized once (its count is remembered) and each joined text once more to trim it, instead
    of re-tokenizing the growing string after every join."""
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise ValueError("no texts to build benchmark inputs from")
    counts: dict[int, int] = {}

    def count(i: int) -> int:
        if i not in counts:
            counts[i] = _n_content_tokens(tokenizer, texts[i])
        return counts[i]

    out = []
    for row in range(batch_size):
        start = row % len(texts)
        pieces, i = [start], start
        have = count(start)
        while True:
            while have < seq_len and len(pieces) < seq_len:   # joined with spaces, the pieces' counts add up (about)
                i = (i + 1) % len(texts)
                pieces.append(i)
                have += count(i)
            joined = " ".join(texts[j] for j in pieces)
            try:
                enc = tokenizer(joined, add_special_tokens=False, return_offsets_mapping=True)
                offsets = enc["offset_mapping"]
            except (NotImplementedError, KeyError, TypeError):  # slow tokenizers have no offsets: truncation still cuts
                break
            if len(offsets) < seq_len and len(pieces) < seq_len:
                have = len(offsets)   # a BPE merge across a join made it shorter than counted: add more text
                continue
            if len(offsets) > seq_len:
                joined = joined[:offsets[seq_len - 1][1]]
            break
        out.append(joined)
    return out


def make_tokenize(tokenizer, texts: list[str], seq_len: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def tokenize():
        enc = tokenizer(texts, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
        return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)

    return tokenize


def measure_cell(variant, tokenizer, texts: list[str], batch_size: int, seq_len: int, *, protocol: Protocol = Protocol(),
                 clock: Clock = time.perf_counter) -> LatencyCell:
    tokenize = make_tokenize(tokenizer, cell_texts(tokenizer, texts, batch_size, seq_len), seq_len)
    sync = getattr(variant, "sync", None) or (lambda: None)
    e2e, fwd = time_loop(tokenize, variant, protocol=protocol, clock=clock, sync=sync)
    return summarize(e2e, fwd, batch_size, seq_len)


def dataset_throughput(variant, tokenizer, texts: list[str], batch_size: int, max_length: int, *, sort: bool,
                       clock: Clock = time.perf_counter) -> dict:
    """Every text once, batched by ``batch_size`` (padding to the longest in the batch), optionally sorted by length."""
    order = list(range(len(texts)))
    if sort:
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
        order.sort(key=lambda i: lengths[i])
    batches = [[texts[i] for i in order[k:k + batch_size]] for k in range(0, len(order), batch_size)]
    sync = getattr(variant, "sync", None) or (lambda: None)
    warm = tokenizer(batches[0], padding=True, truncation=True, max_length=max_length, return_tensors="np")
    variant(warm["input_ids"].astype(np.int64), warm["attention_mask"].astype(np.int64))
    sync()
    started = clock()
    for batch in batches:
        enc = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        variant(enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64))
    sync()
    elapsed = clock() - started
    return {"texts_per_s": len(texts) / elapsed if elapsed > 0 else float("inf"), "seconds": elapsed, "texts": len(texts), "batches": len(batches)}
