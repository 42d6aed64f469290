"""The execution layer without a cluster: the local launcher's process hygiene, target choice, merging reports of
several targets, and the cross-hardware view on Compare (AppTest) from such a report."""

from __future__ import annotations

import json
import sys
import textwrap
import time

import psutil
import pytest

from core.errors import QlabError
from core.execution import events, local
from core.execution.targets import choose, merge_reports, parse_selection

ARM = {"id": "arm-box", "name": "arm-box", "node_id": "b" * 56, "cpu": "Neoverse-N1", "arch": "aarch64", "cores": 4,
       "isa": ["neon", "asimd", "asimddot"], "gpu": None, "alive": True}
VNNI = {"id": "epyc-vnni", "name": "epyc-vnni", "node_id": "a" * 56, "cpu": "AMD EPYC 9654", "arch": "x86_64", "cores": 2,
        "isa": ["avx2", "avx512f", "avx512_vnni"], "gpu": None, "alive": True, "this_machine": True}


def test_event_lines_round_trip_and_other_lines_are_ignored():
    line = events.encode({"variant": "fp32", "phase": "latency", "fraction": 0.5})
    assert line.startswith(events.EVENT_PREFIX) and line.endswith("\n")
    assert events.decode(line) == {"variant": "fp32", "phase": "latency", "fraction": 0.5}
    assert events.decode("some library printed this\n") is None and events.decode(events.EVENT_PREFIX + "{not json\n") is None
    phases = ("build", "quality", "latency", "done")
    assert [events.phase_start(p) for p in phases] == sorted(events.phase_start(p) for p in phases)


def _script(tmp_path, body: str) -> str:
    folder = tmp_path / "mods"
    folder.mkdir(exist_ok=True)
    (folder / "qlab_probe_child.py").write_text(textwrap.dedent(body))
    return str(folder)


def test_cancel_ends_the_whole_process_tree(tmp_path):
    # a child that starts a grandchild in a session of its own (as a measuring worker does), then reports and waits
    mods = _script(tmp_path, f"""
        import subprocess, sys, time
        sys.path.insert(0, {str(local.PROJECT_ROOT)!r})
        from core.execution.events import encode
        grand = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
        sys.stdout.write(encode({{"phase": "latency", "fraction": 0.1, "message": "grandchild", "pid": grand.pid}}))
        sys.stdout.flush()
        time.sleep(120)
    """)
    env = local.project_env({"PYTHONPATH": mods})
    seen, stop = [], {"now": False}

    def on_event(event):
        seen.append(event)
        stop["now"] = True

    started = time.time()
    with pytest.raises(events.Cancelled):
        local.run("qlab_probe_child", env=env, on_event=on_event, should_stop=lambda: stop["now"], grace_s=2.0)
    assert time.time() - started < 60
    grand = seen[0]["pid"]
    deadline = time.time() + 10
    while psutil.pid_exists(grand) and psutil.Process(grand).status() != psutil.STATUS_ZOMBIE and time.time() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(grand) or psutil.Process(grand).status() == psutil.STATUS_ZOMBIE


