"""core.measure.metrics against independent computations: by hand, scikit-learn, and transformers' own loss."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.measure import metrics


def test_mean_pool_is_masked_mean_then_l2():
    hidden = np.array([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])   # third token is padding
    mask = np.array([[1, 1, 0]])
    pooled = metrics.mean_pool(hidden, mask)
    mean = np.array([2.0, 2.0])                                      # (1+3)/2, (0+4)/2
    np.testing.assert_allclose(pooled[0], mean / np.linalg.norm(mean), rtol=1e-6)
    np.testing.assert_allclose(metrics.mean_pool(hidden, mask, normalize=False)[0], mean, rtol=1e-6)


def test_cosine_fidelity_by_hand():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    b = np.array([[1.0, 1.0], [0.0, 5.0], [-1.0, -1.0]])
    expected = (1 / math.sqrt(2) + 1.0 - 1.0) / 3
    assert metrics.cosine_fidelity(a, b) == pytest.approx(expected)
    assert metrics.cosine_fidelity(a, a) == pytest.approx(1.0)


def test_retrieval_agreement_by_hand():
    # four points on a line: fp32 neighbours of each (k=1): 0->1, 1->0, 2->3, 3->2
    ref = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [0.14, 0.99]])
    assert metrics.retrieval_agreement(ref, ref, k=1) == 1.0
    # the variant moves point 1 next to point 2: point 1's neighbour becomes 2, point 0's stays 1, point 2's becomes 1
    var = np.array([[1.0, 0.0], [0.05, 1.0], [0.0, 1.0], [0.14, 0.99]])
    nn_var = metrics.top_k_neighbours(var, 1)[:, 0].tolist()
    nn_ref = metrics.top_k_neighbours(ref, 1)[:, 0].tolist()
    expected = np.mean([a == b for a, b in zip(nn_var, nn_ref)])
    assert nn_ref == [1, 0, 3, 2] and expected < 1
    assert metrics.retrieval_agreement(var, ref, k=1) == pytest.approx(expected)
    # k is capped at n-1, and undefined for a single text
    assert metrics.retrieval_k(3, 5) == 2 and metrics.retrieval_agreement(ref[:1], ref[:1]) is None


def test_spearman_against_pearson_of_hand_ranks():
    x = [1.0, 2.0, 2.0, 3.0, 10.0]
    y = [1.0, 3.0, 2.0, 4.0, 0.5]
    rx = [1, 2.5, 2.5, 4, 5]          # ties share the average rank
    ry = [2, 4, 3, 5, 1]
    assert metrics.spearman(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    assert metrics.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert metrics.spearman([1, 1, 1], [1, 2, 3]) is None


def test_embedding_quality_spearman_uses_pair_cosines():
    rng = np.random.default_rng(0)
    n = metrics.MIN_STS_PAIRS
    emb = rng.normal(size=(2 * n, 5))
    scores = list(rng.uniform(size=n))
    q = metrics.embedding_quality(emb, emb, scores)
    cos = [float(emb[i] @ emb[n + i] / np.linalg.norm(emb[i]) / np.linalg.norm(emb[n + i])) for i in range(n)]
    assert q["spearman"] == pytest.approx(metrics.spearman(cos, scores)) == q["spearman_fp32"]
    assert q["cosine_fidelity"] == pytest.approx(1.0) and q["retrieval_agreement"] == 1.0
    assert q["sts_pairs"] == n


def test_embedding_quality_withholds_the_sts_spearman_of_a_handful_of_pairs():
    rng = np.random.default_rng(1)
    few = metrics.MIN_STS_PAIRS - 1
    emb = rng.normal(size=(2 * few, 5))
    q = metrics.embedding_quality(emb, emb, list(rng.uniform(size=few)))
    assert q["sts_pairs"] == few and "spearman" not in q and "spearman_fp32" not in q


def test_classification_metrics_by_hand_and_sklearn():
    from sklearn.metrics import f1_score

    gold = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    ref = np.array([0, 0, 1, 1, 1, 2])
    q = metrics.classification_quality(pred, gold, ref)
    # by hand: class 0 P=1 R=2/3 F1=0.8; class 1 P=1/2 R=1/2 F1=0.5; class 2 P=1/2 R=1 F1=2/3
    f1 = [0.8, 0.5, 2 / 3]
    support = [3, 2, 1]
    assert q["accuracy"] == pytest.approx(4 / 6)
    assert q["f1_macro"] == pytest.approx(sum(f1) / 3)
    assert q["f1_weighted"] == pytest.approx(sum(f * s for f, s in zip(f1, support)) / 6)
    assert q["f1_macro"] == pytest.approx(f1_score(gold, pred, average="macro"))
    assert q["agreement"] == pytest.approx(5 / 6)


def test_sliding_windows_score_every_token_once():
    for n, ctx, stride in [(10, 4, 2), (9, 4, 4), (5, 8, 4), (17, 6, 1), (12, 6, 5)]:
        windows = metrics.sliding_windows(n, ctx, stride)
        scored = []
        for b, e, t in windows:
            assert e - b <= ctx
            scored += list(range(max(b + 1, e - t), e))
        expected = [j for j in range(1, n)]
        if stride == ctx:   # no overlap: the first token of each window has no context (as in the transformers guide)
            expected = [j for j in range(1, n) if j % ctx]
        assert scored == expected, (n, ctx, stride)


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_gpt2_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_gpt2_dir))
    text = ("Quantization maps floating point numbers onto a few integer levels. The quick brown fox jumps over the lazy dog. " * 4).strip()
    ids = tok(text, add_special_tokens=False)["input_ids"]

    def run(batch, mask):
        with torch.inference_mode():
            return model(input_ids=torch.as_tensor(batch), attention_mask=torch.as_tensor(mask)).logits.float().numpy()

    return model, ids, run


def test_perplexity_single_window_equals_transformers_loss(gpt2):
    import torch

    model, ids, run = gpt2
    ids = ids[:40]
    with torch.inference_mode():
        t = torch.tensor([ids])
        loss = model(t, labels=t).loss.item()
        logits = model(t).logits[0]
    got = metrics.causal_lm_scores(run, ids, context=64)
    assert got["windows"] == 1 and got["tokens"] == len(ids) - 1
    assert got["perplexity"] == pytest.approx(math.exp(loss), rel=1e-5)
    expected_acc = (logits[:-1].argmax(-1) == t[0, 1:]).float().mean().item()
    assert got["token_accuracy"] == pytest.approx(expected_acc)


def test_strided_perplexity_matches_the_transformers_guide_loop(gpt2):
    import torch

    model, ids, run = gpt2
    assert len(ids) > 64
    ctx, stride = 32, 12
    # the loop of https://huggingface.co/docs/transformers/perplexity (labels -100 outside the target span)
    input_all = torch.tensor([ids])
    nll_sum, n_tokens, prev_end = 0.0, 0, 0
    for begin in range(0, input_all.size(1), stride):
        end = min(begin + ctx, input_all.size(1))
        trg_len = end - prev_end
        input_ids = input_all[:, begin:end]
        target_ids = input_ids.clone()
        target_ids[:, :-trg_len] = -100
        with torch.inference_mode():
            loss = model(input_ids, labels=target_ids).loss
        # tokens the loss averaged over: labels after the internal shift by one (the guide's "- batch_size"
        # is exact only for the first window; later windows score all trg_len targets)
        num_valid = (target_ids[:, 1:] != -100).sum().item()
        nll_sum += loss.item() * num_valid
        n_tokens += num_valid
        prev_end = end
        if end == input_all.size(1):
            break
    expected = math.exp(nll_sum / n_tokens)
    got = metrics.causal_lm_scores(run, ids, context=ctx, stride=stride, batch_size=3)
    assert got["tokens"] == n_tokens == len(ids) - 1
    assert got["perplexity"] == pytest.approx(expected, rel=1e-5)
    # a different stride scores with different contexts: a real (if small) difference, so the test can fail
    other = metrics.causal_lm_scores(run, ids, context=ctx, stride=ctx)
    assert other["perplexity"] != pytest.approx(expected, rel=1e-9)


def test_top1_agreement_ignores_unscored_positions():
    assert metrics.top1_agreement(np.array([-1, 5, 6, 7]), np.array([-1, 5, 0, 7])) == pytest.approx(2 / 3)
