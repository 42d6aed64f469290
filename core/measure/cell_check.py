"""Every timed cell checks its own outputs: the outputs of a latency cell's last timed call, compared with fp32's
outputs for the very same inputs (issue 27).

Speed is timed on inputs of exactly the swept shape (batch size x sequence length) and quality is measured on the
data's natural lengths; a variant whose outputs go wrong at one shape (OpenVINO's bf16 default on AMX breaks MiniLM's
int8 graph at exactly 32 tokens) would pass unseen. So the latency scenario keeps one output of every timed cell (no
extra forward pass: the last timed call's), reduces it to what the task compares, and

* in the fp32 worker, saves it beside the job (``<ref_dir>/cells/b<batch>_s<seq>.npy``), the reference for the
  others (an fp32 that was not asked for runs each cell once, untimed, to give it);
* in every other worker, compares it with fp32's and puts the figures on the cell.

What is kept and compared, by task:

* embeddings: the sentence vectors (mean-pooled, L2-normalised) -> ``out_cosine_mean``, ``out_cosine_min``, and in a
  batch of at least ``MIN_RANKED_ROWS`` texts the neighbours ranked within it: ``out_retrieval_agreement`` (top-5
  neighbours shared with fp32's) and ``out_similarity_spearman`` (Spearman of the pairwise similarities with fp32's);
* classification: the logits -> ``out_agreement`` (share of labels equal to fp32's), ``out_max_logit_diff``;
* causal LMs: the next-token log-probabilities at up to ``MAX_LM_POSITIONS`` positions of the cell, spread evenly
  over its rows and tokens -> ``out_kl_mean``, ``out_kl_max`` (KL(fp32 || variant) in nats) and ``out_agreement``
  (top-1 next token equal to fp32's).

A generation cell (core/scenarios/generate.py) keeps the next-token logits of each step of its last timed run and
compares them with fp32's at every step whose inputs are fp32's (the prompt, then the greedy tokens of a row while
they still equal fp32's): ``out_kl_mean``, ``out_kl_max``, ``out_agreement`` and ``out_positions`` (how many steps
x rows were compared), over at most ``MAX_LM_POSITIONS`` of them (the first steps of every row).

Whether a cell's figures break the quality budget is decided by the engine once the budget is known
(``Task.cell_verdict``), so a saved report can be re-judged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics import mean_pool, retrieval_agreement, row_cosine, similarity_spearman

MAX_LM_POSITIONS = 64       # next-token distributions kept per cell (each is a vocabulary of floats)
MIN_RANKED_ROWS = 8         # texts a cell needs before neighbours ranked within it mean something (top-5 of 7 or more)
FIELDS = ("out_cosine_mean", "out_cosine_min", "out_agreement", "out_max_logit_diff", "out_kl_mean", "out_kl_max",
          "out_retrieval_agreement", "out_similarity_spearman")


def reduce(task, output, attention_mask) -> np.ndarray:
    """What ``task`` compares of a cell's raw output (see the module docstring), as float32."""
    if task.pooled:
        return mean_pool(output, attention_mask)
    out = np.asarray(output, dtype=np.float32)
    if not task.generates:
        return out
    mask = np.asarray(attention_mask).astype(bool)
    rows, cols = np.nonzero(mask)
    pick = np.unique(np.linspace(0, len(rows) - 1, num=min(MAX_LM_POSITIONS, len(rows))).round().astype(np.int64)) if len(rows) else []
    return log_softmax(out[rows[pick], cols[pick]])


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities in float32 (the sums accumulated in float64): a vocabulary of 49152 at 64
    positions takes about 9 ms here, against 65 ms all in float64, for a relative difference of 1e-5 in the KL."""
    x = np.asarray(logits, dtype=np.float32)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True, dtype=np.float64)).astype(np.float32)


def kl_divergence(ref_logp: np.ndarray, var_logp: np.ndarray) -> np.ndarray:
    """KL(fp32 || variant) of each row of log-probabilities, in nats (what ``llama-perplexity --kl-divergence`` reports);
    float32 terms summed in float64."""
    ref_logp, var_logp = np.asarray(ref_logp, dtype=np.float32), np.asarray(var_logp, dtype=np.float32)
    return np.maximum(0.0, (np.exp(ref_logp) * (ref_logp - var_logp)).sum(axis=-1, dtype=np.float64))


def compare(task, reduced: np.ndarray, reference: np.ndarray) -> dict:
    """The cell's figures against fp32's (the fields of ``FIELDS`` that apply to ``task``)."""
    if reduced.shape != reference.shape:
        raise ValueError(f"cell outputs of shape {reduced.shape} cannot be compared with fp32's {reference.shape}")
    if task.pooled:
        cos = row_cosine(reduced, reference)
        out = {"out_cosine_mean": float(cos.mean()), "out_cosine_min": float(cos.min())}
        if len(reduced) >= MIN_RANKED_ROWS:
            out["out_retrieval_agreement"] = retrieval_agreement(reduced, reference)
            out["out_similarity_spearman"] = similarity_spearman(reduced, reference)
        return out
    same = reduced.argmax(axis=-1) == reference.argmax(axis=-1)
    if task.generates:
        kl = kl_divergence(reference, reduced)
        return {"out_kl_mean": float(kl.mean()), "out_kl_max": float(kl.max()), "out_agreement": float(same.mean())}
    return {"out_agreement": float(same.mean()), "out_max_logit_diff": float(np.abs(reduced.astype(np.float64) - reference).max())}


def reference_path(ref_dir, name: str) -> Path:
    """Where fp32's reference outputs called ``name`` are kept beside the job (``<ref_dir>/cells/<name>.npy``)."""
    folder = Path(ref_dir) / "cells"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.npy"


