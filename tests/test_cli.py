"""``python -m core`` as a subprocess: listings, every bad-input class (exit 2, one line, no traceback), one real run."""

from __future__ import annotations

import csv
import io
import json

import pytest

from core.reporting.results import report_from_json

EVAL = ["evaluate", "--model", "minilm", "--task", "embedding", "--variants", "fp32"]


def assert_usage_error(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr and proc.stdout == ""
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_models_json(cli):
    proc = cli("models", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) >= {"minilm", "minilm-classifier", "demo-gpt"}
    assert rows["minilm"]["task"] == "embedding" and rows["minilm"]["path"] and rows["minilm"]["source"].startswith("bundled")
    assert rows["demo-gpt"]["task"] == "causal-lm"


def test_variants_json_and_table(cli):
    proc = cli("variants", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["fp32"]["available"] and rows["onnx-int8"]["params"]["per_channel"]["default"] == "true"
    assert rows["fp16"]["available"] is False and "CUDA" in rows["fp16"]["reason"]
    table = cli("variants")
    assert table.returncode == 0 and "onnx-int8" in table.stdout and "no: fp16 needs a CUDA GPU" in table.stdout


def test_store_listing_and_bad_delete(cli):
    proc = cli("store", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "entries" in json.loads(proc.stdout)
    assert_usage_error(cli("store", "--delete", "nosuchkey"), "No store entry 'nosuchkey'")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    files = {
        "empty.csv": b"",
        "binary.csv": bytes(range(256)) * 4,
        "latin1.csv": "sentence1,sentence2,score\nle caf\u00e9,un caf\u00e9,4.0\n".encode("cp1252"),
        "malformed.csv": b"sentence1,sentence2,score\na,b,1.0\n\"c,d\n",
        "columns.csv": b"question,answer\nwhat,that\n",
    }
    for name, blob in files.items():
        (d / name).write_bytes(blob)
    return d


@pytest.mark.parametrize("args,words", [
    (["--model", "no-such-model"], ["no-such-model"]),
    (["--variants", "fp33"], ["Unknown variant 'fp33'"]),
    (["--variants", "dynamic-int8:speed=max"], ["no parameter 'speed'"]),
    (["--task", "classification"], ["does embedding, not classification"]),
    (["--task", "translation"], ["invalid choice"]),
    (["--batch-sizes", "1,x"], ["whole numbers"]),
    (["--threads", "two"], ["invalid int value"]),
    (["--data", "/no/such/file.csv"], ["does not exist"]),
    (["--data", "{bad}/empty.csv"], ["empty.csv", "is empty"]),
    (["--data", "{bad}/binary.csv"], ["binary.csv", "binary"]),
    (["--data", "{bad}/latin1.csv"], ["latin1.csv", "not valid UTF-8"]),
    (["--data", "{bad}/malformed.csv"], ["malformed.csv", "malformed CSV"]),
    (["--data", "{bad}/columns.csv"], ["columns.csv", "no text column", "question, answer"]),
    (["--throughput-batch-size", "0"], ["throughput batch size must be between 1 and 1024, got 0"]),
    (["--throughput-batch-size", "many"], ["--throughput-batch-size", "invalid int value"]),
], ids=["unknown-model", "unknown-variant", "bad-param", "task-mismatch", "unknown-task", "bad-number", "bad-threads", "missing-file",
        "empty-file", "binary-file", "mis-encoded-file", "malformed-csv", "missing-columns", "zero-throughput-batch", "bad-throughput-batch"])
def test_bad_input_exits_2_with_one_line(cli, bad_files, args, words):
    args = [a.replace("{bad}", str(bad_files)) for a in args]
    base = list(EVAL)
    for flag, value in zip(args[::2], args[1::2]):
        if flag in base:
            base[base.index(flag) + 1] = value
        else:
            base += [flag, value]
    assert_usage_error(cli(*base), *words)


def test_task_mismatch_on_local_folder(cli, tiny_gpt2_dir):
    assert_usage_error(cli("evaluate", "--task", "embedding", "--model", str(tiny_gpt2_dir), "--variants", "fp32"),
                       "causal-lm model", "cannot do embedding")


def test_evaluate_minilm_end_to_end(cli, tmp_path):
    data = tmp_path / "pairs.csv"
    data.write_text("sentence1,sentence2,score\n"
                    "A man is playing a guitar.,A man plays the guitar.,5.0\n"
                    "The cat sleeps on the sofa.,A dog runs in the park.,0.5\n"
                    "Stocks fell sharply on Monday.,Markets dropped at the start of the week.,4.2\n"
                    "She is cooking pasta.,The train leaves at noon.,0.1\n"
                    "The child reads a book.,A kid is reading.,4.0\n"
                    "It is raining heavily.,The weather is sunny and warm.,1.0\n"
                    "He drives to work.,He commutes by car.,4.5\n"
                    "The soup is too salty.,Quantum computers use qubits.,0.0\n"
                    "Two birds sit on a wire.,Birds are perched on a line.,4.4\n"
                    "The museum is closed today.,The museum opens at nine.,2.5\n")   # 10 scored pairs: the fewest a Spearman is reported for
    out, out_csv = tmp_path / "report.json", tmp_path / "report.csv"
    proc = cli("evaluate", "--task", "embedding", "--model", "minilm", "--variants", "fp32,onnx-int8", "--data", str(data),
               "--batch-sizes", "1,4", "--seq-lengths", "16", "--threads", "2", "--warmup", "1", "--min-iters", "3", "--min-seconds", "0",
               "--throughput-batch-size", "4", "--out", str(out), "--csv", str(out_csv))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # the table
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("variant"))
    for col in ("size MB", "x smaller", "p50 ms b=1", "p50 ms b=4", "x faster b=1", "cosine", "delta", "spearman", "cached"):
        assert col in header
    assert any(line.startswith("fp32 ") for line in lines) and any(line.startswith("onnx-int8") for line in lines)
    assert "Recommended: " in proc.stdout and f"Report: {out}" in proc.stdout
    # the report
    rep = report_from_json(out.read_text())
    assert rep.task == "embedding" and rep.model == "minilm" and rep.data == {**rep.data, "name": "pairs.csv", "rows": 10}
    assert rep.environment["threads"] == 2 and rep.settings["batch_sizes"] == [1, 4]
    fp32, q = rep.result("fp32"), rep.result("onnx-int8")
    assert fp32.quality["cosine_fidelity"] == pytest.approx(1.0) and fp32.quality["retrieval_agreement"] == 1.0
    assert 0.9 < q.quality["cosine_fidelity"] < 0.99999            # int8 is close to fp32, not identical
    assert q.quality["spearman_fp32"] == pytest.approx(fp32.quality["spearman"]) and q.quality["spearman"] is not None
    assert q.quality["retrieval_k"] == 5
    assert q.size_bytes < fp32.size_bytes * 0.8 and q.param_bytes > 0 and q.peak_rss_bytes > 0 and q.load_s > 0
    assert [(c.batch_size, c.seq_len) for c in q.latency] == [(1, 16), (4, 16)]
    # whole-dataset throughput at its own batch size: alternated passes per mode, spread, padding
    dt = q.dataset_throughput
    assert dt["batch_size"] == 4 and rep.settings["throughput_batch_size"] == 4
    for mode in ("sorted", "unsorted"):
        m = dt[mode]
        assert m["passes"] == 3 and m["texts"] == 20 and m["batches"] == 5   # 10 pairs: 20 sentences
        assert 0 < m["texts_per_s_min"] <= m["texts_per_s"] <= m["texts_per_s_max"]
    assert 0 <= dt["sorted"]["padding_fraction"] < dt["unsorted"]["padding_fraction"] < 1
    assert "Whole dataset (20 texts) at batch 4, texts/s sorted by length / in data order, median [min-max] over 3 alternated passes per mode:" in proc.stdout
    assert f"padding {dt['unsorted']['padding_fraction']:.0%} of tokens unsorted -> {dt['sorted']['padding_fraction']:.0%} sorted" in proc.stdout
    assert any("Fused operators" in n for n in q.notes)
    assert rep.recommended["variant"] in ("fp32", "onnx-int8") and rep.recommended["batch_size"] == 1 and rep.recommended["reason"]
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len(rows) == 4 and {r["variant"] for r in rows} == {"fp32", "onnx-int8"}


def test_prepare_packaged_model_and_unknown_name(cli):
    proc = cli("prepare", "--models", "minilm")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("minilm: ready at ")
    assert_usage_error(cli("prepare", "--models", "gpt-17"), "Unknown bundled model 'gpt-17'")


def test_prepare_reports_a_missing_builder(monkeypatch, capsys):
    import dataclasses

    from core import cli as cli_mod
    from core.bundled import registry

    def missing(out_dir, progress=None):
        raise ImportError("No module named 'core.bundled.not_written_yet'")

    monkeypatch.setitem(registry.BUNDLED, "demo-gpt", dataclasses.replace(registry.BUNDLED["demo-gpt"], builder=missing, version="test-missing"))
    assert cli_mod.main(["prepare", "--models", "demo-gpt"]) == 2
    err = capsys.readouterr().err
    assert "error: cannot build demo-gpt: its builder is not available in this checkout (No module named 'core.bundled.not_written_yet')" in err
    assert "Traceback" not in err
