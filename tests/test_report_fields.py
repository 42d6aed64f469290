"""Cell, result and report fields defined once (issue 17 part 5): the JSON Schema and the CSV columns derived from the
field definitions behave exactly as the hand-written ones did.

``tests/data/report_fields_before.json`` was captured from the hand-written schema and CSV code (main at ff1bcdb,
before the fields were derived): the schema with its task-declared parts left out, the one-line problem (or None)
that ``core.reporting.schema.check`` gave for every malformed report built below, whether ``Report.from_dict`` loaded the ones
the schema accepts, and the CSV of each saved report. The saved reports are tests/data/*.json (written by earlier
versions of the lab). Re-captured once since, on purpose: free information (a probe, an environment) may nest
objects three deep and hold strings of up to 2000 characters (llama.cpp's probe is {"version", "system_info"}); every
document refused before is still refused, 39 of them with the new limit or a deeper path in their words. And again
when the latency cells gained their output check (``out_*``) and the report ``recommended_by_batch``: the schema
only grew, and every verdict stayed the same. And when each result gained ``kernels`` (the kernels its matmuls ran
with, a CSV column after ``hardware``): the schema and the CSV only grew. And when embedding cells gained the
neighbours ranked within their batch (``out_retrieval_agreement``, ``out_similarity_spearman``): the schema only grew;
every verdict and every saved report's CSV stayed the same. And when generation cells gained the same check (``out_kl_mean``,
``out_kl_max``, ``out_agreement``, ``out_wrong``, ``out_positions``): the schema only grew.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
BEFORE = DATA / "report_fields_before.json"

# today's columns, spelled out by hand: the derived ones must keep the names and the order
CSV_COLUMNS_BEFORE = ["run_id", "task", "model", "variant", "batch_size", "seq_len", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms",
                      "throughput_per_s", "forward_p50_ms", "size_bytes", "param_bytes", "peak_rss_bytes", "load_s", "build_s", "cache_hit",
                      "hardware", "kernels"]
GENERATION_COLUMNS_BEFORE = ["prompt_len", "new_tokens", "ttft_ms", "decode_ms_per_token_p50", "decode_ms_per_token_p90", "tokens_per_s", "kv_cache",
                             "generation_agreement"]

BAD_VALUES = ["x", -1, 1e20, None, True, [], {"zz": {"deep": [{}]}}]


def saved_reports() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DATA.glob("*.json")) if p.name != BEFORE.name}


def cross_hardware_report() -> dict:
    """A report across two hardware targets (one lost), built from the saved embedding report."""
    rep = copy.deepcopy(saved_reports()["embedding_minilm_headline"])
    rep["results"] = [dict(r, hardware=t) for t in ("local", "node-b") for r in rep["results"][:2]]
    target = {"id": "local", "name": "this machine", "node_id": None, "cpu": "AMD EPYC", "arch": "x86_64", "cores": 2, "isa": ["avx2"],
              "gpu": None, "status": "ok", "error": None, "elapsed_s": 12.5, "probe": {"x": 1}, "environment": {"cpu": "AMD EPYC"},
              "reference": {"variant": "fp32", "quality": {"cosine_fidelity": 1.0}, "size_bytes": 90_000_000, "measured": True}}
    rep["hardware"] = [target, dict(target, id="node-b", status="lost", error="the node went away")]
    rep["recommended_by_hardware"] = {"local": {"variant": "fp32", "reason": "only one", "batch_size": 1}}
    return rep


def base_reports() -> dict[str, dict]:
    return {**saved_reports(), "cross_hardware": cross_hardware_report()}


def _paths(node, prefix=()):
    """Every path into the report worth breaking: top-level fields, the first result, its cells, throughput, targets."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "quality" or (len(prefix) >= 1 and prefix[-1] in ("settings", "environment", "data", "probe")):
                yield prefix + (k,)   # task-declared or free-form: the whole value only
                continue
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list) and node:
        yield from _paths(node[0], prefix + (0,))


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def cases():
    """(path, change, document) for every single-field change of the base reports (and an unknown field in each object)."""
    for name, base in base_reports().items():
        base = dict(base, results=base["results"][:2])
        for path in dict.fromkeys(_paths(base)):
            if name == "cross_hardware" and path[:1] not in (("hardware",), ("recommended_by_hardware",), ("results",)):
                continue
            if not path:
                continue
            parent = _get(base, path[:-1])
            for k, value in enumerate(BAD_VALUES + ["<deleted>"]):
                doc = copy.deepcopy(base)
                target = _get(doc, path[:-1])
                if value == "<deleted>":
                    if not isinstance(parent, dict):
                        continue
                    del target[path[-1]]
                else:
                    target[path[-1]] = copy.deepcopy(value)
                yield f"{name}:{'/'.join(map(str, path))}", str(k), doc
            if isinstance(_get(base, path), dict):
                doc = copy.deepcopy(base)
                _get(doc, path)["zz_unknown"] = 1
                yield f"{name}:{'/'.join(map(str, path))}", "unknown", doc


