"""Saved runs, result cache keys, imports and exports (core/storage/history.py)."""

from __future__ import annotations

import json
import pickle
import re
import uuid

import pytest

from core.charts import html_report
from core.reporting.results import report_from_json
from core.storage import history
from test_charts import classification_report


def test_save_and_load_round_trip(tmp_path):
    rep = classification_report()
    rep["results"][0]["quality"]["f1_macro"] = float("nan")   # a known metric the run could not compute
    run_id = history.save_run(rep, key="k1", root=tmp_path)
    assert uuid.UUID(hex=run_id).version == 4 and len(run_id) == 32
    path = tmp_path / "runs" / f"{run_id}.json"
    text = path.read_text()
    assert "NaN" not in text  # strict JSON: NaN is written as null
    loaded = history.load_run(run_id, root=tmp_path)
    assert loaded["run_id"] == run_id and loaded["model"] == "minilm-classifier"
    assert loaded["results"][0]["quality"]["f1_macro"] is None
    assert loaded[history.HISTORY_KEY]["config_key"] == "k1"
    assert history.find_cached("k1", root=tmp_path) == run_id
    assert history.find_cached("other", root=tmp_path) is None
    history.delete_run(run_id, root=tmp_path)
    assert history.find_cached("k1", root=tmp_path) is None  # a deleted run is not a cache hit


def test_engine_run_ids_are_kept_but_never_reused(tmp_path):
    rep = classification_report()
    rep["run_id"] = uuid.uuid4().hex
    first = history.save_run(rep, root=tmp_path)
    assert first == rep["run_id"]
    second = history.save_run(rep, root=tmp_path)  # same report saved again: a new id, the first file is untouched
    assert second != first and history.load_run(first, root=tmp_path)["run_id"] == first


@pytest.mark.parametrize("bad", ["../../etc/passwd", "", "A" * 32, "abc", None])
def test_bad_run_ids_are_refused(tmp_path, bad):
    with pytest.raises(history.HistoryError):
        history.load_run(bad, root=tmp_path)


def test_unknown_run_is_a_one_line_error(tmp_path):
    with pytest.raises(history.HistoryError) as info:
        history.load_run(uuid.uuid4().hex, root=tmp_path)
    assert "\n" not in str(info.value) and "import" in str(info.value)


def test_config_key():
    machine = {"cpu": "x", "cores": 2}
    cfg = {"task": "embedding", "model": "minilm", "variants": ["fp32"], "batch_sizes": [1]}
    k = history.config_key(cfg, "d1", machine=machine)
    assert k == history.config_key(dict(cfg, data="/tmp/somewhere/else.csv"), "d1", machine=machine)  # the temp path does not matter
    assert k != history.config_key(cfg, "d2", machine=machine)                                        # the data's content does
    assert k != history.config_key(dict(cfg, variants=["fp32", "onnx-int8"]), "d1", machine=machine)
    assert k != history.config_key(cfg, "d1", machine={"cpu": "y", "cores": 2})                       # so does the machine


def test_list_runs_newest_first_and_filtered(tmp_path):
    a = classification_report()
    a["created"] = "2026-01-01T00:00:00+00:00"
    b = classification_report()
    b["created"] = "2026-02-01T00:00:00+00:00"
    ia, ib = history.save_run(a, root=tmp_path), history.save_run(b, root=tmp_path)
    (tmp_path / "runs" / "not-a-run.json").write_text("{}")
    (tmp_path / "runs" / f"{uuid.uuid4().hex}.json").write_text("garbage")
    assert [r["run_id"] for r in history.list_runs(root=tmp_path)] == [ib, ia]
    assert [r["run_id"] for r in history.list_runs(root=tmp_path, ids=[ia, "../x"])] == [ia]


def test_import_a_colleagues_report(tmp_path):
    rep = classification_report()
    blob = history.export_json(rep).encode()
    run_id = history.import_report(blob, "theirs.json", root=tmp_path)
    loaded = history.load_run(run_id, root=tmp_path)
    assert loaded[history.HISTORY_KEY]["imported"] is True
    assert loaded[history.HISTORY_KEY]["origin_run_id"] == rep["run_id"]
    assert run_id != rep["run_id"]
    assert history.list_runs(root=tmp_path)[0]["imported"] is True


@pytest.mark.parametrize("blob, words", [
    (pickle.dumps({"task": "x"}), "pickle"),
    (b"", "empty"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "top level"),
    (json.dumps({"task": "embedding", "model": "m", "results": []}).encode(), "non-empty"),
    (json.dumps({"task": "embedding", "model": "m", "results": [{"variant": "fp32", "latency": [{"batch_size": "1", "seq_len": 8}]}]}).encode(),
     "batch_size: '1' is not an integer"),
    (json.dumps({"task": "embedding", "model": "m", "results": [{"variant": "fp32", "size_bytes": "big"}]}).encode(), "size_bytes: 'big' is not an integer"),
    (json.dumps({"task": "embedding", "model": "m", "results": [{"variant": "fp32", "dataset_throughput": [1]}]}).encode(), "dataset_throughput"),
])
def test_bad_imports_are_refused_with_one_line(tmp_path, blob, words):
    with pytest.raises(history.HistoryError) as info:
        history.import_report(blob, "x.json", root=tmp_path)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert not list((tmp_path / "runs").glob("*.json"))


def test_import_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "MAX_IMPORT_BYTES", 100)
    with pytest.raises(history.HistoryError, match="at most"):
        history.import_report(b"{" + b" " * 200 + b"}", "big.json", root=tmp_path)


def test_exports():
    rep = classification_report()
    rep[history.HISTORY_KEY] = {"config_key": "secret"}
    js = history.export_json(rep)
    assert "config_key" not in js
    assert report_from_json(js).model == "minilm-classifier"  # the engine's own reader accepts our JSON
    csv_text = history.export_csv(rep)
    header = csv_text.splitlines()[0]
    assert header.startswith("run_id,task,model,variant,batch_size,seq_len,p50_ms")
    assert sum(1 for line in csv_text.splitlines() if ",onnx-int8," in line) == 4   # 2 batch sizes x 2 lengths


def test_html_export_is_standalone_and_offline():
    html = html_report.export_html(classification_report())
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]*\bsrc=", html)               # no script is fetched: plotly.js is inline, it opens offline
    assert len(html) > 1_000_000 and "Plotly.newPlot" in html        # ... which makes it a few MB
    assert html.count('class="plotly-graph-div"') == 5
    assert "3.0x faster, 4.0x smaller, -0.4 pt accuracy" in html
    assert "Test CPU" in html


def test_html_export_shows_the_whole_dataset_throughput():
    from test_charts import SPREADS, throughput

    html = html_report.export_html(throughput(SPREADS, batch=32))
    assert "<h2>Whole-dataset throughput</h2>" in html and "at batch 32" in html and "over 5 alternated passes per mode" in html
    assert "<td>onnx-int8</td><td>300 [250-320]</td><td>290 [240-310]</td><td>5</td><td>38% -&gt; 5%</td><td>no difference within noise" in html
    assert "sorted 1.33x faster; padding 38% of tokens unsorted -&gt; 5% sorted" in html

