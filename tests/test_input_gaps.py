"""Small input gaps (issue 10, section 5), the hosting limits' variables, and ``python -m core history``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.access import hosting
from core.errors import DataError, QlabError
from core.inputs import data
from core.measure import bench
from core.storage import history

ROOT = Path(__file__).resolve().parent.parent


# -- section 5 ------------------------------------------------------------------------------------------
def test_unicode_digits_in_labels():
    generic = ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert data.map_labels(["٢", "1", " ０ "], generic) == [2, 1, 0]   # Arabic-Indic two, fullwidth zero: decimal digits
    with pytest.raises(DataError) as info:
        data.map_labels(["²"], generic)                                  # a superscript is a digit but not a number
    assert "'²'" in str(info.value) and "\n" not in str(info.value)


def test_importing_the_data_module_leaves_the_process_csv_limit_alone():
    code = "import csv; before = csv.field_size_limit(); import core.inputs.data; print(before == csv.field_size_limit())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert out.stdout.strip() == "True", out.stderr[-500:]


def test_a_cell_longer_than_csvs_default_still_parses():
    import csv

    limit = csv.field_size_limit()
    cell = "word " * 60_000   # 300 KB, over csv's 128 KB default
    ds = data.load_dataset(f'text\n"{cell}"\nshort\n'.encode(), "embedding", name="long.csv")
    assert ds.rows == 2 and len(ds.texts[0]) == len(cell.strip())
    assert csv.field_size_limit() == limit


@pytest.mark.parametrize("blob", [b"[" * 100_000 + b"]" * 100_000, b'[{"text": ' + b'{"a": ' * 30 + b"1" + b"}" * 30 + b"}]"])
def test_deeply_nested_json_data_is_one_line(blob):
    with pytest.raises(DataError) as info:
        data.load_dataset(blob, "embedding", name="deep.json")
    assert "nested too deeply" in str(info.value) and "\n" not in str(info.value)


class CountingTokenizer:
    """The MiniLM tokenizer, counting the strings it is asked to tokenize."""

    def __init__(self):
        from transformers import AutoTokenizer

        from tiny_models import minilm_tokenizer_dir

        self.tok = AutoTokenizer.from_pretrained(str(minilm_tokenizer_dir()))
        self.calls: list[str] = []

    def __call__(self, text, **kwargs):
        self.calls.append(text)
        return self.tok(text, **kwargs)


def test_cell_texts_tokenizes_each_text_once_not_the_growing_string():
    texts = data.load_dataset(data.sample_path("embedding"), "embedding").texts
    tok = CountingTokenizer()
    out = bench.cell_texts(tok, texts, batch_size=8, seq_len=256)
    assert all(len(tok.tok(t, add_special_tokens=False)["input_ids"]) == 256 for t in out)
    joined_calls = [c for c in tok.calls if c not in texts]
    assert len(joined_calls) == 8                                   # each row's joined text: once, to trim it
    assert len([c for c in tok.calls if c in texts]) <= len(texts)  # each data text: at most once


def test_cached_page_functions_key_on_the_fingerprint():
    """A Streamlit cache ignores parameters whose name starts with '_': a fingerprint must never be one of them."""
    for page in [*(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]:
        for node in ast.walk(ast.parse(page.read_text())):
            if isinstance(node, ast.FunctionDef) and any("cache" in ast.unparse(d) for d in node.decorator_list):
                names = [a.arg for a in node.args.args]
                assert not [n for n in names if n.startswith("_") and "fingerprint" in n], (page.name, node.name, names)


# -- limits and their variables -----------------------------------------------------------------------------
def test_limits_have_defaults_and_variables(monkeypatch):
    monkeypatch.setenv("QLAB_HOSTED", "1")
    for limit in hosting.LIMITS:
        monkeypatch.delenv(limit.env, raising=False)
    pol = hosting.policy()
    assert (pol.max_rows, pol.max_variants, pol.jobs_per_visitor, pol.max_queue, pol.job_wall_s) == (2000, 6, 2, 8, 900)
    monkeypatch.setenv("QLAB_MAX_ROWS", "10")
    monkeypatch.setenv("QLAB_MAX_QUEUE", "not a number")   # a typo keeps the default, never lifts the limit
    monkeypatch.setenv("QLAB_JOB_WALL_S", "0")
    pol = hosting.policy()
    assert (pol.max_rows, pol.max_queue, pol.job_wall_s) == (10, 8, 900)
    table = {row["variable"]: row for row in pol.limits_table()}
    assert table["QLAB_MAX_ROWS"]["value"] == "10 rows" and table["QLAB_MAX_ROWS"]["default"] == "2,000 rows"
    assert set(table) >= {limit.env for limit in hosting.LIMITS}
    monkeypatch.setenv("QLAB_HOSTED", "0")
    assert hosting.policy().max_queue is None and hosting.policy().jobs_per_visitor is None   # local: no queue caps


@pytest.mark.parametrize("text, ok", [
    ("dynamic-int8:engine=qnnpack, absmax-int8:granularity=tensor", True),
    ("onnx-int8-mixed:target=0.999:max_fp32=4", True),
    ("fp32, [x](http://evil)", False),
    ("<b>fp32</b>", False),
    ("fp32:engine=x86;rm -rf /", False),
    (":material/star:", False),
])
def test_the_accepted_form_of_extra_specs(text, ok):
    if ok:
        assert hosting.parse_extra_specs(text)
    else:
        with pytest.raises(QlabError, match="accepted form"):
            hosting.parse_extra_specs(text)


def test_visitor_key():
    assert hosting.visitor_key("203.0.113.7", "s1") == hosting.visitor_key("203.0.113.7", "s2")   # one address, one visitor
    assert hosting.visitor_key("127.0.0.1", "s1") != hosting.visitor_key("127.0.0.1", "s2")       # local proxy: per session
    assert hosting.visitor_key(object(), "s1").startswith("session:")                              # no real address


# -- python -m core history ----------------------------------------------------------------------------------
def test_cli_history_list_import_export(cli, tmp_path):
    from test_charts import classification_report

    report_file = tmp_path / "theirs.json"
    report_file.write_text(history.export_json(classification_report()))
    done = cli("history", "import", str(report_file), "--json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    listed = cli("history", "list", "--json")
    assert run_id in [r["run_id"] for r in json.loads(listed.stdout)]
    table = cli("history", "list")
    assert run_id in table.stdout and "minilm-classifier" in table.stdout
    exported = cli("history", "export", run_id[:10], "--json")
    assert exported.returncode == 0 and json.loads(exported.stdout)["model"] == "minilm-classifier"
    csv_out = tmp_path / "out.csv"
    assert cli("history", "export", run_id, "--format", "csv", "--out", str(csv_out)).returncode == 0
    assert csv_out.read_text().startswith("run_id,task,model,variant")


@pytest.mark.parametrize("args, words", [
    (("history", "import", "/no/such/report.json"), "does not exist"),
    (("history", "export", "zz"), "is not a run id"),
    (("history", "export", "0000"), "saved run starts with '0000'"),
    (("history", "frobnicate"), "invalid choice"),
])
def test_cli_history_bad_input_exits_2_with_one_line(cli, args, words):
    done = cli(*args)
    assert done.returncode == 2 and words in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_cli_history_import_refuses_a_crafted_report(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"task": "embedding", "model": "m", "created": 1e20, "results": [{"variant": "fp32"}]}))
    done = cli("history", "import", str(bad))
    assert done.returncode == 2 and "created" in done.stderr and len(done.stderr.strip().splitlines()) == 1
