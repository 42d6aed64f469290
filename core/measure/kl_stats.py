"""The statistics ``llama-perplexity --kl-divergence`` reports, over the perplexity windows of the data (issue 27):
each scored token's next-token distribution of a variant against fp32's.

* ``kl_mean``, ``kl_p99``, ``kl_max``: KL(fp32 || variant) per token, in nats;
* ``dp_mean``, ``dp_rms``: the change of the correct token's probability (variant minus fp32), mean and RMS, in
  probability (0..1; llama.cpp prints them in percent).

Quantization hurts some models far more than their perplexity shows: these are the figures the llama.cpp community
compares quantization types by. fp32's worker writes its log-probabilities of the first ``MAX_TOKENS`` scored
tokens to ``<ref_dir>/kl_logp.npy`` (float32, tokens x vocabulary) with their positions; every other worker reads
them back, token by token, as it scores the same windows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_TOKENS = 1024    # scored tokens whose full distributions are kept (1024 x a 49k vocabulary = 200 MB on disk)


class ReferenceWriter:
    """fp32's side: keeps the log-probabilities of the first MAX_TOKENS scored tokens."""

    def __init__(self, ref_dir) -> None:
        self.ref_dir, self.rows, self.positions = Path(ref_dir), [], []

    def __call__(self, positions: np.ndarray, logp: np.ndarray, targets: np.ndarray) -> None:
        room = MAX_TOKENS - len(self.positions)
        if room > 0:
            self.rows.append(np.asarray(logp[:room], dtype=np.float32))
            self.positions.extend(int(p) for p in positions[:room])

    def save(self) -> None:
        if self.rows:
            np.save(self.ref_dir / "kl_logp.npy", np.concatenate(self.rows), allow_pickle=False)
            np.save(self.ref_dir / "kl_positions.npy", np.asarray(self.positions, dtype=np.int64), allow_pickle=False)


class Comparer:
    """A variant's side: per token, KL(fp32 || variant) and the change of the correct token's probability."""

    def __init__(self, ref_dir) -> None:
        ref_dir = Path(ref_dir)
        self.ok = (ref_dir / "kl_logp.npy").is_file()
        self.kl: list[float] = []
        self.dp: list[float] = []
        if self.ok:
            self.ref = np.load(ref_dir / "kl_logp.npy", mmap_mode="r", allow_pickle=False)
            self.row_of = {int(p): k for k, p in enumerate(np.load(ref_dir / "kl_positions.npy", allow_pickle=False))}

    def __call__(self, positions: np.ndarray, logp: np.ndarray, targets: np.ndarray) -> None:
        if not self.ok:
            return
        for j, pos in enumerate(positions):
            k = self.row_of.get(int(pos))
            if k is None:
                continue
            ref = np.asarray(self.ref[k], dtype=np.float64)
            var = np.asarray(logp[j], dtype=np.float64)
            p_ref = np.exp(ref)
            self.kl.append(max(0.0, float((p_ref * (ref - var)).sum())))
            self.dp.append(float(np.exp(var[targets[j]]) - p_ref[targets[j]]))

    def stats(self) -> dict:
        if not self.kl:
            return {}
        kl, dp = np.asarray(self.kl), np.asarray(self.dp)
        return {"kl_mean": float(kl.mean()), "kl_p99": float(np.percentile(kl, 99)), "kl_max": float(kl.max()),
                "dp_mean": float(dp.mean()), "dp_rms": float(np.sqrt((dp ** 2).mean())), "kl_tokens": int(len(kl))}
