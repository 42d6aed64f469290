"""Quality metrics, all plain numpy (plus scikit-learn's F1), each checked in tests against an independent computation.

* embedding:      mean pooling over the attention mask + L2 normalisation (the sentence-transformers recipe of
                  all-MiniLM-L6-v2), cosine fidelity to fp32, top-k retrieval agreement with fp32, Spearman vs gold scores
* classification: accuracy, weighted / macro F1, agreement with fp32's predictions
* causal-lm:      perplexity with a strided sliding window (the transformers perplexity guide), top-1 next-token accuracy
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

EPS = 1e-12


# -- embeddings ---------------------------------------------------------------------------------
def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray, normalize: bool = True) -> np.ndarray:
    """[B,T,H] hidden states + [B,T] mask -> [B,H] sentence embeddings (masked mean, then L2-normalised)."""
    hidden = np.asarray(hidden, dtype=np.float64)
    mask = np.asarray(attention_mask, dtype=np.float64)[..., None]
    pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
    if normalize:
        pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), EPS, None)
    return pooled.astype(np.float32)


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    num = (a * b).sum(axis=1)
    den = np.clip(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), EPS, None)
    return num / den


def cosine_fidelity(variant_emb: np.ndarray, reference_emb: np.ndarray) -> float:
    """Mean cosine between each text's variant embedding and its fp32 embedding."""
    return float(row_cosine(variant_emb, reference_emb).mean())


def top_k_neighbours(emb: np.ndarray, k: int) -> np.ndarray:
    """[N,k] indices of each row's k most cosine-similar other rows (itself excluded; ties broken by index)."""
    x = np.asarray(emb, dtype=np.float64)
    x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), EPS, None)
    n = len(x)
    block = max(1, min(n, 4_000_000 // max(n, 1)))   # rows per step: ~32 MB of similarities, never the whole N x N matrix
    out = np.empty((n, min(k, n)), dtype=np.int64)
    for start in range(0, n, block):
        sim = x[start:start + block] @ x.T
        rows = np.arange(sim.shape[0])
        sim[rows, start + rows] = -np.inf
        out[start:start + block] = np.argsort(-sim, axis=1, kind="stable")[:, :out.shape[1]]
    return out


def retrieval_k(n: int, k: int = 5) -> int:
    return max(0, min(k, n - 1))


def retrieval_agreement(variant_emb: np.ndarray, reference_emb: np.ndarray, k: int = 5) -> float | None:
    """Mean fraction of each text's top-k neighbours (by the variant) that are also fp32's top-k (k<=N-1)."""
    k = retrieval_k(len(reference_emb), k)
    if k == 0:
        return None
    a, b = top_k_neighbours(variant_emb, k), top_k_neighbours(reference_emb, k)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a.tolist(), b.tolist())]))


def rankdata(x) -> np.ndarray:
    """Ranks 1..n, ties get the average of their ranks (as scipy.stats.rankdata's default)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x, y) -> float | None:
    """Spearman rank correlation (Pearson correlation of average ranks); None when undefined (n<2 or constant)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or len(x) != len(y):
        return None
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / den) if den > 0 else None


def pair_cosines(emb: np.ndarray, n_pairs: int) -> np.ndarray:
    """Cosine(sentence1_i, sentence2_i) when ``emb`` holds all sentence1 rows then all sentence2 rows."""
    return row_cosine(emb[:n_pairs], emb[n_pairs:2 * n_pairs])


MIN_STS_PAIRS = 10          # below this many scored pairs a Spearman correlation is not reported (two pairs give +-1.0)
MAX_SIMILARITY_ROWS = 2000  # pairwise-similarity Spearman over at most this many texts (2000 x 1999 / 2 = 2M pairs)


def similarity_spearman(emb: np.ndarray, ref_emb: np.ndarray) -> float | None:
    """Spearman correlation of all pairwise cosine similarities, the variant's against fp32's: no labels needed, and it
    catches a reordering of neighbours that a mean cosine hides (over the first MAX_SIMILARITY_ROWS texts)."""
    a, b = (np.asarray(x[:MAX_SIMILARITY_ROWS], dtype=np.float64) for x in (emb, ref_emb))
    if len(a) < 3:
        return None
    a = a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), EPS, None)
    b = b / np.clip(np.linalg.norm(b, axis=1, keepdims=True), EPS, None)
    upper = np.triu_indices(len(a), k=1)
    return spearman((a @ a.T)[upper], (b @ b.T)[upper])


