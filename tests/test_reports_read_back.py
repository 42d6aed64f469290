"""Every report the lab writes passes the validation it applies to imports (issue 26): a probe, notes and settings of
every family fit the report schema, and real runs of every task and both scenarios are saved, imported through
History and opened on Compare (tests/read_back.py). The cross-hardware case runs in tests/test_hardware_cluster.py,
on the cluster that module already starts.

The models are tiny random ones (code paths only, never evidence of quality or speed).
"""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from read_back import assert_reads_back

QUICK = {"warmup": 1, "min_iters": 3, "min_seconds": 0.02, "max_seconds": 0.5}


def test_every_family_probe_fits_the_report_schema():
    """What each family's runtime reports (llama.cpp's {version, system_info}, OpenVINO's devices and capabilities)
    and the whole hardware probe are what a report's ``hardware[].probe`` may hold."""
    from core.execution.hardware import probe
    from core.recipes.registry import FAMILIES
    from core.reporting.results import target_schema

    validator = Draft202012Validator(target_schema(None, True)["properties"]["probe"])
    info = probe()
    assert set(info["runtimes"]) == {f.name for f in FAMILIES if f.probe is not None} and info["runtimes"]
    problems = [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:100]}" for e in validator.iter_errors(info)]
    assert not problems, problems
    assert any(isinstance(v, dict) for r in info["runtimes"].values() for v in [r])   # nested objects: the case that broke
    assert not list(validator.iter_errors({"runtimes": {"x": {"y": {"z": [1, "a"]}}}}))   # three levels of objects under a field fit
    assert list(validator.iter_errors({"runtimes": {"x": {"y": {"z": {"w": 1}}}}}))        # a fourth does not


def test_a_report_the_import_refuses_is_never_saved(tmp_path):
    """The one writer refuses, in one line naming the field, a report its own import would refuse, and saves nothing."""
    from core.reporting.schema import ReportBug
    from core.storage import history
    from test_charts import classification_report

    rep = classification_report()
    rep["results"][0]["notes"] = ["x" * 5000]
    with pytest.raises(ReportBug, match=r"results\[0\]\.notes\[0\]: too long"):
        history.save_run(rep, root=tmp_path)
    assert not list((tmp_path / "runs").glob("*.json"))


def _lm_text(tmp_path):
    path = tmp_path / "lm.txt"
    path.write_text(" ".join(["Quantization maps floating point numbers onto a few integer levels.",
                              "The quick brown fox jumps over the lazy dog."] * 8))
    return str(path)


def _classification_csv(tmp_path):
    path = tmp_path / "reviews.csv"
    rows = ["text,label"] + [f"{t},{label}" for t, label in [("great film", "pos"), ("awful plot", "neg"), ("it was fine", "neu")] * 6]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["embedding", "classification", "causal-lm", "generation"])
def test_a_real_run_of_every_task_and_scenario_reads_back(case, tiny_embedder_dir, tiny_classifier_dir, tiny_gpt2_dir, tmp_path):
    """A real run (workers, stores, every family the task offers cheaply), saved, imported and opened on Compare."""
    from core.engine.evaluate import EvalConfig, run_evaluation

    configs = {
        "embedding": dict(task="embedding", model=str(tiny_embedder_dir), variants=["fp32", "onnx-int8", "openvino-fp32", "absmax-int4"]),
        "classification": dict(task="classification", model=str(tiny_classifier_dir), variants=["fp32", "dynamic-int8", "onnx-int8"],
                               data=_classification_csv(tmp_path)),
        "causal-lm": dict(task="causal-lm", model=str(tiny_gpt2_dir), variants=["fp32", "onnx-fp32"], data=_lm_text(tmp_path), max_length=32),
        "generation": dict(task="causal-lm", model=str(tiny_gpt2_dir), variants=["fp32", "absmax-int8"], data=_lm_text(tmp_path), max_length=32,
                           scenario="generate", prompt_lengths=[8], new_tokens=4),
    }
    report = run_evaluation(EvalConfig(**configs[case], batch_sizes=[1], seq_lengths=[8], protocol=QUICK))
    assert not [r["error"] for r in report["results"] if r.get("error")]
    if case != "generation":   # each timed variant says which kernels its matmuls ran with (or that its runtime does not say)
        lines = {r["variant"]: r["kernels"] for r in report["results"]}
        assert all(line and line.startswith(("matmuls: ", "matmul kernels: ")) for line in lines.values()), lines
        assert all(r["kernels"][1:] in " ".join(r["notes"]) for r in report["results"]), lines
        if "openvino-fp32" in lines:
            assert "[OpenVINO runtime graph: " in lines["openvino-fp32"], lines
    assert_reads_back(report)
