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

Whole-dataset mode (``dataset_throughput``) runs every text in batches of its own batch size (padding to the
longest in each batch), in two modes: sorted by length and in data order. Each mode is timed over repeated whole
passes, alternated (sorted, unsorted, sorted, unsorted, ...) so drift of a busy machine hits both alike, after the
protocol's ``warmup`` untimed runs per mode (its longest batches: the model has already seen every text in the quality
pass, so a whole warm-up pass would only cost time).
Rounds go on until ``min_iters`` passes per mode AND ``min_seconds`` of timed passes per mode (capped by ``max_iters``
passes, or by ``max_seconds`` once 3 passes are in). Per mode: texts/s median, min and max over passes, the
number of passes, and the padding fraction (padding tokens / all tokens fed), which is what sorting removes.

The clock is injectable (any callable returning seconds) so tests can check the statistics exactly.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ..reporting.cells import LatencyCell  # one latency record, the same in the bench and in reports
from ..reporting.throughput import MODES, DatasetThroughput, ThroughputMode  # the whole-dataset record, its modes

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


QUICK = Protocol(warmup=1, min_iters=3, min_seconds=0.0, max_iters=20, max_seconds=2.0)   # the dashboard's "Quick" measurement


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
              clock: Clock = time.perf_counter, sync: Callable[[], None] = lambda: None, keep: list | None = None) -> tuple[list[float], list[float]]:
    """Run warm-ups, then timed iterations; returns (end-to-end seconds, forward-only seconds) per iteration.
    ``keep``: a list that receives (inputs, output) of the last timed call, for the cell's output check."""
    for _ in range(protocol.warmup):
        forward(*tokenize())
        sync()
    e2e, fwd = [], []
    started = clock()
    while True:
        t0 = clock()
        inputs = tokenize()
        t1 = clock()
        output = forward(*inputs)
        sync()
        t2 = clock()
        e2e.append(t2 - t0)
        fwd.append(t2 - t1)
        n, elapsed = len(e2e), t2 - started
        if n >= protocol.max_iters or (n >= protocol.min_iters and elapsed >= protocol.min_seconds):
            break
        if elapsed >= protocol.max_seconds and n >= min(3, protocol.min_iters):
            break
    if keep is not None:
        keep[:] = [(inputs, output)]   # held after timing: keeping it costs no time inside the loop
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
                 clock: Clock = time.perf_counter, keep: list | None = None) -> LatencyCell:
    """One timed cell; ``keep`` receives ((input_ids, attention_mask), output) of its last timed call."""
    tokenize = make_tokenize(tokenizer, cell_texts(tokenizer, texts, batch_size, seq_len), seq_len)
    sync = getattr(variant, "sync", None) or (lambda: None)
    e2e, fwd = time_loop(tokenize, variant, protocol=protocol, clock=clock, sync=sync, keep=keep)
    return summarize(e2e, fwd, batch_size, seq_len)


def cell_output(variant, tokenizer, texts: list[str], batch_size: int, seq_len: int) -> tuple[tuple, object]:
    """((input_ids, attention_mask), output) of one untimed call on a cell's inputs (the reference of an fp32 that
    only gives quality)."""
    inputs = make_tokenize(tokenizer, cell_texts(tokenizer, texts, batch_size, seq_len), seq_len)()
    output = variant(*inputs)
    (getattr(variant, "sync", None) or (lambda: None))()
    return inputs, output


def padding_fraction(batch_lengths: list[list[int]]) -> float:
    """Padding tokens over all tokens fed, when each batch is padded to its longest item (0.0 for no tokens)."""
    fed = sum(len(b) * max(b) for b in batch_lengths if b)
    real = sum(sum(b) for b in batch_lengths)
    return (fed - real) / fed if fed else 0.0


@dataclass
class BatchPlan:
    """One mode's batches: the texts of each batch and their token counts (after truncation, special tokens included)."""
    batches: list[list[str]]
    lengths: list[list[int]]

    @property
    def tokens(self) -> int:
        return sum(sum(b) for b in self.lengths)

    @property
    def tokens_fed(self) -> int:
        return sum(len(b) * max(b) for b in self.lengths if b)


