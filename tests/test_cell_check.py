"""Every timed cell checks its own outputs against fp32's for the same inputs (core/measure/cell_check.py, issue 27).

The figures are checked against an independent computation (torch's own softmax and KL), the engine is run for real
with a test-only family whose outputs go wrong at one sequence length (tests/faulty_family, registered through
QLAB_PLUGIN_FAMILIES so the workers have it), and on a CPU with AMX with OpenVINO's bf16 precision on MiniLM's int8
graph, the real runtime fault the check was built for. Tiny random models check code paths only.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from core.measure import cell_check
from core.tasks import get_task

RUNS: dict = {}   # task -> the faulty family's run below, re-judged by tests/test_budget_measures.py when both run in one session
QUICK = {"warmup": 1, "min_iters": 3, "min_seconds": 0.02, "max_seconds": 0.5}


def test_kl_and_agreement_agree_with_torch():
    import torch

    rng = np.random.default_rng(0)
    ref, var = rng.normal(size=(2, 12, 50)).astype(np.float32), rng.normal(size=(2, 12, 50)).astype(np.float32)
    mask = np.ones((2, 12), dtype=np.int64)
    task = get_task("causal-lm")
    got = cell_check.compare(task, cell_check.reduce(task, var, mask), cell_check.reduce(task, ref, mask))
    p_ref, p_var = torch.log_softmax(torch.from_numpy(ref).double(), -1), torch.log_softmax(torch.from_numpy(var).double(), -1)
    kl = torch.nn.functional.kl_div(p_var, p_ref, log_target=True, reduction="none").sum(-1)   # KL(ref || var) per position
    assert got["out_kl_mean"] == pytest.approx(float(kl.mean()), rel=1e-5) and got["out_kl_max"] == pytest.approx(float(kl.max()), rel=1e-5)
    assert got["out_agreement"] == pytest.approx(float((ref.argmax(-1) == var.argmax(-1)).mean()))
    same = cell_check.compare(task, cell_check.reduce(task, ref, mask), cell_check.reduce(task, ref, mask))
    assert same["out_kl_mean"] == pytest.approx(0.0, abs=1e-9) and same["out_agreement"] == 1.0


def test_a_long_cell_keeps_at_most_64_positions_spread_over_its_rows():
    task = get_task("causal-lm")
    logits = np.zeros((8, 128, 5), dtype=np.float32)
    logits[:, :, 0] = np.arange(8)[:, None] * 1000 + np.arange(128)[None, :]   # position code in the logits
    kept = cell_check.reduce(task, logits, np.ones((8, 128), dtype=np.int64))
    assert kept.shape == (64, 5) and np.allclose(np.exp(kept).sum(-1), 1.0)
    emb = get_task("embedding")
    hidden = np.random.default_rng(1).normal(size=(3, 7, 4))
    assert cell_check.compare(emb, cell_check.reduce(emb, hidden, np.ones((3, 7))), cell_check.reduce(emb, hidden, np.ones((3, 7))))["out_cosine_min"] \
        == pytest.approx(1.0)
    cls = get_task("classification")
    a, b = np.array([[1.0, 2.0], [3.0, 0.0]]), np.array([[1.5, 2.0], [0.0, 3.0]])
    assert cell_check.compare(cls, a, b) == {"out_agreement": 0.5, "out_max_logit_diff": 3.0}


@pytest.mark.parametrize("task", ["embedding", "classification", "causal-lm"])
def test_a_variant_wrong_at_one_timed_shape_is_marked_and_never_recommended_there(task, faulty, tiny_embedder_dir, tiny_classifier_dir,
                                                                                    tiny_gpt2_dir, tmp_path):
    from core.engine.evaluate import EvalConfig, run_evaluation
    from core.reporting.csv_export import report_to_csv
    from core.reporting.recommend import recommend
    from core.reporting.table import format_table

    model = {"embedding": tiny_embedder_dir, "classification": tiny_classifier_dir, "causal-lm": tiny_gpt2_dir}[task]
    extra = {}
    if task == "classification":
        data = tmp_path / "reviews.csv"
        data.write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in [("great film", "pos"), ("awful plot", "neg"), ("it was fine", "neu")] * 4))
        extra["data"] = str(data)
    if task == "causal-lm":
        data = tmp_path / "lm.txt"
        data.write_text("Quantization maps floating point numbers onto a few integer levels. " * 12)
        extra.update(data=str(data), max_length=32)
    batches = [1, 8] if task == "embedding" else [1, 2]   # 8 texts: enough to rank neighbours within a cell (test_budget_measures)
    report = RUNS.get(task) or run_evaluation(EvalConfig(task=task, model=str(model), variants=["fp32", "faulty-fp32:at=16"], batch_sizes=batches,
                                                         seq_lengths=[8, 16], protocol=QUICK, **extra))
    RUNS[task] = report   # made once a session: tests/test_budget_measures.py re-judges the embedding one
    fp32, bad = report["results"]
    assert not bad.get("error"), bad.get("error")
    cells = {(c["batch_size"], c["seq_len"]): c for c in bad["latency"]}
    assert all(c.get("out_wrong") is None for c in fp32["latency"])   # fp32 is the reference: not checked against itself
    for (b, s), c in cells.items():
        assert c["out_wrong"] is (s == 16), (b, s, c)
    field = {"embedding": "out_cosine_mean", "classification": "out_agreement", "causal-lm": "out_kl_mean"}[task]
    good = cells[(1, 8)][field]
    assert good == pytest.approx(0.0 if task == "causal-lm" else 1.0, abs=1e-4)   # fp32's own outputs at 8 tokens
    assert any(f"Outputs are wrong at 16 tokens, batch {batches[0]}, {batches[1]}" in n for n in bad["notes"]), bad["notes"]
    assert "out_wrong" in report_to_csv(report).splitlines()[0] and "WRONG" in format_table(report)

    # made the fastest by far, it is still passed over at every batch size, with the shape in the reason
    faster = copy.deepcopy(report)
    for c in faster["results"][1]["latency"]:
        c["p50_ms"] = c["p90_ms"] = c["p50_ms"] / 10
    for b in batches:
        rec = recommend(faster["results"], task, None, b, reference_quality=report["reference"]["quality"])
        assert rec["variant"] == "fp32" and "outputs are wrong at 16 tokens" in rec["reason"], rec
    at_8_only = copy.deepcopy(faster)   # only its 8-token cells: within budget there, so it is recommended
    at_8_only["results"][1]["latency"] = [c for c in at_8_only["results"][1]["latency"] if c["seq_len"] == 8]
    at_8_only["results"][0]["latency"] = [c for c in at_8_only["results"][0]["latency"] if c["seq_len"] == 8]
    if task != "classification" or recommend(at_8_only["results"], task, None, 1, reference_quality=report["reference"]["quality"]):
        rec = recommend(at_8_only["results"], task, {"max_accuracy_drop": 100.0}, 1, reference_quality=report["reference"]["quality"])
        assert rec["variant"] == "faulty-fp32:at=16", rec


def test_llama_cpp_kl_statistics_agree_with_numpy_on_the_same_logits(tiny_gpt2_dir, tmp_path):
    """The report's KL statistics over the perplexity windows equal plain numpy on fp32's and the variant's logits of the
    same window (a text that fits one window, so every scored token is in it)."""
    from transformers import AutoTokenizer

    from core.engine.evaluate import EvalConfig, run_evaluation
    from core.engine.variants import get_variant
    from core.inputs.sources import resolve

    text = "Quantization maps floating point numbers onto a few integer levels, and the model still works."
    data = tmp_path / "lm.txt"
    data.write_text(text)
    report = run_evaluation(EvalConfig(task="causal-lm", model=str(tiny_gpt2_dir), variants=["fp32", "absmax-int4"], data=str(data),
                                       batch_sizes=[1], seq_lengths=[8], max_length=64, protocol=QUICK))
    q = report["results"][1]["quality"]
    ids = np.asarray(AutoTokenizer.from_pretrained(str(tiny_gpt2_dir))(text, add_special_tokens=False)["input_ids"], dtype=np.int64)[None]
    source = resolve(str(tiny_gpt2_dir), "causal-lm")
    logits = {v: np.asarray(get_variant(source, v).variant(ids, np.ones_like(ids)), dtype=np.float64)[0, :-1] for v in ("fp32", "absmax-int4")}

    def logp(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    ref, var = logp(logits["fp32"]), logp(logits["absmax-int4"])
    kl = (np.exp(ref) * (ref - var)).sum(-1)
    target = ids[0, 1:]
    dp = np.exp(var[np.arange(len(target)), target]) - np.exp(ref[np.arange(len(target)), target])
    assert q["kl_tokens"] == len(target)
    assert q["kl_mean"] == pytest.approx(kl.mean(), rel=1e-3, abs=1e-7) and q["kl_max"] == pytest.approx(kl.max(), rel=1e-3, abs=1e-7)
    assert q["kl_p99"] == pytest.approx(np.percentile(kl, 99), rel=1e-3, abs=1e-7)
    assert q["dp_mean"] == pytest.approx(dp.mean(), abs=1e-5) and q["dp_rms"] == pytest.approx(np.sqrt((dp ** 2).mean()), abs=1e-5)
    assert q["top1_agreement"] == pytest.approx(float((ref.argmax(-1) == var.argmax(-1)).mean()))
    assert q["kl_mean"] > 0   # 4-bit weights do change the distributions


def test_a_generation_cell_compares_only_the_steps_whose_inputs_are_fp32s(tmp_path):
    """Step s of a row has fp32's inputs while the row's tokens before s equal fp32's: row 0 diverges after its second
    token, so its third and fourth steps are not compared; row 1 never diverges."""
    rng = np.random.default_rng(0)
    ref_logits = [rng.normal(size=(2, 11)) for _ in range(4)]
    var_logits = [x + rng.normal(scale=0.3, size=x.shape) for x in ref_logits]
    ref_tokens = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    var_tokens = np.array([[1, 9, 3, 4], [5, 6, 7, 8]])
    assert cell_check.check_generation({"ref_dir": tmp_path, "reference": True}, 2, 8, ref_logits, ref_tokens) == {}
    got = cell_check.check_generation({"ref_dir": tmp_path}, 2, 8, var_logits, var_tokens)
    pairs = [(0, 0), (1, 0), (0, 1), (1, 1), (2, 1), (3, 1)]   # (step, row) compared
    kl = [cell_check.kl_divergence(cell_check.log_softmax(ref_logits[s][r]), cell_check.log_softmax(var_logits[s][r])) for s, r in pairs]
    assert got["out_positions"] == len(pairs)
    assert got["out_kl_mean"] == pytest.approx(float(np.mean(kl)), rel=1e-5) and got["out_kl_max"] == pytest.approx(float(np.max(kl)), rel=1e-5)
    same = [int(np.argmax(ref_logits[s][r]) == np.argmax(var_logits[s][r])) for s, r in pairs]
    assert got["out_agreement"] == pytest.approx(np.mean(same))
    assert cell_check.generation_steps(1, 100) == cell_check.MAX_LM_POSITIONS and cell_check.generation_steps(64, 4) == 1


def test_a_generation_cell_wrong_at_one_prompt_length_is_marked_and_named(faulty, tiny_gpt2_dir, tmp_path):
    from core.engine.evaluate import EvalConfig, run_evaluation
    from core.reporting.csv_export import report_to_csv
    from core.reporting.recommend import recommend
    from core.reporting.table import format_table

    data = tmp_path / "lm.txt"
    data.write_text("Quantization maps floating point numbers onto a few integer levels. " * 12)
    report = run_evaluation(EvalConfig(task="causal-lm", model=str(tiny_gpt2_dir), variants=["fp32", "faulty-fp32:at=16"], data=str(data),
                                       scenario="generate", batch_sizes=[1], prompt_lengths=[8, 16], new_tokens=4, max_length=32, protocol=QUICK))
    fp32, bad = report["results"]
    assert not bad.get("error"), bad.get("error")
    cells = {c["prompt_len"]: c for c in bad["generation"]}
    assert cells[8]["out_kl_mean"] == pytest.approx(0.0, abs=1e-6) and cells[8]["out_positions"] == 4 and cells[8]["out_wrong"] is False
    assert cells[16]["out_wrong"] is True and cells[16]["out_agreement"] < 1.0 and cells[16]["out_kl_mean"] > 0.01
    assert all(c.get("out_wrong") is None for c in fp32["generation"])
    assert any("Outputs are wrong at 16-token prompts" in n for n in bad["notes"]), bad["notes"]
    header = report_to_csv(report).splitlines()[0].split(",")
    assert {"prompt_len", "out_kl_mean", "out_positions", "out_wrong"} <= set(header)
    assert "b=1 p=16" in format_table(report) and "WRONG" in format_table(report)
    faster = copy.deepcopy(report)
    for c in faster["results"][1]["generation"]:
        c["decode_ms_per_token_p50"] = c["decode_ms_per_token_p90"] = c["decode_ms_per_token_p50"] / 10
    rec = recommend(faster["results"], "causal-lm", None, 1, reference_quality=report["reference"]["quality"])
    assert rec["variant"] == "fp32" and "outputs are wrong at 16-token prompts" in rec["reason"], rec
