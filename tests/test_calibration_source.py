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
from core.errors import QlabError
from core.inputs import calibration

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


def test_the_calibration_set_spans_the_timed_lengths_in_any_first_n():
    """Static int8 sees activation ranges only where its calibration texts reach: the set keeps as many texts, some
    joined with their neighbours to about 24, 48 and 96 words, interleaved so the first 32 (static ONNX Runtime's) span
    them too; MiniLM's tokenizer then counts 12-128 tokens over the bundled sample."""
    from core.inputs.sources import load_tokenizer, resolve

    texts = calibration.default_texts("embedding")
    spread = calibration.calibration_set(texts)
    assert len(spread) == len(texts) and spread == calibration.job_texts(None, "embedding") == calibration.calibration_set(texts)
    assert [spread[i] for i in (0, 2, 4)] == [texts[i] for i in (0, 2, 4)]            # some texts stay as they are
    assert spread[1].startswith(texts[1]) and len(spread[1].split()) >= 24 and len(spread[5].split()) >= 96
    tok = load_tokenizer(resolve("minilm", "embedding"))

    def lengths(ts):
        return sorted(len(ids) for ids in tok(ts, truncation=True, max_length=128)["input_ids"])

    assert lengths(texts)[-1] < 32                                                      # the sample alone stops short of 32 tokens
    for first in (spread, spread[:32], spread[:8]):
        got = lengths(first)
        assert got[0] < 20 and any(28 <= n <= 48 for n in got) and any(56 <= n <= 80 for n in got) and got[-1] >= 110, got
    assert calibration.calibration_set(["one two", "three"]) == ["one two", "three one two"]   # a short list joins what it has
    assert calibration.job_texts(["  ", "mine"], "embedding") == ["mine"]


def test_the_calibration_set_recipe_is_part_of_calibrated_store_keys(monkeypatch, tiny_embedder_dir):
    from core.engine import variants
    from core.inputs.sources import resolve
    from core.recipes import RECIPES

    source = resolve(str(tiny_embedder_dir))
    int8, fp32 = RECIPES["onnx-int8-static"].defaults(), RECIPES["onnx-fp32"].defaults()
    before = variants.variant_key(source, "onnx-int8-static", int8), variants.variant_key(source, "onnx-fp32", fp32)
    monkeypatch.setattr(variants, "CALIBRATION_SET", "another-way")
    after = variants.variant_key(source, "onnx-int8-static", int8), variants.variant_key(source, "onnx-fp32", fp32)
    assert after[0] != before[0] and after[1] == before[1]   # calibrated variants rebuild; the others keep their entries


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
