"""core.engine.evaluate / core.reporting / core.reporting.recommend: validation, worker runs on tiny models, the report schema, the words."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.engine.evaluate import Cancelled, EvalConfig, run_evaluation, slow_notes, validate
from core.errors import DataError, QlabError, RecipeError, SourceError
from core.reporting.cells import LatencyCell
from core.reporting.compare import compare_to_reference
from core.reporting.csv_export import report_to_csv
from core.reporting.recommend import recommend
from core.reporting.results import Report, VariantResult, report_from_json, report_to_json
from core.reporting.table import format_table

QUICK = {"warmup": 1, "min_iters": 3, "min_seconds": 0.0, "max_seconds": 2.0}


# -- synthetic reports ------------------------------------------------------------------------------
def cell(b, s, p50):
    return LatencyCell(batch_size=b, seq_len=s, p50_ms=p50, p90_ms=p50 * 1.1, p99_ms=p50 * 1.2, mean_ms=p50, std_ms=0.1,
                       throughput_per_s=b / p50 * 1000, forward_p50_ms=p50 * 0.9)


def result(name, p50s, quality, size=100_000_000, notes=None):
    """p50s: {batch: [p50 at seq 16, p50 at seq 64]}"""
    lat = [cell(b, s, v) for b, vs in p50s.items() for s, v in zip((16, 64), vs)]
    return VariantResult(variant=name, size_bytes=size, param_bytes=size, build_s=1.0, cache_hit=False, load_s=0.2, peak_rss_bytes=10**9,
                         quality=quality, latency=lat, dataset_throughput={"sorted": {"texts_per_s": 10.0}, "unsorted": {"texts_per_s": 8.0}},
                         notes=list(notes or []))


def classification_report():
    results = [
        result("fp32", {1: [10.0, 40.0], 8: [50.0, 200.0]}, {"accuracy": 0.90, "f1_macro": 0.89}),
        result("onnx-int8", {1: [4.0, 10.0], 8: [20.0, 60.0]}, {"accuracy": 0.896, "f1_macro": 0.88}, size=25_000_000),
        result("dynamic-int8", {1: [2.0, 5.0], 8: [10.0, 30.0]}, {"accuracy": 0.85, "f1_macro": 0.84}, size=30_000_000),
        result("dynamic-int8:engine=qnnpack", {1: [30.0, 90.0], 8: [100.0, 400.0]}, {"accuracy": 0.90, "f1_macro": 0.89}, size=30_000_000,
               notes=["Engine qnnpack is the ARM/mobile kernel library: on this x86 CPU it is typically 2-6x slower than fp32; "
                      "use engine=x86 (fbgemm/onednn)."]),
        VariantResult(variant="bf16", error="bf16 build failed: RuntimeError: boom"),
    ]
    return Report(task="classification", model="m", environment={"cpu": "Test CPU", "threads": 2, "cores": 2, "device": "cpu"}, results=results,
                  budgets={"max_accuracy_drop": 1.0}, created="2025-01-01T00:00:00+00:00", run_id="ab" * 16, data={"name": "d.csv", "rows": 100},
                  settings={"batch_sizes": [1, 8], "seq_lengths": [16, 64], "recommend_batch_size": 1})


def test_recommend_fastest_within_budget_with_reason():
    rep = classification_report()
    rec = recommend(rep.results, "classification", {"max_accuracy_drop": 1.0}, 1)
    # dynamic-int8 is fastest but drops 5 points; onnx-int8 drops 0.4: within 1 point
    assert rec["variant"] == "onnx-int8" and rec["batch_size"] == 1
    assert rec["speedup"] == pytest.approx(20.0 / 40.0 ** 0.5)      # geo-means over seq: fp32 sqrt(10*40)=20, onnx sqrt(4*10)
    assert "onnx-int8 is 3.2x faster than fp32 at batch 1" in rec["reason"] and "-0.4 pt" in rec["reason"]
    assert "dynamic-int8 is faster still" in rec["reason"] and "beyond the 1 pt budget" in rec["reason"]
    # a looser budget picks dynamic-int8; a budget nobody but fp32 meets picks fp32
    assert recommend(rep.results, "classification", {"max_accuracy_drop": 6.0}, 1)["variant"] == "dynamic-int8"
    strict = recommend(rep.results, "classification", {"max_accuracy_drop": 0.1}, 1)
    assert strict["variant"] == "fp32" and "fp32 is the fastest within budget" in strict["reason"]


def test_recommend_embedding_and_causal_budgets():
    emb = [result("fp32", {1: [12, 12]}, {"cosine_fidelity": 1.0}), result("a", {1: [5, 5]}, {"cosine_fidelity": 0.985}),
           result("b", {1: [8, 8]}, {"cosine_fidelity": 0.995})]
    rec = recommend(emb, "embedding", None, 1)
    assert rec["variant"] == "b" and "cosine fidelity 0.9950 >= 0.99" in rec["reason"] and "1.5x faster" in rec["reason"]
    assert "a is faster still but its cosine fidelity 0.9850 < 0.99" in rec["reason"]
    assert recommend(emb, "embedding", {"min_cosine": 0.98}, 1)["variant"] == "a"
    lm = [result("fp32", {1: [10, 10]}, {"perplexity": 20.0}), result("q", {1: [5, 5]}, {"perplexity": 20.3}),
          result("r", {1: [4, 4]}, {"perplexity": 21.0})]
    rec = recommend(lm, "causal-lm", None, 1)
    assert rec["variant"] == "q" and "+1.5%" in rec["reason"]
    assert recommend(lm, "causal-lm", {"max_ppl_increase": 5.0}, 1)["variant"] == "r"
    # no fp32 measured: the reference quality comes from outside
    rec = recommend(lm[1:], "causal-lm", None, 1, reference_quality={"perplexity": 20.0})
    assert rec["variant"] == "q" and "fp32 speed was not measured" in rec["reason"]
    assert recommend(lm[2:], "causal-lm", None, 1, reference_quality={"perplexity": 20.0}) is None


def test_report_round_trip_csv_and_table():
    rep = classification_report()
    rep.recommended = recommend(rep.results, rep.task, rep.budgets, 1)
    text = report_to_json(rep)
    back = report_from_json(text)
    assert back == rep and back.to_dict() == json.loads(text)
    assert Report.from_dict(json.loads(text)).results[1].latency[0] == rep.results[1].latency[0]
    with pytest.raises(QlabError, match="Not a Quantization Lab report"):
        report_from_json('{"hello": 1}')
    rows = list(__import__("csv").DictReader(__import__("io").StringIO(report_to_csv(rep))))
    assert len(rows) == 4 * 4 + 1            # 4 variants x 2 batch x 2 seq, and one row for the failed one
    assert rows[0]["variant"] == "fp32" and float(rows[0]["p50_ms"]) == 10.0 and rows[0]["accuracy"] == "0.9"
    assert rows[-1]["error"].startswith("bf16 build failed")
    table = format_table(rep)
    for needle in ("onnx-int8 *", "4.00x", "89.6%", "-0.4 pt", "failed", "Recommended: onnx-int8", "FAILED: bf16 build failed"):
        assert needle in table, needle
    # whole-dataset throughput: an old report (one pass per mode) still reads; a new one shows ranges, padding and the verdict
    assert "  onnx-int8: 10 / 8; sorted 1.25x faster (one pass per mode: no spread measured)." in table


def test_table_shows_throughput_spread_padding_and_verdict():
    rep = classification_report()
    mode = lambda med, lo, hi, pad: {"texts_per_s": med, "texts_per_s_min": lo, "texts_per_s_max": hi, "passes": 5, "padding_fraction": pad, "texts": 200}  # noqa: E731
    rep.results[0].dataset_throughput = {"sorted": mode(412, 398, 420, 0.04), "unsorted": mode(300, 290, 310, 0.41), "batch_size": 32}
    rep.results[1].dataset_throughput = {"sorted": mode(900, 850, 960, 0.04), "unsorted": mode(880, 800, 905, 0.41), "batch_size": 32}
    lines = format_table(rep).splitlines()
    k = lines.index("Whole dataset (200 texts) at batch 32, texts/s sorted by length / in data order, median [min-max] over 5 alternated passes per mode:")
    assert lines[k + 1] == "  fp32: 412 [398-420] / 300 [290-310]; sorted 1.37x faster; padding 41% of tokens unsorted -> 4% sorted."
    assert lines[k + 2] == ("  onnx-int8: 900 [850-960] / 880 [800-905]; no difference within noise "
                            "(sorted 1.02x faster; padding 41% of tokens unsorted -> 4% sorted).")
    rep.results[0].dataset_throughput["batch_size"] = 1
    assert "  fp32: 412 [398-420] / 300 [290-310]; batch 1: no padding, so sorting cannot matter here (sorted 1.37x faster: noise)." in format_table(rep)


def test_compare_to_reference_words():
    rows = {r["variant"]: r for r in compare_to_reference(classification_report(), batch_size=1)}
    assert rows["onnx-int8"]["speedup"] == pytest.approx(20.0 / 40.0 ** 0.5)
    assert rows["onnx-int8"]["size_ratio"] == pytest.approx(4.0)
    assert rows["onnx-int8"]["quality_delta"] == pytest.approx(-0.4)
    assert rows["onnx-int8"]["words"] == "3.2x faster, 4.0x smaller, -0.4 pt accuracy"
    assert rows["dynamic-int8:engine=qnnpack"]["words"].startswith("2.6x slower")
    assert rows["fp32"]["words"] == "reference" and rows["bf16"]["words"].startswith("failed")


def test_speed_summary_is_geometric_mean_over_seq():
    r = result("x", {1: [4.0, 16.0]}, {})
    assert r.p50_at(1) == pytest.approx(8.0) and r.p50_at(32) is None


def test_slow_notes_explain_the_cause():
    rep = classification_report()
    fp32, qnn, fast = rep.result("fp32"), rep.result("dynamic-int8:engine=qnnpack"), rep.result("onnx-int8")
    notes = slow_notes(qnn, fp32, [1, 8], {"threads": 2, "cores": 2})
    assert len(notes) == 2 and notes[0].startswith("Slower than fp32 at batch 1 (51.96 ms vs 20.00 ms p50); likely cause: the qnnpack engine")
    assert slow_notes(fast, fp32, [1, 8], {}) == []
    plain = result("onnx-int8", {1: [30.0, 90.0]}, {})
    assert "quantizing activations on the fly" in slow_notes(plain, fp32, [1], {})[0]
    assert "oversubscribe" in slow_notes(plain, fp32, [1], {"threads": 8, "cores": 2})[0]
    noisy = result("onnx-int8", {1: [10.8, 43.2]}, {})       # 8% slower, but inside fp32's own p90 (+10%)
    assert slow_notes(noisy, fp32, [1], {}) == []


def test_slow_notes_use_the_variants_own_notes_not_lookalikes():
    from core.recipes.pytorch.recipes import AO_DEPRECATION

    rep = classification_report()
    slow = result("dynamic-int8", {1: [30.0, 90.0]}, {})
    slow.notes = [AO_DEPRECATION]  # mentions torchao, but this is torch.ao's dynamic int8
    note = slow_notes(slow, rep.result("fp32"), [1], {})[0]
    assert "torchao's CPU int8 kernels" not in note and "quantizing activations on the fly" in note


EPYC_AVX2 = {"model": "AMD EPYC 7B13", "arch": "x86_64", "flags": ["avx2", "f16c", "fma"], "logical_cores": 2}
SAPPHIRE = {"model": "Intel Xeon 8480", "arch": "x86_64", "flags": ["amx_bf16", "amx_int8", "amx_tile", "avx2", "avx512_bf16", "avx512_vnni", "avx512f"],
            "logical_cores": 2}


def test_slow_notes_name_the_missing_instruction_sets(monkeypatch):
    """On an AVX2-only CPU the bf16 and torchao-int8 notes say which instructions are missing and which fallback kernel runs,
    and the slow-variant explanation carries that; on a CPU with VNNI/AMX/avx512_bf16 they claim nothing of the kind."""
    from core import env
    from core.recipes.pytorch.recipes import bf16_cpu_notes, torchao_int8_notes

    monkeypatch.setattr(env, "cpu_info", lambda: EPYC_AVX2)
    bf16, torchao = bf16_cpu_notes(), torchao_int8_notes()
    assert any("no avx512_bf16, no AMX" in n and "AMD EPYC 7B13 (avx2, f16c, fma)" in n and "fallback bf16 GEMM" in n for n in bf16), bf16
    assert any("neither VNNI (avx512_vnni/avx_vnni) nor AMX" in n and "fallback int8 GEMM" in n and "torch._int_mm" in n for n in torchao), torchao
    fp32 = result("fp32", {1: [25.0, 25.0]}, {})
    slow_bf16 = result("bf16", {1: [78.0, 78.0]}, {}, notes=bf16)
    slow_ao = result("torchao-int8", {1: [216.0, 216.0]}, {}, notes=torchao)
    note = slow_notes(slow_bf16, fp32, [1], {})[0]
    assert note.startswith("Slower than fp32 at batch 1 (78.00 ms vs 25.00 ms p50)") and "no avx512_bf16/AMX" in note and "fallback bf16 GEMM" in note
    assert "gain little" not in note   # the no-AMX cause is for CPUs that do have avx512_bf16
    note = slow_notes(slow_ao, fp32, [1], {})[0]
    assert "no VNNI/AMX on this CPU" in note and "fallback int8 GEMM" in note and "eager ops" in note

    monkeypatch.setattr(env, "cpu_info", lambda: SAPPHIRE)
    assert bf16_cpu_notes() == [] and not any("VNNI" in n for n in torchao_int8_notes())


def test_recommend_prefers_the_smaller_of_two_variants_within_noise():
    emb = [result("fp32", {1: [12, 12]}, {"cosine_fidelity": 1.0}, size=90_000_000),
           result("onnx-int8:embeddings=fp32", {1: [4.0, 4.0]}, {"cosine_fidelity": 0.994}, size=58_600_000),
           result("onnx-int8", {1: [4.1, 4.1]}, {"cosine_fidelity": 0.993}, size=22_800_000)]
    rec = recommend(emb, "embedding", None, 1)
    assert rec["variant"] == "onnx-int8" and rec["p50_ms"] == pytest.approx(4.1)
    assert "onnx-int8:embeddings=fp32 is as fast within noise (4.00 ms vs 4.10 ms p50) but 2.6x larger on disk (58.6 MB vs 22.8 MB)" in rec["reason"]
    emb[2] = result("onnx-int8", {1: [5.0, 5.0]}, {"cosine_fidelity": 0.993}, size=22_800_000)   # 25% slower: beyond noise, speed wins
    assert recommend(emb, "embedding", None, 1)["variant"] == "onnx-int8:embeddings=fp32"
    emb[2] = result("onnx-int8", {1: [4.0, 4.0]}, {"cosine_fidelity": 0.98}, size=22_800_000)    # out of budget: size cannot buy it in
    assert recommend(emb, "embedding", None, 1)["variant"] == "onnx-int8:embeddings=fp32"
    same = [result("fp32", {1: [10, 10]}, {"cosine_fidelity": 1.0}, size=90_000_000),
            result("absmax-int8", {1: [10.2, 10.2]}, {"cosine_fidelity": 0.9996}, size=58_700_000)]
    rec = recommend(same, "embedding", None, 1)    # weight-only int8 computes like fp32; same speed, smaller file
    assert rec["variant"] == "absmax-int8" and "as fast as fp32" in rec["reason"] and "1.5x larger on disk" in rec["reason"]


# -- validation (fast, nothing built) --------------------------------------------------------------------
def test_validate_normalises(tiny_gpt2_dir):
    cfg = validate(EvalConfig(task="embedding", model="minilm", variants=["fp32", "onnx-int8:per_channel=true"], batch_sizes=["1", 8, 8]))
    assert cfg.variants == ["fp32", "onnx-int8"] and cfg.batch_sizes == [1, 8] and cfg.recommend_batch_size == 1
    assert cfg.budgets == {"min_cosine": 0.99, "max_accuracy_drop": 1.0, "max_ppl_increase": 2.0}
    assert cfg.throughput_batch_size == 32                        # its own setting, not the recommendation's batch size
    from core.inputs import data as data_mod

    n_texts = len(data_mod.load_dataset(data_mod.sample_path("embedding"), "embedding").texts)
    assert validate(EvalConfig(task="embedding", model="minilm", variants=["fp32"], throughput_batch_size=1000)).throughput_batch_size == n_texts
    cfg = validate(EvalConfig(task="causal-lm", model=str(tiny_gpt2_dir), variants=["all"], batch_sizes=[4, 2], seq_lengths=[16]))
    assert "fp32" in cfg.variants and "fp16" not in cfg.variants and cfg.recommend_batch_size == 4


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(variants=["fp33"]), RecipeError, "Unknown variant 'fp33'"),
    (dict(variants=["fp16"]), RecipeError, "cannot run here"),
    (dict(variants=["dynamic-int8:engine=tpu"]), RecipeError, "engine=tpu is not allowed"),
    (dict(model="no-such-model-anywhere"), SourceError, "no-such-model-anywhere"),
    (dict(task="classification"), SourceError, "does embedding, not classification"),
    (dict(batch_sizes=[0]), QlabError, "batch sizes must be between 1"),
    (dict(seq_lengths=["x"]), QlabError, "whole numbers"),
    (dict(recommend_batch_size=4), QlabError, "not in the batch sizes"),
    (dict(budgets={"min_cosine": 1.5}), QlabError, "out of range"),
    (dict(budgets={"speed": 1}), QlabError, "Unknown budget"),
    (dict(device="tpu"), QlabError, "Unknown device"),
    (dict(throughput_batch_size=0), QlabError, "throughput batch size must be between 1 and 1024, got 0"),
    (dict(throughput_batch_size="lots"), QlabError, "throughput batch size must be whole numbers, got 'lots'"),
    (dict(data="/no/such/file.csv"), DataError, "does not exist"),
])
def test_validate_rejects_bad_input(kwargs, error, words):
    base = dict(task="embedding", model="minilm", variants=["fp32"])
    with pytest.raises(error) as info:
        validate(EvalConfig(**{**base, **kwargs}))
    assert words in str(info.value) and "\n" not in str(info.value)


def test_validate_model_specific_checks(tiny_gpt2_dir, tiny_classifier_dir):
    with pytest.raises(SourceError, match="is a causal-lm model .*cannot do classification"):
        validate(EvalConfig(task="classification", model=str(tiny_gpt2_dir), variants=["fp32"]))
    with pytest.raises(QlabError, match="longer than model .* accepts \\(64 positions\\)"):
        validate(EvalConfig(task="causal-lm", model=str(tiny_gpt2_dir), variants=["fp32"], seq_lengths=[16, 128]))
    with pytest.raises(DataError) as info:   # the bundled sample's news labels are not the tiny model's neg/neu/pos
        validate(EvalConfig(task="classification", model=str(tiny_classifier_dir), variants=["fp32"]))
    assert "'world'" in str(info.value) and "its labels are: neg, neu, pos" in str(info.value)
    with pytest.raises(SourceError, match="disabled"):
        validate(EvalConfig(task="causal-lm", model=str(tiny_gpt2_dir), variants=["fp32"], allow_local=False))


# -- real runs in worker processes on tiny models --------------------------------------------------------
@pytest.mark.slow
def test_causal_lm_run_matches_in_process_perplexity(tiny_gpt2_dir, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("QLAB_CACHE_DIR", str(tmp_path / "store"))  # its own store: the cache_hit check below must not depend on test order

    from core.measure import metrics

    text = " ".join(["Quantization maps floating point numbers onto a few integer levels.", "The quick brown fox jumps over the lazy dog."] * 6)
    data = tmp_path / "lm.txt"
    data.write_text(text)
    events = []
    report = run_evaluation(EvalConfig(task="causal-lm", model=str(tiny_gpt2_dir), variants=["fp32", "absmax-int8"], data=str(data),
                                       batch_sizes=[1], seq_lengths=[8, 16], max_length=32, stride=10, protocol=QUICK), progress=events.append)
    rep = Report.from_dict(report)
    assert [r.variant for r in rep.results] == ["fp32", "absmax-int8"] and not any(r.error for r in rep.results)
    assert rep.settings["context"] == 32 and rep.settings["stride"] == 10
    # fp32's perplexity from the worker = the same computation in this process on the plain transformers model
    model = AutoModelForCausalLM.from_pretrained(str(tiny_gpt2_dir)).eval()
    ids = AutoTokenizer.from_pretrained(str(tiny_gpt2_dir))(text, add_special_tokens=False)["input_ids"]

    def run(batch, mask):
        with torch.inference_mode():
            return model(input_ids=torch.as_tensor(batch), attention_mask=torch.as_tensor(mask)).logits.numpy()

    expected = metrics.causal_lm_scores(run, ids, context=32, stride=10)
    fp32, q = rep.results
    assert fp32.quality["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-4)
    assert fp32.quality["tokens"] == len(ids) - 1 and fp32.quality["top1_agreement"] == 1.0
    assert q.quality["perplexity"] == pytest.approx(expected["perplexity"], rel=0.05) and q.quality["perplexity"] != fp32.quality["perplexity"]
    assert "perplexity_increase_pct" in q.quality
    # latency cells, sizes, memory, the dataset throughput modes
    assert [(c.batch_size, c.seq_len) for c in fp32.latency] == [(1, 8), (1, 16)] and all(c.iterations >= 3 for c in fp32.latency)
    assert all(c.p50_ms > 0 and c.forward_p50_ms <= c.p99_ms for c in fp32.latency)
    assert q.size_bytes < fp32.size_bytes and fp32.peak_rss_bytes > 50e6 and not fp32.cache_hit
    assert set(fp32.dataset_throughput) >= {"sorted", "unsorted", "batch_size"}
    assert fp32.dataset_throughput["batch_size"] == rep.settings["throughput_batch_size"] == 1   # 32 capped at the one text of the file
    assert fp32.dataset_throughput["sorted"]["passes"] == fp32.dataset_throughput["unsorted"]["passes"] >= 3
    assert rep.recommended and rep.recommended["variant"] in ("fp32", "absmax-int8")
    assert rep.environment["cpu"] and rep.environment["versions"]["torch"] and len(rep.run_id) == 32
    # progress: every phase, fractions never go back, ending at 1
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert {"build", "load", "quality", "latency", "done"} <= {e["phase"] for e in events}
    assert all(set(e) == {"variant", "index", "total", "phase", "fraction", "message"} and e["total"] == 2 for e in events)


@pytest.mark.slow
def test_classification_reference_is_computed_when_fp32_not_requested(tiny_classifier_dir, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rows = [("the movie was great and fun", "pos"), ("terrible plot and bad acting", "neg"), ("it was fine I guess", "neu")] * 4
    data = tmp_path / "clf.csv"
    data.write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in rows) + "\n")
    report = run_evaluation(EvalConfig(task="classification", model=str(tiny_classifier_dir), variants=["dynamic-int8"], data=str(data),
                                       batch_sizes=[2], seq_lengths=[8], protocol=QUICK))
    assert [r["variant"] for r in report["results"]] == ["dynamic-int8"]
    ref = report["reference"]
    assert ref["variant"] == "fp32" and ref["measured"] is False
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_classifier_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_classifier_dir))
    with torch.inference_mode():
        pred = model(**tok([t for t, _ in rows], padding=True, return_tensors="pt")).logits.argmax(-1).numpy()
    gold = np.array([["neg", "neu", "pos"].index(lab) for _, lab in rows])
    assert ref["quality"]["accuracy"] == pytest.approx((pred == gold).mean())
    q = report["results"][0]["quality"]
    assert 0.0 <= q["agreement"] <= 1.0 and set(q) >= {"accuracy", "f1_weighted", "f1_macro", "agreement", "accuracy_drop_pt"}
    assert report["results"][0]["latency"][0]["batch_size"] == 2
    assert any("deprecated" in n for n in report["results"][0]["notes"])


@pytest.mark.slow
def test_should_stop_kills_the_worker(tiny_embedder_dir):
    import psutil

    seen, workers = [], []

    def progress(event):
        seen.append(event)
        workers.extend(psutil.Process().children(recursive=True))

    def should_stop():   # stop once the measuring worker is busy with quality or latency
        return any(e["phase"] in ("quality", "latency") for e in seen)

    with pytest.raises(Cancelled):
        run_evaluation(EvalConfig(task="embedding", model=str(tiny_embedder_dir), variants=["fp32"], protocol={**QUICK, "min_seconds": 30.0}),
                       progress=progress, should_stop=should_stop)
    assert workers, "a worker process was running when the stop came"
    assert not psutil.Process().children(recursive=True)
    assert all(not w.is_running() or w.status() == psutil.STATUS_ZOMBIE for w in workers)
    assert seen[-1]["phase"] in ("quality", "latency")