def embedding_quality(emb: np.ndarray, ref_emb: np.ndarray, scores: list[float] | None = None, k: int = 5) -> dict:
    out = {
        "cosine_fidelity": cosine_fidelity(emb, ref_emb),
        "cosine_min": float(row_cosine(emb, ref_emb).min()),
        "retrieval_agreement": retrieval_agreement(emb, ref_emb, k),
        "retrieval_k": retrieval_k(len(ref_emb), k),
        "similarity_spearman": similarity_spearman(emb, ref_emb),
    }
    if scores:
        out["sts_pairs"] = len(scores)
    if scores and len(scores) >= MIN_STS_PAIRS:   # fewer: a rank correlation of a handful of pairs means nothing
        n = len(scores)
        out["spearman"] = spearman(pair_cosines(emb, n), scores)
        out["spearman_fp32"] = spearman(pair_cosines(ref_emb, n), scores)
    return out


# -- classification -----------------------------------------------------------------------------
def classification_quality(pred: np.ndarray, gold: np.ndarray, ref_pred: np.ndarray) -> dict:
    from sklearn.metrics import f1_score

    pred, gold, ref_pred = (np.asarray(a, dtype=np.int64) for a in (pred, gold, ref_pred))
    return {
        "accuracy": float((pred == gold).mean()),
        "f1_weighted": float(f1_score(gold, pred, average="weighted", zero_division=0)),
        "f1_macro": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "agreement": float((pred == ref_pred).mean()),
    }


# -- causal LM ----------------------------------------------------------------------------------
def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def sliding_windows(n_tokens: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, n_targets) windows of the transformers perplexity guide: each token after the first is scored
    exactly once, in the last ``n_targets`` positions of a window of at most ``context`` tokens."""
    if context < 2:
        raise ValueError("context must be at least 2 tokens")
    stride = max(1, min(stride, context))
    windows, prev_end = [], 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + context, n_tokens)
        windows.append((begin, end, end - prev_end))
        prev_end = end
        if end == n_tokens:
            break
    return windows


def causal_lm_scores(run: Callable[[np.ndarray, np.ndarray], np.ndarray], ids, context: int, stride: int | None = None,
                     batch_size: int = 8, keep_predictions: bool = False,
                     on_logp: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None) -> dict:
    """Strided perplexity and top-1 next-token accuracy of ``run`` (ids [B,T], mask -> logits [B,T,V]) on one token stream.

    Windows of equal length are run as one batch (no padding, so results equal one-at-a-time runs).
    For a stream that fits one window this is exp(model(ids, labels=ids).loss) exactly: no token is added.
    ``on_logp(positions, log_probs, targets)`` receives every scored token's next-token log-probabilities (the
    KL-divergence statistics compare them with fp32's).
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(ids) < 2:
        raise ValueError("need at least two tokens to score next-token predictions")
    stride = stride or max(1, context // 2)
    windows = sliding_windows(len(ids), context, stride)
    nll, count, correct = 0.0, 0, 0
    predictions = np.full(len(ids), -1, dtype=np.int64)  # predictions[j] = argmax guess for token j (j>=1)
    by_len: dict[int, list[tuple[int, int, int]]] = {}
    for w in windows:
        by_len.setdefault(w[1] - w[0], []).append(w)
    for length, group in by_len.items():
        for i in range(0, len(group), batch_size):
            chunk = group[i:i + batch_size]
            batch = np.stack([ids[b:e] for b, e, _ in chunk])
            logits = np.asarray(run(batch, np.ones_like(batch)), dtype=np.float32)
            for row, (b, e, n_targets) in enumerate(chunk):
                first = max(1, length - n_targets)            # first scored position inside the window
                targets = batch[row, first:]
                logp = log_softmax(logits[row, first - 1:length - 1])
                nll -= float(logp[np.arange(len(targets)), targets].sum())
                guess = logp.argmax(axis=-1)
                correct += int((guess == targets).sum())
                count += len(targets)
                predictions[b + first:e] = guess
                if on_logp is not None:
                    on_logp(np.arange(b + first, e), logp, targets)
    out = {"perplexity": float(math.exp(nll / count)), "nll_per_token": nll / count, "token_accuracy": correct / count,
           "tokens": count, "windows": len(windows), "context": context, "stride": stride}
    if keep_predictions:
        out["predictions"] = predictions
    return out


def top1_agreement(pred: np.ndarray, ref_pred: np.ndarray) -> float:
    pred, ref_pred = np.asarray(pred), np.asarray(ref_pred)
    scored = ref_pred >= 0
    return float((pred[scored] == ref_pred[scored]).mean()) if scored.any() else float("nan")