def test_a_child_dies_with_its_parent(tmp_path):
    # kill -9 of the process that launched a worker must not leave the worker computing
    mods = _script(tmp_path, f"""
        import sys, time
        sys.path.insert(0, {str(local.PROJECT_ROOT)!r})
        from core.execution.local import LocalProcess
        worker = LocalProcess([sys.executable, "-c", "import time; time.sleep(120)"])
        print(worker.pid, flush=True)
        time.sleep(120)
    """)
    import subprocess

    parent = subprocess.Popen([sys.executable, "-m", "qlab_probe_child"], env=local.project_env({"PYTHONPATH": mods}), stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    assert psutil.pid_exists(worker)
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while psutil.pid_exists(worker) and psutil.Process(worker).status() != psutil.STATUS_ZOMBIE and time.time() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE


def test_choosing_targets():
    targets = [VNNI, ARM, dict(ARM, id="gone", name="gone", alive=False)]
    assert parse_selection(None) == ["local"] and parse_selection("a, b,a") == ["a", "b"]
    assert [t["id"] for t in choose(["all"], targets)] == ["epyc-vnni", "arm-box"]
    assert [t["id"] for t in choose(["local"], targets)] == ["epyc-vnni"]            # this machine, as its node
    assert [t["id"] for t in choose(["arm-box", "local"], targets)] == ["arm-box", "epyc-vnni"]
    with pytest.raises(QlabError, match="Unknown hardware target 'nope'; the targets are: epyc-vnni, arm-box, gone"):
        choose(["nope"], targets)
    with pytest.raises(QlabError, match="Hardware target gone is not alive"):
        choose(["gone"], targets)
    with pytest.raises(QlabError, match="not offered on this hosted lab"):
        choose(["arm-box"], targets, allowed=["local"])
    assert [t["id"] for t in choose(["local"], targets, allowed=["local"])] == ["epyc-vnni"]


def test_hosted_allow_list(monkeypatch):
    from core.access import hosting

    monkeypatch.delenv("QLAB_HOSTED", raising=False)
    assert hosting.allowed_hardware() is None
    monkeypatch.setenv("QLAB_HOSTED", "1")
    monkeypatch.delenv("QLAB_HARDWARE_ALLOW", raising=False)
    assert hosting.allowed_hardware() == ["local"]
    monkeypatch.setenv("QLAB_HARDWARE_ALLOW", "edge-1, arm-box")
    assert hosting.allowed_hardware() == ["edge-1", "arm-box"]


def cross_report(lost: bool = False) -> dict:
    """Two targets measured the same comparison: int8 pays off on the VNNI machine, not on the ARM box."""
    from core.reporting.recommend import recommend
    from test_app import embedding_report
    from test_charts import result

    fast = embedding_report()
    fast["environment"] = {"cpu": VNNI["cpu"], "threads": 2, "cores": 2, "device": "cpu", "node_id": VNNI["node_id"]}
    slow = embedding_report()
    slow["environment"] = {"cpu": ARM["cpu"], "threads": 4, "cores": 4, "device": "cpu", "node_id": ARM["node_id"]}
    slow["results"] = [result("fp32", size_mb=86.7, speed=1.0, quality={"cosine_fidelity": 1.0}),
                       result("onnx-int8", size_mb=22.0, speed=1.1, quality={"cosine_fidelity": 0.9935}),
                       result("dynamic-int8", size_mb=30.0, speed=0.9, quality={"cosine_fidelity": 0.997})]
    slow["recommended"] = recommend(slow["results"], "embedding", slow["budgets"], 1)
    outcomes = {"epyc-vnni": {"status": "ok", "report": fast},
                "arm-box": {"status": "lost", "error": "node lost during onnx-int8 (latency)"} if lost else {"status": "ok", "report": slow}}
    return merge_reports([VNNI, ARM], outcomes)


def test_merged_report_keeps_every_target_and_tags_rows():
    from core.reporting.compare import cross_hardware_rows
    from core.reporting.csv_export import report_to_csv
    from core.reporting.results import Report
    from core.reporting.table import format_table

    merged = cross_report()
    assert [t["id"] for t in merged["hardware"]] == ["epyc-vnni", "arm-box"]
    assert {(r["hardware"], r["variant"]) for r in merged["results"]} == {(h, v) for h in ("epyc-vnni", "arm-box")
                                                                        for v in ("fp32", "onnx-int8", "dynamic-int8")}
    assert merged["recommended_by_hardware"]["epyc-vnni"]["variant"] == "onnx-int8"
    assert merged["recommended_by_hardware"]["arm-box"]["variant"] == "dynamic-int8"
    rows = {(r["hardware"], r["variant"]): r for r in cross_hardware_rows(merged, 1)}
    assert rows[("epyc-vnni", "onnx-int8")]["speedup"] == pytest.approx(2.5) and rows[("epyc-vnni", "onnx-int8")]["recommended"]
    assert rows[("arm-box", "onnx-int8")]["speedup"] == pytest.approx(1 / 1.1)   # against the ARM box's own fp32
    rep = Report.from_dict(json.loads(json.dumps(merged)))
    assert rep.for_hardware("arm-box").environment["cpu"] == "Neoverse-N1"
    table = format_table(merged)
    assert "== epyc-vnni (epyc-vnni): AMD EPYC 9654" in table and "== arm-box (arm-box): Neoverse-N1" in table
    csv_text = report_to_csv(merged)
    assert ",cache_hit,hardware," in csv_text.splitlines()[0] and csv_text.count(",arm-box,") >= 3

    partial = cross_report(lost=True)
    assert {r["hardware"] for r in partial["results"]} == {"epyc-vnni"}
    assert partial["hardware"][1]["status"] == "lost" and "node lost during onnx-int8 (latency)" in format_table(partial)
    with pytest.raises(QlabError, match="No hardware target produced a result"):
        merge_reports([VNNI], {"epyc-vnni": {"status": "lost", "error": "node lost during fp32 (build)"}})


def test_hardware_speedup_chart_groups_targets():
    from core import charts

    fig = charts.hardware_speedup_figure(cross_report(), 1)
    names = [trace.name for trace in fig.data]
    assert len(names) == 2 and names[0].startswith("epyc-vnni") and "avx512_vnni" in names[0] and names[1].startswith("arm-box")
    vnni = dict(zip(fig.data[0].x, fig.data[0].y))
    assert vnni["onnx-int8"] == pytest.approx(2.5) and "fp32" not in vnni
    assert fig.data[0].text[list(fig.data[0].x).index("onnx-int8")].startswith("★")


def test_compare_page_shows_the_cross_hardware_view():
    from core.storage import history
    from test_app import new_app, no_exceptions, texts

    run_id = history.save_run(cross_report(lost=False))
    at = new_app()
    at.query_params["run"] = run_id
    at.run()
    no_exceptions(at)
    assert "Across hardware targets" in texts(at.subheader)
    assert any(s.startswith("Ship **onnx-int8**") for s in texts(at.success)) and any(s.startswith("Ship **dynamic-int8**") for s in texts(at.success))
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["title"]["text"].startswith("Speed-up against fp32 on each hardware target")
    target = at.selectbox(key="cmp_target")
    assert target.value == "epyc-vnni"
    target.set_value("arm-box").run()
    no_exceptions(at)
    assert any("**Recommended:** **dynamic-int8**" in s for s in texts(at.success))   # the detailed view follows the chosen target

    assert not any("different versions of the lab" in w for w in texts(at.warning))
    mixed = cross_report()
    mixed["hardware"][0]["probe"] = {"lab_version": "aaaaaaaaaaaa"}
    mixed["hardware"][1]["probe"] = {"lab_version": "bbbbbbbbbbbb"}
    at = new_app()
    at.query_params["run"] = history.save_run(mixed)
    at.run()
    no_exceptions(at)
    assert any("different versions of the lab" in w for w in texts(at.warning))

    lost_id = history.save_run(cross_report(lost=True))
    at = new_app()
    at.query_params["run"] = lost_id
    at.run()
    no_exceptions(at)
    assert any("node lost during onnx-int8 (latency)" in w for w in texts(at.warning))


def test_exports_keep_every_target():
    from core.charts import html_report
    from core.storage import history

    merged = cross_report(lost=True)
    page = html_report.export_html(merged)
    assert page.count("<script type=\"text/javascript\">") <= 2 and "Speed-up against fp32 on each hardware target" in page
    assert "epyc-vnni: AMD EPYC 9654" in page and "node lost during onnx-int8 (latency)" in page
    run_id = history.save_run(merged)
    again = history.load_run(run_id)
    assert [t["id"] for t in again["hardware"]] == ["epyc-vnni", "arm-box"] and again["recommended_by_hardware"]
    assert json.loads(history.export_json(again))["hardware"][1]["status"] == "lost"


def test_scratch_folders_of_dead_processes_are_swept(tmp_path):
    import subprocess

    from core.execution import scratch

    mine = scratch.claim(tmp_path / "mine")
    young = tmp_path / "unclaimed"
    young.mkdir()
    code = f"import sys; sys.path.insert(0, {str(local.PROJECT_ROOT)!r}); from core.execution import scratch; scratch.claim({str(tmp_path / 'orphan')!r})"
    subprocess.run([sys.executable, "-c", code], check=True)          # its owner is gone as soon as this returns
    (tmp_path / "orphan" / "upload.csv").write_text("secret text\n")
    assert scratch.sweep(tmp_path) == ["orphan"]
    assert mine.is_dir() and young.is_dir() and not (tmp_path / "orphan").exists()


def test_a_cross_hardware_report_imports_and_a_forged_target_is_refused():
    from core.storage import history

    merged = cross_report(lost=True)
    blob = history.export_json(merged).encode()
    run_id = history.import_report(blob, "cross.json")
    again = history.load_run(run_id)
    assert [t["status"] for t in again["hardware"]] == ["ok", "lost"] and {r["hardware"] for r in again["results"]} == {"epyc-vnni"}
    forged = json.loads(blob)
    forged["hardware"][0]["id"] = "<img src=x onerror=alert(1)>"
    with pytest.raises(QlabError, match="is not a Quantization Lab report"):
        history.import_report(json.dumps(forged).encode(), "forged.json")