def batch_plan(tokenizer, texts: list[str], batch_size: int, max_length: int, *, sort: bool) -> BatchPlan:
    """Every text once in batches of ``batch_size``, in data order or sorted by token count (stable: ties keep data order)."""
    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    order = sorted(range(len(texts)), key=lengths.__getitem__) if sort else list(range(len(texts)))
    chunks = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    return BatchPlan([[texts[i] for i in c] for c in chunks], [[lengths[i] for i in c] for c in chunks])


def dataset_throughput(variant, tokenizer, texts: list[str], batch_size: int, max_length: int, *, protocol: Protocol = Protocol(),
                       clock: Clock = time.perf_counter, progress: Callable[[int], None] | None = None) -> dict:
    """Texts per second over the whole dataset, sorted by length against data order, alternated pass by pass.

    Returns ``DatasetThroughput(...).to_dict()`` (core/reporting/throughput.py: the fields and their meaning), i.e.
    ``{"sorted": {...}, "unsorted": {...}, "batch_size": b, "warmup_batches": w}``; each mode has
    ``texts_per_s`` (median over passes), ``texts_per_s_min``, ``texts_per_s_max``, ``passes``, ``padding_fraction``,
    ``seconds`` (median pass), ``texts``, ``batches``, ``tokens`` (real) and ``tokens_fed`` (with padding).
    ``batch_size`` is capped at the number of texts. ``progress(rounds_done)`` is called after each round.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("no texts to measure throughput on")
    batch_size = max(1, min(int(batch_size), len(texts)))
    plans = {mode: batch_plan(tokenizer, texts, batch_size, max_length, sort=mode == "sorted") for mode in MODES}
    sync = getattr(variant, "sync", None) or (lambda: None)

    def one_pass(plan: BatchPlan) -> None:
        for batch in plan.batches:
            enc = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="np")
            variant(enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64))
        sync()

    warmup = max(0, int(protocol.warmup))
    for mode in MODES:   # the protocol's warm-up runs, per mode: its longest batches (the largest buffers), untimed
        plan = plans[mode]
        longest = sorted(range(len(plan.batches)), key=lambda k: -max(plan.lengths[k]) * len(plan.lengths[k]))[:warmup]
        one_pass(BatchPlan([plan.batches[k] for k in longest], [plan.lengths[k] for k in longest]))
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    while True:
        for mode in MODES:   # A B A B ...: whatever the machine does meanwhile, both modes get their share of it
            t0 = clock()
            one_pass(plans[mode])
            seconds[mode].append(clock() - t0)
        n = len(seconds[MODES[0]])
        if progress:
            progress(n)
        spent = [sum(seconds[mode]) for mode in MODES]
        if n >= protocol.max_iters or (n >= protocol.min_iters and min(spent) >= protocol.min_seconds):
            break
        if max(spent) >= protocol.max_seconds and n >= min(3, protocol.min_iters):
            break
    out = {mode: _mode_stats(seconds[mode], plans[mode], len(texts)) for mode in MODES}
    return DatasetThroughput(**out, batch_size=batch_size, warmup_batches=min(warmup, len(plans[MODES[0]].batches))).to_dict()


def _mode_stats(pass_s: list[float], plan: BatchPlan, n_texts: int) -> ThroughputMode:
    rates = np.array([n_texts / s if s > 0 else float("inf") for s in pass_s], dtype=np.float64)
    return ThroughputMode(texts_per_s=float(np.median(rates)), texts_per_s_min=float(rates.min()), texts_per_s_max=float(rates.max()),
                          passes=len(pass_s), padding_fraction=padding_fraction(plan.lengths), seconds=float(np.median(pass_s)),
                          texts=n_texts, batches=len(plan.batches), tokens=plan.tokens, tokens_fed=plan.tokens_fed)
