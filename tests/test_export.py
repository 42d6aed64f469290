"""Exports (core/exporting/export.py, python -m core export, Compare's downloads, the Store page's list).

The README snippet of each export runs in a subprocess whose Python path and working folder are outside the project
(``core`` is not importable there) on held-out texts, and its outputs are compared with the lab's own variant on the
same texts: cosine >= 0.9999 for embeddings (real MiniLM), identical argmax for classification and logits within
1e-4 relative for causal LMs (tiny random models: code paths only).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core import env
from core.access import hosting
from core.errors import QlabError
from core.exporting.export import EXPORTERS, NOT_EXPORTED, ExportError, export_variant
from core.exporting.snippets import MAX_LINES, OUTPUT, RUNTIMES, SNIPPETS, snippet, snippet_from_readme
from core.measure import metrics
from core.recipes import RECIPES
from core.storage import exports, history
from core.tasks import CLASSIFICATION, EMBEDDING, TASKS

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT = [
    "The ferry to the island was cancelled because of the storm.",
    "Short one.",
    "A violinist tuned her instrument while the audience slowly found their seats in the old concert hall. " * 8,  # past 128 tokens
    "Quarterly revenue grew faster than analysts had expected.",
]
# what each kind of snippet may import (module names), besides the standard library's json
ALLOWED_IMPORTS = {"numpy": "numpy", "onnxruntime": "onnxruntime", "tokenizers": "tokenizers", "torch": "torch",
                   "transformers": "transformers", "safetensors": "safetensors", "torchao": "torchao", "xllamacpp": "xllamacpp",
                   "openvino": "openvino"}
HARNESS = r'''
import importlib.util, json, os, sys
import numpy as np
assert importlib.util.find_spec("core") is None, "the lab is importable from the snippets' process"
held_out = json.load(open(sys.argv[1]))
for folder, target in json.load(open(sys.argv[2])):    # [export folder, .npy to write], one snippet after another
    os.chdir(folder)
    meta = json.load(open("qlab.json"))
    code = open("README.md").read().split("```python\n", 1)[1].split("\n```", 1)[0]
    lines = [("texts = __held_out__" if line.startswith("texts = ") else line) for line in code.splitlines()]
    assert len(lines) <= 15 and sum(line.startswith("texts = ") for line in code.splitlines()) == 1
    ns = {"__name__": "__main__", "__held_out__": held_out}
    exec(compile("\n".join(lines), f"README snippet of {folder}", "exec"), ns)
    out = ns[meta["snippet"]["output"]]
    np.save(target, np.asarray(out.detach().numpy() if hasattr(out, "detach") else out, dtype=np.float32))
'''


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exports")
    (folder / "harness.py").write_text(HARNESS)
    (folder / "held_out.json").write_text(json.dumps(HELD_OUT))
    return folder


def run_snippets(folders: list[Path], work: Path) -> list[np.ndarray]:
    """The README snippets of ``folders`` on the held-out texts, run from inside each folder in one process (one torch
    import for all) whose Python path and working folders exclude the project, so the lab cannot be imported."""
    jobs = [[str(f), str(work / f"out-{f.name}-{os.urandom(4).hex()}.npy")] for f in folders]
    (work / "jobs.json").write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    proc = subprocess.run([sys.executable, str(work / "harness.py"), str(work / "held_out.json"), str(work / "jobs.json")], cwd=str(work),
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [np.load(target, allow_pickle=False) for _, target in jobs]


def run_snippet(folder: Path, work: Path) -> np.ndarray:
    return run_snippets([folder], work)[0]


def lab_outputs(model: str, spec: str, max_length: int):
    """The lab's own variant (loaded from the store as an evaluation loads it) on the held-out texts."""
    from core.engine.variants import get_variant
    from core.inputs.sources import load_tokenizer, resolve

    source = resolve(model)
    enc = load_tokenizer(source)(HELD_OUT, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    out = get_variant(source, spec).variant(ids, mask)
    return (metrics.mean_pool(out, mask) if source.task == EMBEDDING else out), mask


def assert_same_outputs(task: str, got: np.ndarray, lab: np.ndarray, mask: np.ndarray) -> None:
    assert got.shape == lab.shape, (got.shape, lab.shape)
    if task == EMBEDDING:
        cos = metrics.row_cosine(got, lab)
        assert cos.min() >= 0.9999, cos
    elif task == CLASSIFICATION:
        assert (got.argmax(-1) == lab.argmax(-1)).all()
        assert np.abs(got - lab).max() <= 1e-4 * np.abs(lab).max()
    else:
        real = mask.astype(bool)
        assert np.abs(got[real] - lab[real]).max() <= 1e-4 * np.abs(lab[real]).max()


def entry_files(entry_path: Path) -> dict:
    return {p.relative_to(entry_path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(entry_path.rglob("*")) if p.is_file()}


# -- the snippets, without models --------------------------------------------------------------------
def test_every_recipe_has_an_export_and_every_snippet_is_short_and_lab_free():
    assert set(EXPORTERS) | set(NOT_EXPORTED) == set(RECIPES) and not set(EXPORTERS) & set(NOT_EXPORTED)
    details = {"max_length": 128, "input_names": ["input_ids", "attention_mask"], "output_name": "output", "engine": "x86",
               "qconfig": "per_channel_dynamic_qconfig", "dtype": "bfloat16"}
    for kind in SNIPPETS:
        for task in TASKS:
            for conv1d in (False, True):
                code = snippet(kind, task, {**details, "conv1d_to_linear": conv1d})
                assert len(code.splitlines()) <= MAX_LINES, (kind, task, conv1d, len(code.splitlines()))
                tree = ast.parse(code)
                modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
                modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
                allowed = {ALLOWED_IMPORTS[d] for d in RUNTIMES[kind]} | {"json"}
                assert modules <= allowed, (kind, task, modules - allowed)
                assert "core" not in modules and "qlab" not in code.replace("qlab.json", "")
                assigned = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
                assert OUTPUT[task] in assigned and "texts" in assigned, (kind, task)
    assert "torch" not in snippet("onnx", EMBEDDING, details)


# -- each family, each task it applies to: the README snippet equals the lab ---------------------------
FAMILIES = ["onnx-int8", "dynamic-int8", "absmax-int8", "onnx-int4"]
MODELS = ["minilm", "tiny_classifier_dir", "tiny_gpt2_dir"]   # embedding (real MiniLM), classification, causal LM (tiny)


@pytest.fixture(scope="module")
def exported(work, request) -> dict:
    """Every family x task exported, and every README snippet run (in one process outside the project)."""
    done = {}
    for model in MODELS:
        name = model if model == "minilm" else str(request.getfixturevalue(model))
        for spec in FAMILIES:
            done[(model, spec)] = (name, export_variant(name, spec, work / f"{model}-{spec}"))
    outputs = run_snippets([d.folder for _, d in done.values()], work)
    return {key: (name, d, out) for (key, (name, d)), out in zip(done.items(), outputs)}


@pytest.mark.slow
@pytest.mark.parametrize("spec", FAMILIES)
@pytest.mark.parametrize("model", MODELS)
def test_exported_snippet_equals_the_lab(spec, model, exported):
    from core.storage.store import ModelStore

    name, done, got = exported[(model, spec)]
    out = done.folder
    meta = json.loads((out / "qlab.json").read_text())
    assert meta == json.loads(json.dumps(done.meta)) and meta["variant"]["spec"] == spec and meta["source"]["fingerprint"]
    assert meta["inputs"][0] == {"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]}
    assert meta["outputs"][0]["dtype"] == "float32" and meta["versions"]["torch"]
    assert meta["machine"]["instruction_sets"] == env.cpu_info()["flags"]
    if meta["task"] == EMBEDDING:
        assert meta["postprocessing"]["pooling"] == "mean over attention_mask" and meta["postprocessing"]["normalize"] == "l2"
        assert meta["tokenizer"]["max_length"] == 128 and meta["outputs"][0]["shape"][-1] == 384
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt")) and not list(out.glob("*.pkl"))
    weights = {"onnx-int8": "model.onnx", "onnx-int4": "model.onnx", "dynamic-int8": "model.safetensors", "absmax-int8": "weights.safetensors"}[spec]
    assert (out / weights).is_file() and (out / "tokenizer.json").is_file()
    required = (out / "requirements.txt").read_text()
    assert ("torch==" in required) == (not spec.startswith("onnx-")) and ("onnxruntime==" in required) == (spec.startswith("onnx-"))
    entry = ModelStore().lookup(meta["store_key"])
    assert entry is not None and meta["store_size_bytes"] == entry.size_bytes
    lab, mask = lab_outputs(name, spec, meta["tokenizer"]["max_length"])
    assert_same_outputs(meta["task"], got, lab, mask)


@pytest.mark.slow
def test_the_labs_readme_shows_the_real_minilm_snippet(exported):
    code = exported[("minilm", "onnx-int8")][1].code
    text = (ROOT / "docs" / "usage.md").read_text()   # the "Take the winner home" section moved there from README.md
    section = text[text.index("## Take the winner home"):]
    block = section.split("```python\n", 1)[1].split("\n   ```", 1)[0]
    assert "\n".join(line[3:] for line in block.splitlines()) == code


# -- the command line: success with a zip, the zip round trip, the store untouched ----------------------
def test_cli_export_zip_round_trip_and_store_unchanged(cli, work, tmp_path):
    from core.engine.variants import get_variant, stored_entry
    from core.inputs.sources import resolve
    from core.storage.store import ModelStore

    get_variant(resolve("minilm"), "onnx-int8")   # built (or already stored)
    entry = stored_entry(resolve("minilm"), "onnx-int8", ModelStore())
    before = entry_files(entry.path)
    out = tmp_path / "take-home" / "minilm-int8"
    proc = cli("export", "--model", "minilm", "--variant", "onnx-int8", "--out", str(out), "--zip", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"to {out}" in proc.stdout and "session.run" in proc.stdout
    assert entry_files(entry.path) == before                      # exporting never changes the store entry
    first = run_snippet(out, work)
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(out.with_name("minilm-int8.zip")) as zf:
        assert all(n.startswith("minilm-int8/") for n in zf.namelist())
        zf.extractall(unzipped)
    again = run_snippet(unzipped / "minilm-int8", work)
    np.testing.assert_array_equal(first, again)
    lab, mask = lab_outputs("minilm", "onnx-int8", 128)
    assert_same_outputs(EMBEDDING, again, lab, mask)
    assert any(r["folder"] == str(out.resolve()) and r["origin"] == "cli" for r in exports.list_exports())


def assert_usage_error(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_cli_bad_input_exits_2_with_one_line(cli, tmp_path):
    assert_usage_error(cli("export", "--model", "minilm", "--variant", "onnx-int9", "--out", str(tmp_path / "a")), "Unknown variant 'onnx-int9'")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_usage_error(cli("export", "--model", "minilm", "--variant", "onnx-int8", "--out", str(blocker / "out")), "is a file, not a folder")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert_usage_error(cli("export", "--model", "minilm", "--variant", "onnx-int8", "--out", str(busy)), "already exists and is not empty")
    assert (busy / "keep.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "busy"]
    assert_usage_error(cli("export", "--model", "minilm", "--variant", "fp16", "--out", str(tmp_path / "b" / "c")), "needs a CUDA GPU")
    assert not (tmp_path / "b").exists()
    assert_usage_error(cli("export", "--model", "minilm", "--variant", "onnx-int8"), "--out")


# -- a damaged store entry is refused ------------------------------------------------------------------
def test_damaged_entry_is_refused(tiny_classifier_dir, tmp_path, cli):
    from core.storage.store import ModelStore

    store = ModelStore(tmp_path / "store")
    first = export_variant(str(tiny_classifier_dir), "absmax-int8", tmp_path / "ok", store=store)
    weights = store.artifact_dir(first.meta["store_key"]) / "weights.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(weights.stat().st_size // 2)
    damaged = entry_files(weights.parent)
    with pytest.raises(ExportError, match="is damaged"):
        export_variant(str(tiny_classifier_dir), "absmax-int8", tmp_path / "refused", store=store)
    assert not (tmp_path / "refused").exists() and not list(tmp_path.glob(".refused*"))
    assert entry_files(weights.parent) == damaged                  # refused, not rebuilt behind the user's back
    env = dict(os.environ, QLAB_CACHE_DIR=str(tmp_path / "store"), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "core", "export", "--model", str(tiny_classifier_dir), "--variant", "absmax-int8",
                           "--out", str(tmp_path / "cli")], capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=300)
    assert_usage_error(proc, "is damaged", "python -m core store --delete")


# -- what the lab measured travels with the export ----------------------------------------------------
@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """One real, quick comparison of MiniLM fp32 and onnx-int8, saved as a run (as the dashboard saves them)."""
    from core.engine.evaluate import EvalConfig, run_evaluation
    from core.storage import history

    data = tmp_path_factory.mktemp("data") / "sentences.csv"
    data.write_text("text\n" + "\n".join(f"Sentence number {i} about {w}." for i, w in enumerate(
        ["rivers", "markets", "music", "football", "compilers", "weather", "bread", "trains"])) + "\n")
    report = run_evaluation(EvalConfig(task="embedding", model="minilm", variants=["fp32", "onnx-int8"], data=str(data), batch_sizes=[1],
                                       seq_lengths=[8], protocol={"warmup": 1, "min_iters": 3, "min_seconds": 0.0, "max_seconds": 2.0}))
    return history.save_run(report)


def test_export_carries_the_summary_measured_on_this_machine(saved_run, tmp_path):
    done = export_variant("minilm", "onnx-int8", tmp_path / "measured")
    measured = done.meta["measured"]
    run = history.load_run(saved_run)
    result = next(r for r in run["results"] if r["variant"] == "onnx-int8")
    assert measured["run_id"] == saved_run and measured["cpu"] == env.cpu_info()["model"]
    assert measured["size_bytes"] == result["size_bytes"] and list(measured["p50_ms_by_batch"]) == ["1"]
    assert measured["p50_ms_by_batch"]["1"] == pytest.approx(result["latency"][0]["p50_ms"])
    assert measured["quality"]["cosine_fidelity"] == pytest.approx(result["quality"]["cosine_fidelity"])
    text = (tmp_path / "measured" / "README.md").read_text()
    assert f"`{saved_run[:8]}`" in text and "| 1 |" in text
    # a variant no saved run of this machine measured (test_app imports a torchscript run from another CPU, or not yet)
    none = export_variant("minilm", "torchscript", tmp_path / "unmeasured").meta
    assert none["measured"] is None and ("no saved run has 'torchscript'" in none["measured_note"]
                                         or "'torchscript' of minilm on other CPUs only" in none["measured_note"])


def test_measured_summary_says_which_of_none_or_another_cpu_it_found(saved_run, tmp_path):
    from core.exporting.export import measured_summary

    run = history.load_run(saved_run)
    assert measured_summary("minilm", "embedding", "onnx-int8", root=tmp_path)[1].startswith("no saved run has 'onnx-int8'")
    elsewhere = json.loads(history.export_json(run))
    elsewhere["environment"]["cpu"] = "AMD EPYC 7B13 (another machine)"
    history.save_run(elsewhere, root=tmp_path)
    measured, note = measured_summary("minilm", "embedding", "onnx-int8", root=tmp_path)
    assert measured is None and "other CPUs only" in note
    history.save_run(run, root=tmp_path)   # the same run measured here: found, this CPU's
    measured, note = measured_summary("minilm", "embedding", "onnx-int8", root=tmp_path)
    assert note is None and measured["cpu"] == env.cpu_info()["model"]


# -- hosted limits -------------------------------------------------------------------------------------
def test_hosted_download_limits_in_words_and_counted_per_visitor(monkeypatch):
    monkeypatch.delenv("QLAB_HOSTED", raising=False)
    assert hosting.export_cap_bytes() is None and hosting.exports_per_visitor() is None and hosting.export_limits_words() is None
    for n in range(50):   # no limit locally
        hosting.take_export("visitor:local", f"minilm|embedding|v{n}")
    monkeypatch.setenv("QLAB_HOSTED", "1")
    monkeypatch.setenv("QLAB_EXPORTS_PER_VISITOR", "2")
    assert hosting.export_cap_bytes() == hosting.HOSTED_EXPORT_MB * 2**20
    assert hosting.export_limits_words(1) == "Downloads on this lab: each download is at most 300 MB and each visitor may prepare 2 downloads (1 left for you)."
    alice, bob = f"person:{uuid.uuid4().hex[:12]}", f"person:{uuid.uuid4().hex[:12]}"
    hosting.take_export(alice, "minilm|embedding|fp32")
    hosting.take_export(alice, "minilm|embedding|fp32")        # the same download again is free
    hosting.take_export(alice, "minilm|embedding|onnx-int8")
    assert hosting.exports_used(alice) == 2
    with pytest.raises(QlabError, match="limit per visitor") as refused:
        hosting.take_export(alice, "minilm|embedding|dynamic-int8")   # from any browser of hers: the count is hers
    assert "\n" not in str(refused.value)
    hosting.take_export(bob, "minilm|embedding|dynamic-int8")        # a colleague has his own allowance
    hosting.give_back_export(alice, "minilm|embedding|onnx-int8")    # a download that failed does not count
    hosting.take_export(alice, "minilm|embedding|dynamic-int8")
    assert hosting.exports_used(alice) == 2 and hosting.exports_used(bob) == 1


def test_size_cap_refuses_and_leaves_nothing(tmp_path, tiny_classifier_dir):
    with pytest.raises(ExportError, match="limited to 1 MB"):
        export_variant(str(tiny_classifier_dir), "fp32", tmp_path / "big", max_bytes=2**20)
    assert list(tmp_path.iterdir()) == []


# -- the dashboard ----------------------------------------------------------------------------------------
def test_compare_downloads_and_store_lists_exports(saved_run):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["run"] = saved_run
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    keys = [b.key for b in at.button]
    assert {"exp_prep_recommended", "exp_prep_row_fp32", "exp_prep_row_onnx-int8"} <= set(keys), keys
    assert not at.download_button   # nothing prepared yet in this fresh store
    at.button(key="exp_prep_row_onnx-int8").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    downloads = {d.key: d for d in at.download_button}
    assert "exp_dl_row_onnx-int8" in downloads and "MB zip" in downloads["exp_dl_row_onnx-int8"].label
    codes = [c.value for c in at.code]
    snippet_code = next(c for c in codes if 'ort.InferenceSession("model.onnx"' in c)
    assert len(snippet_code.splitlines()) <= MAX_LINES and "core" not in snippet_code
    made = exports.latest("minilm", "embedding", "onnx-int8", origin="dashboard")
    assert made and zipfile.is_zipfile(made["zip"]) and made["measured"]
    with zipfile.ZipFile(made["zip"]) as zf:
        assert snippet_from_readme(zf.read(f"{Path(made['folder']).name}/README.md").decode()) == snippet_code
    if history.load_run(saved_run)["recommended"]["variant"] == "onnx-int8":
        assert "exp_dl_recommended" in downloads      # the recommended card shares the prepared download
    else:
        assert "exp_prep_recommended" in [b.key for b in at.button]
    at.switch_page("pages/store.py").run()
    assert not at.exception
    assert "Exports" in [s.value for s in at.subheader]
    table = next(d.value for d in at.dataframe if "runtime" in d.value.columns)
    row = table[(table["variant"] == "onnx-int8") & (table["from"] == "dashboard")]
    assert len(row) == 1 and row["runtime"].iloc[0] == "numpy, onnxruntime, tokenizers" and row["on disk"].iloc[0] == "yes"
    assert row["folder"].iloc[0] == made["folder"]


def test_a_download_names_who_asked_for_it(saved_run):
    """With sign-in on, a download's record names the person (the Store page's "by" column reads it)."""
    rec = exports.prepare_download("minilm", "embedding", "onnx-int8", owner="person:0123abcd", owner_email="alice@example.com")
    listed = exports.latest("minilm", "embedding", "onnx-int8", origin="dashboard")
    assert listed["id"] == rec["id"] and (listed["owner"], listed["owner_email"]) == ("person:0123abcd", "alice@example.com")
    assert zipfile.is_zipfile(listed["zip"])


def test_hosted_compare_states_the_limits_and_applies_them(saved_run, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("QLAB_HOSTED", "1")
    monkeypatch.setenv("QLAB_EXPORTS_PER_VISITOR", "1")
    monkeypatch.setenv("QLAB_MAX_EXPORT_MB", "70")       # MiniLM onnx-int8 (~57 MB) fits, fp32 (~88 MB) does not
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["run"] = saved_run
    at.run()
    assert not at.exception
    assert any("each download is at most 70 MB and each visitor may prepare 1 download (1 left for you)" in c.value for c in at.caption)
    at.button(key="exp_prep_row_fp32").click().run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "downloads here are limited to 70 MB" in errors[0], errors
    assert os.environ["QLAB_CACHE_DIR"] not in errors[0]
    at.button(key="exp_prep_row_onnx-int8").click().run()
    assert not at.error, [e.value for e in at.error]
    assert "exp_dl_row_onnx-int8" in [d.key for d in at.download_button]
    assert at.button(key="exp_prep_row_fp32").disabled                     # the visitor's one download is used
    assert any("(0 left for you)" in c.value for c in at.caption)
    at.switch_page("pages/store.py").run()
    table = next(d.value for d in at.dataframe if "runtime" in d.value.columns)
    assert "folder" not in table.columns                                    # no server paths for visitors


def test_4_bit_and_group_wise_weight_only_are_refused_before_building(tmp_path):
    for spec in ("absmax-int4", "zeropoint-int4:group_size=64", "absmax-int8:granularity=group"):
        with pytest.raises(ExportError, match="cannot be exported yet .* export onnx-int4 for 4-bit weights"):
            export_variant("minilm", spec, tmp_path / spec.replace(":", "_"))
        assert not (tmp_path / spec.replace(":", "_")).exists()
