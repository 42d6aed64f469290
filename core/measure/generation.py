"""Generation scenario for causal LMs: greedy decoding, timed per token, with each variant's KV cache.

For each (batch_size, prompt_len) cell:

1. Prompts: ``batch_size`` texts from the data cut to exactly ``prompt_len`` tokens (the same inputs as a latency
   cell, core.measure.bench.cell_texts), so every variant decodes from the very same prompts.
2. One run = tokenize the prompts, run them through the variant's decoder (its KV cache, or a re-run of the whole
   sequence where it has none: core.recipes.decoders), pick the first token greedily: that is the **time to first
   token**; then ``new_tokens - 1`` steps of one token each: each step is one **decode time per token**.
3. The latency protocol (core.measure.bench.Protocol) counts runs: ``warmup`` untimed runs, then runs until ``min_iters``
   runs AND ``min_seconds``, capped by ``max_iters`` / ``max_seconds`` (at least 3 runs).
4. Statistics: TTFT p50/p90 over runs; decode p50/p90 over every step of every run; tokens/s = generated tokens
   (batch x new tokens) / the median whole-run time.

Greedy decoding is deterministic, so the tokens of the last run are the variant's answer: agreement with fp32 is
the share of positions where its tokens equal fp32's for the same prompts.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..recipes.family import NoteCause
from ..reporting.cells import GenerationCell
from .bench import Protocol, cell_texts

DEFAULT_PROMPT_LENGTHS = (32, 128)
DEFAULT_NEW_TOKENS = 32
MAX_NEW_TOKENS = 1024


def prompt_ids(tokenizer, texts: list[str], batch_size: int, prompt_len: int) -> np.ndarray:
    """[batch_size, prompt_len] token ids of real text (no padding), the same for every variant."""
    cell = cell_texts(tokenizer, texts, batch_size, prompt_len)
    enc = tokenizer(cell, truncation=True, max_length=prompt_len, padding="max_length", return_tensors="np")
    return enc["input_ids"].astype(np.int64)


def greedy_run(decoder, tokenize: Callable[[], np.ndarray], new_tokens: int, clock=time.perf_counter,
               keep: list | None = None) -> tuple[np.ndarray, float, list[float]]:
    """One greedy generation: (tokens [batch, new_tokens], seconds to the first token, seconds of each further token).
    ``keep``: emptied, then given each step's next-token logits [batch, vocab] (references only: nothing is computed)."""
    if keep is not None:
        keep.clear()
    t0 = clock()
    logits = decoder.start(tokenize())
    token = logits.argmax(-1)
    ttft = clock() - t0
    tokens, steps = [token], []
    if keep is not None:
        keep.append(logits)
    for _ in range(new_tokens - 1):
        t = clock()
        logits = decoder.step(token)
        token = logits.argmax(-1)
        steps.append(clock() - t)
        tokens.append(token)
        if keep is not None:
            keep.append(logits)
    return np.stack(tokens, axis=1).astype(np.int64), ttft, steps


def greedy_tokens(variant, ids: np.ndarray, new_tokens: int, *, cache: bool = True, keep: list | None = None) -> np.ndarray:
    """The greedy continuation of ``ids`` (untimed), with the variant's KV cache or (``cache=False``) without one
    (``keep``: each step's logits, as ``greedy_run``)."""
    from ..recipes.decoders import RecomputeDecoder

    decoder = variant.new_decoder() if cache else RecomputeDecoder(variant.run, "asked for without a cache")
    return greedy_run(decoder, lambda: ids, new_tokens, keep=keep)[0]


def measure_generation(variant, tokenizer, texts: list[str], batch_size: int, prompt_len: int, new_tokens: int, *,
                       protocol: Protocol = Protocol(), clock=time.perf_counter, keep: list | None = None) -> tuple[GenerationCell, np.ndarray]:
    """Time greedy generation at one cell; returns the cell and the generated tokens [batch, new_tokens] (``keep``: the
    last timed run's logits of each step, kept by reference so the check adds nothing to the timing)."""
    cell = cell_texts(tokenizer, texts, batch_size, prompt_len)

    def tokenize() -> np.ndarray:   # timed inside TTFT, as end-to-end latency times tokenization
        return tokenizer(cell, truncation=True, max_length=prompt_len, padding="max_length", return_tensors="np")["input_ids"].astype(np.int64)

    decoder = variant.new_decoder()
    for _ in range(protocol.warmup):
        greedy_run(decoder, tokenize, new_tokens, clock)
    ttfts, steps, totals = [], [], []
    started = clock()
    while True:
        tokens, ttft, step = greedy_run(decoder, tokenize, new_tokens, clock, keep=keep)
        ttfts.append(ttft)
        steps += step
        totals.append(ttft + sum(step))
        n, elapsed = len(ttfts), clock() - started
        if n >= protocol.max_iters or (n >= protocol.min_iters and elapsed >= protocol.min_seconds):
            break
        if elapsed >= protocol.max_seconds and n >= min(3, protocol.min_iters):
            break
    if tokens.shape != (batch_size, new_tokens):
        raise RuntimeError(f"generation returned {tokens.shape} tokens, expected {(batch_size, new_tokens)}")
    ms = lambda xs, q: float(np.percentile(np.asarray(xs) * 1000.0, q)) if len(xs) else 0.0  # noqa: E731
    total = float(np.median(totals))
    sample = tokenizer.decode([int(t) for t in tokens[0]], skip_special_tokens=True)
    return GenerationCell(
        batch_size=batch_size, prompt_len=prompt_len, new_tokens=new_tokens, ttft_ms=ms(ttfts, 50), ttft_p90_ms=ms(ttfts, 90),
        decode_ms_per_token_p50=ms(steps, 50), decode_ms_per_token_p90=ms(steps, 90),
        tokens_per_s=batch_size * new_tokens / total if total > 0 else float("inf"), kv_cache=bool(decoder.kv_cache),
        runs=len(ttfts), sample=sample,
    ), tokens


def agreement(tokens: np.ndarray, reference: np.ndarray) -> tuple[int, int]:
    """(positions equal to the reference, positions compared)."""
    tokens, reference = np.asarray(tokens), np.asarray(reference)
    if tokens.shape != reference.shape:
        return 0, int(reference.size)
    return int((tokens == reference).sum()), int(reference.size)


# the slow-variant cause of a variant of any family that generates without a KV cache, evidenced by no_cache_note's words
NO_KV_CACHE = NoteCause("no-kv-cache", "it has no KV cache, so every new token re-runs the whole sequence", "without a KV cache")


def no_cache_note(decoder) -> str | None:
    """The note a variant gets when it generates without a KV cache (so its decode speed is not mistaken for a cached one)."""
    if decoder.kv_cache:
        return None
    return f"Generation without a KV cache: {decoder.why_no_cache}; every new token re-runs the whole sequence, so decode time grows with length."