def check_cell(task, job: dict, batch_size: int, seq_len: int, output, attention_mask) -> dict:
    """Save (fp32) or compare (any other variant) one cell's output; returns the figures to put on the cell ({} for fp32)."""
    reduced = reduce(task, output, attention_mask)
    path = reference_path(job["ref_dir"], f"b{batch_size}_s{seq_len}")
    if job.get("reference"):
        np.save(path, reduced, allow_pickle=False)
        return {}
    if not path.is_file():
        return {}   # fp32 gave no outputs for this cell (it failed): nothing to compare with
    return compare(task, reduced, np.load(path, allow_pickle=False))


def generation_steps(batch_size: int, new_tokens: int) -> int:
    """Steps of a generation cell whose distributions are kept: the first ones, at most MAX_LM_POSITIONS in all rows."""
    return max(1, min(new_tokens, MAX_LM_POSITIONS // max(1, batch_size)))


def check_generation(job: dict, batch_size: int, prompt_len: int, step_logits: list, tokens) -> dict:
    """Save (fp32) or compare (any other variant) one generation cell's next-token distributions; the figures for the
    cell ({} for fp32, or when fp32 gave none)."""
    k = generation_steps(batch_size, len(step_logits))
    logp = np.stack([log_softmax(x) for x in step_logits[:k]])   # [steps, batch, vocab]
    tokens = np.asarray(tokens, dtype=np.int64)[:, :k]
    name = f"gen_b{batch_size}_p{prompt_len}"
    logp_path, tokens_path = reference_path(job["ref_dir"], name), reference_path(job["ref_dir"], f"{name}_tokens")
    if job.get("reference"):
        np.save(logp_path, logp, allow_pickle=False)
        np.save(tokens_path, tokens, allow_pickle=False)
        return {}
    if not logp_path.is_file() or not tokens_path.is_file():
        return {}
    ref, ref_tokens = np.load(logp_path, allow_pickle=False), np.load(tokens_path, allow_pickle=False)
    if ref.shape != logp.shape or ref_tokens.shape != tokens.shape:
        raise ValueError(f"generation cell outputs of shape {logp.shape} cannot be compared with fp32's {ref.shape}")
    # step s of a row has fp32's inputs while its tokens before s equal fp32's (the first step always: the same prompt)
    same = np.ones(tokens.shape, dtype=bool)
    same[:, 1:] = np.cumprod(tokens[:, :-1] == ref_tokens[:, :-1], axis=1).astype(bool)
    steps, rows = np.nonzero(same.T)
    kl = kl_divergence(ref[steps, rows], logp[steps, rows])
    agree = logp[steps, rows].argmax(-1) == ref[steps, rows].argmax(-1)
    return {"out_kl_mean": float(kl.mean()), "out_kl_max": float(kl.max()), "out_agreement": float(agree.mean()), "out_positions": int(len(kl))}