def outcome(strict: bool, doc: dict) -> list:
    """[the schema's one-line problem or None, how the loader took an accepted report]."""
    from core.reporting.results import Report
    from core.reporting.schema import check

    problem = check(doc, strict=strict)
    loaded = None
    if problem is None:
        try:
            Report.from_dict(copy.deepcopy(doc))
            loaded = "ok"
        except Exception as err:   # noqa: BLE001 - the kind of failure is the thing recorded
            loaded = type(err).__name__
    return [problem, loaded]


def both(doc: dict) -> list:
    """The outcome of a strict check (an import) and of a lenient one (a run saved here), once when they agree."""
    strict, saved = outcome(True, doc), outcome(False, doc)
    return [strict] if strict == saved else [strict, saved]


def _grouped(rows) -> dict:
    out: dict = {}
    for where, change, result in rows:
        out.setdefault(where, {})[change] = result
    return out


def _untasked(node):
    """The schema without the parts each task declares (its quality metrics, budgets, the task names)."""
    if isinstance(node, dict):
        return {k: "<task>" if k in ("quality", "budgets", "task") and isinstance(v, dict) and ("properties" in v or "enum" in v) else _untasked(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_untasked(v) for v in node]
    return node


def capture() -> dict:
    """What tests/data/report_fields_before.json holds (run once on the hand-written code)."""
    from core.reporting.csv_export import report_to_csv
    from core.reporting.schema import schema

    return {"schema": {str(strict): _untasked(schema(None, strict)) for strict in (True, False)},
            "cases": _grouped((where, change, both(doc)) for where, change, doc in cases()),
            "csv": {name: report_to_csv(rep) for name, rep in base_reports().items()}}


@pytest.fixture(scope="module")
def before():
    return json.loads(BEFORE.read_text())


def test_csv_columns_keep_their_names_and_order():
    from core.reporting.csv_export import CSV_COLUMNS, GENERATION_COLUMNS

    assert CSV_COLUMNS == CSV_COLUMNS_BEFORE
    assert GENERATION_COLUMNS == GENERATION_COLUMNS_BEFORE


def test_schema_is_the_same_as_before(before):
    from core.reporting.schema import schema

    for strict in (True, False):
        assert json.loads(json.dumps(_untasked(schema(None, strict)))) == before["schema"][str(strict)]
        for task in ("embedding", "classification", "causal-lm"):
            assert json.loads(json.dumps(_untasked(schema(task, strict)))) == before["schema"][str(strict)]


def test_saved_reports_are_accepted_and_export_the_same_csv(before):
    from core.reporting.csv_export import report_to_csv
    from core.reporting.results import Report, report_to_json
    from core.reporting.schema import check

    for name, rep in base_reports().items():
        assert check(rep, strict=True) is None and check(rep, strict=False) is None, name
        assert report_to_csv(rep) == before["csv"][name], name
        loaded = Report.from_dict(copy.deepcopy(rep))
        assert json.loads(report_to_json(loaded)) == json.loads(json.dumps(Report.from_dict(copy.deepcopy(rep)).to_dict()))
        assert report_to_csv(loaded) == report_to_csv(Report.from_dict(json.loads(report_to_json(loaded)))) == before["csv"][name]


def test_malformed_reports_get_the_same_verdict_and_words(before):
    expected = before["cases"]
    seen = 0
    for where, change, doc in cases():
        assert both(doc) == expected[where][change], (where, change)
        seen += 1
    assert seen == sum(map(len, expected.values())) > 1000


def test_history_import_of_saved_reports(tmp_path):
    """``python -m core history import`` of each saved report, then its CSV export: the same CSV as the report's own."""
    from core.reporting.csv_export import report_to_csv

    env = {**os.environ, "QLAB_CACHE_DIR": str(tmp_path)}
    for path in sorted(DATA.glob("*.json")):
        if path.name == BEFORE.name:
            continue
        out = subprocess.run([sys.executable, "-m", "core", "history", "import", str(path), "--json"], capture_output=True, text=True, env=env,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        run_id = json.loads(out.stdout)["run_id"]
        csv_out = subprocess.run([sys.executable, "-m", "core", "history", "export", run_id, "--format", "csv"], capture_output=True, text=True,
                                 env=env, timeout=120)
        assert csv_out.returncode == 0, csv_out.stderr
        assert csv_out.stdout.splitlines() == report_to_csv(dict(json.loads(path.read_text()), run_id=run_id)).splitlines()


def test_every_field_is_declared_with_its_words():
    """Each field says what it is; every result and cell field has its own schema entry (the throughput's counters
    and the report's free-form parts are the documented exceptions: checked as extra info, as before)."""
    from dataclasses import fields

    from core.reporting.cells import GenerationCell, LatencyCell
    from core.reporting.fields import describe
    from core.reporting.results import Report, VariantResult
    from core.reporting.throughput import DatasetThroughput, ThroughputMode

    for cls in (LatencyCell, GenerationCell, ThroughputMode, DatasetThroughput, VariantResult, Report):
        assert all(d["doc"] for d in describe(cls)), cls.__name__
    for cls in (LatencyCell, GenerationCell, VariantResult, Report):
        assert all(f.metadata["schema"] is not None for f in fields(cls)), cls.__name__
    assert [d["name"] for d in describe(LatencyCell) if d["csv"] is not None and d["csv"] < 100] == CSV_COLUMNS_BEFORE[4:13]
    assert [d["name"] for d in describe(LatencyCell) if d["csv"] is not None and d["csv"] >= 200] == [   # the output check's columns
        "out_cosine_mean", "out_cosine_min", "out_agreement", "out_max_logit_diff", "out_kl_mean", "out_kl_max", "out_wrong",
        "out_retrieval_agreement", "out_similarity_spearman"]


def test_dataset_throughput_has_one_parser_for_every_shape():
    from core.reporting.results import VariantResult
    from core.reporting.throughput import DatasetThroughput, throughput_summary

    new = {"sorted": {"texts_per_s": 412.0, "texts_per_s_min": 398.0, "texts_per_s_max": 420.0, "passes": 5, "padding_fraction": 0.04,
                      "seconds": 0.3, "texts": 120, "batches": 4, "tokens": 900, "tokens_fed": 940},
           "unsorted": {"texts_per_s": 300.0, "texts_per_s_min": 290.0, "texts_per_s_max": 310.0, "passes": 5, "padding_fraction": 0.41,
                        "seconds": 0.4, "texts": 120, "batches": 4, "tokens": 900, "tokens_fed": 1500},
           "batch_size": 32, "warmup_batches": 2}
    old = saved_reports()["embedding_minilm_headline"]["results"][0]["dataset_throughput"]   # one pass per mode, Nov 2026
    for shape in (new, old, {}, {"sorted": {"texts_per_s": None, "zz": [1]}, "later": {"a": 1}}):
        dt = DatasetThroughput.from_dict(shape)
        assert dt.to_dict() == shape and dt == shape and dict(dt) == shape          # written back as it came, and reads like it
        assert DatasetThroughput.from_dict(json.loads(json.dumps(dt.to_dict()))) == dt
    dt = DatasetThroughput.from_dict(new)
    assert dt.sorted.passes == 5 and dt["sorted"]["passes"] == 5 and dt.mode("unsorted").rate("texts_per_s_max") == 310.0
    assert dt.batch_size == 32 and set(dt) == set(new)
    # older and odder shapes, read the same wherever they are read: a bare number is a texts/s, throughput_per_s its older name
    legacy = DatasetThroughput.from_dict({"sorted": 100, "unsorted": {"throughput_per_s": 80}, "batch_size": 8})
    assert legacy.sorted.texts_per_s == 100 and legacy.unsorted.texts_per_s == 80
    assert throughput_summary({"sorted": 100, "unsorted": {"throughput_per_s": 80}})["gain"] == pytest.approx(1.25)
    assert DatasetThroughput.from_dict({"sorted": "fast"}).mode("sorted").rate() is None and throughput_summary({"sorted": "fast"}) is None
    assert DatasetThroughput.from_dict(None) == {} and DatasetThroughput.from_dict([1]) == {}
    # in a result: typed, from the engine's dict or a report's; an unmeasured one is empty, a null one stays null
    r = VariantResult.from_dict({"variant": "fp32", "dataset_throughput": new})
    assert isinstance(r.dataset_throughput, DatasetThroughput) and r.to_dict()["dataset_throughput"] == new
    assert VariantResult(variant="x", dataset_throughput=new).dataset_throughput.sorted.texts == 120
    assert VariantResult.from_dict({"variant": "fp32"}).to_dict()["dataset_throughput"] == {}
    assert VariantResult.from_dict({"variant": "fp32", "dataset_throughput": None}).to_dict()["dataset_throughput"] is None


if __name__ == "__main__":   # python tests/test_report_fields.py --capture: rewrite the file of captured behaviour
    if sys.argv[1:] == ["--capture"]:
        BEFORE.write_text(json.dumps(capture(), indent=0, sort_keys=True, separators=(",", ":")) + "\n")
