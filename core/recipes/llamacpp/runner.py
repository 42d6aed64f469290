"""A loaded GGUF as the lab runs it: logits of every position for a batch (perplexity, latency) and a KV-cache decoder
(generation), both through llama.cpp's own contexts (:mod:`.binding`).

Each row of a batch is its own llama.cpp sequence in one context, so a batch is decoded together as llama.cpp
would serve it. Rows are right-padded by the lab: only a row's real tokens are decoded, and its padded positions
get zero logits.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..decoders import Decoder
from .binding import Context, Model

MAX_CONTEXTS = 2           # contexts kept per shape, most recent first
GENERATION_ROOM = 1024     # positions a decoder's context keeps after its prompt (the lab's MAX_NEW_TOKENS)


def _room(n: int) -> int:
    """Positions to ask for: a power of two of at least 64, so a few shapes share a context."""
    return max(64, 1 << (max(1, int(n)) - 1).bit_length())


class Runner:
    def __init__(self, gguf: Path, threads: int | None = None):
        self.model = Model(gguf)
        self.threads = int(threads or os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
        self._contexts: list[tuple[tuple[int, int], Context]] = []

    def context(self, n_seq: int, positions: int) -> Context:
        """A context of ``n_seq`` sequences with room for ``positions`` each (reused while the shape fits), emptied."""
        positions = min(_room(positions), max(self.model.n_ctx_train, int(positions)))
        for i, ((seqs, room), ctx) in enumerate(self._contexts):
            if seqs == n_seq and room >= positions:
                self._contexts.insert(0, self._contexts.pop(i))
                ctx.clear()
                return ctx
        ctx = Context(self.model, positions, n_seq=n_seq, threads=self.threads)
        self._contexts.insert(0, ((n_seq, positions), ctx))
        for _, old in self._contexts[MAX_CONTEXTS:]:
            old.close()
        del self._contexts[MAX_CONTEXTS:]
        return ctx

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Logits [batch, sequence, vocab] (float32) of every position, each row a sequence of its own."""
        ids = np.asarray(input_ids, dtype=np.int64)
        lengths = np.asarray(attention_mask).astype(bool).sum(axis=1)
        batch, seq = ids.shape
        ctx = self.context(batch, int(lengths.max(initial=1)))
        tokens = np.concatenate([ids[r, :n] for r, n in enumerate(lengths)])
        positions = np.concatenate([np.arange(n) for n in lengths])
        seqs = np.repeat(np.arange(batch), lengths)
        flat = ctx.decode(tokens, positions, seqs)
        out = np.zeros((batch, seq, self.model.n_vocab), dtype=np.float32)
        out[seqs, positions] = flat
        return out

    def decoder(self) -> "LlamaCppDecoder":
        return LlamaCppDecoder(self)

    def close(self) -> None:
        for _, ctx in self._contexts:
            ctx.close()
        self._contexts.clear()
        self.model.close()


class LlamaCppDecoder(Decoder):
    """Greedy decoding with llama.cpp's own KV cache: the prompt once, then one token per row per step."""

    kv_cache = True

    def __init__(self, runner: Runner):
        self.runner, self.ctx, self.length = runner, None, 0

    def start(self, input_ids):
        ids = np.asarray(input_ids, dtype=np.int64)
        batch, n = ids.shape
        self.ctx = self.runner.context(batch, n + GENERATION_ROOM)
        self.length = n
        last = np.zeros(n, dtype=bool)
        last[-1] = True
        return self.ctx.decode(ids.reshape(-1), np.tile(np.arange(n), batch), np.repeat(np.arange(batch), n), np.tile(last, batch))

    def step(self, tokens):
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        logits = self.ctx.decode(tokens, np.full(len(tokens), self.length), np.arange(len(tokens)))
        self.length += 1
        return logits
