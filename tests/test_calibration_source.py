"""What static int8 calibrates on (``--calibration sample|data``, the Models & variants page's "Calibrate static int8
on"): the bundled sample, held out from the texts quality is measured on, or the run's own first 64 texts.

A tiny randomly initialised embedder built from a config runs the real CLI end to end: this checks the plumbing
(store keys, notes, settings), never quality or speed.
"""

from __future__ import annotations

import json
import uuid

import pytest

from conftest import run_cli
from core import calibration
from core.errors import QlabError

pytest.importorskip("openvino")

TEXTS = [f"Sentence number {i} talks about {topic}." for i, topic in
         enumerate(["rates", "frogs", "football", "code", "rain", "trains", "music", "bread", "ships", "maps"] * 3)]


def test_run_texts_are_the_first_64_non_empty_and_unknown_sources_are_refused():
    texts = ["", "  "] + [f"t{i}" for i in range(100)]
    assert calibration.run_texts("sample", texts) == []
    assert calibration.run_texts("data", texts) == [f"t{i}" for i in range(64)]
    with pytest.raises(QlabError, match="Unknown calibration source 'held-in': use one of sample, data") as err:
        calibration.run_texts("held-in", texts)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_calibrating_on_the_run_s_own_texts_builds_its_own_entry_and_says_so(tmp_path, tiny_embedder_dir):
    data = tmp_path / "texts.csv"
    data.write_text("text\n" + "\n".join(TEXTS + [f"A text no other test has: {uuid.uuid4().hex}."]) + "\n")
    reports = {}
    for source in ("data", "sample", "data"):
        out = tmp_path / f"{source}-{len(reports)}.json"
        proc = run_cli("evaluate", "--model", str(tiny_embedder_dir), "--task", "embedding", "--variants", "fp32,onnx-int8,openvino-int8",
                       "--data", str(data), "--calibration", source, "--batch-sizes", "1", "--seq-lengths", "8", "--warmup", "0",
                       "--min-iters", "1", "--min-seconds", "0", "--max-seconds", "1", "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        reports[out.stem] = json.loads(out.read_text())
    first, sample, again = (reports[k] for k in ("data-0", "sample-1", "data-2"))
    by = {name: {r["variant"]: r for r in rep["results"]} for name, rep in (("first", first), ("sample", sample), ("again", again))}
    assert first["settings"]["calibration"] == "data" and sample["settings"]["calibration"] == "sample"
    assert any("this run's own texts" in n for n in by["first"]["openvino-int8"]["notes"]), by["first"]["openvino-int8"]["notes"]
    assert any("the bundled calibration sample" in n for n in by["sample"]["openvino-int8"]["notes"]), by["sample"]["openvino-int8"]["notes"]
    assert any(f"from {len(TEXTS) + 1} calibration texts (this run's own texts)" in n for n in by["first"]["openvino-int8"]["notes"])
    # the calibrated variant is built for these texts (no other run had them), then found again; the dynamic one
    # does not depend on them: the sample run and the second run find it
    assert not by["first"]["openvino-int8"]["cache_hit"] and by["again"]["openvino-int8"]["cache_hit"]
    assert by["sample"]["onnx-int8"]["cache_hit"] and by["again"]["onnx-int8"]["cache_hit"]


def test_the_cli_refuses_an_unknown_source_in_one_line(tiny_embedder_dir):
    proc = run_cli("evaluate", "--model", str(tiny_embedder_dir), "--task", "embedding", "--variants", "fp32", "--calibration", "everything")
    assert proc.returncode == 2 and "Unknown calibration source 'everything'" in proc.stderr
    assert "Traceback" not in proc.stderr
