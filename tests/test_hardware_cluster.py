"""Hardware targets on a real Ray cluster: a head and two worker nodes started on this machine (one cluster for the
module), each with its own ``qlab-name`` label and one ``qlab_bench`` slot. Everything talks only to this machine,
and the cluster is shut down at the end (no Ray process of ours is left).

The model is a tiny random BERT embedder (code paths only); the protocol is cut to a few iterations so the
cross-hardware runs take seconds per node.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from conftest import ROOT, run_cli
from read_back import assert_reads_back

ray = pytest.importorskip("ray", reason="ray[default] is in requirements.txt; install it to run the cluster tests")
from ray.cluster_utils import Cluster  # noqa: E402

pytestmark = pytest.mark.cluster

FAST = ["--batch-sizes", "1", "--seq-lengths", "8", "--warmup", "1", "--min-iters", "3", "--min-seconds", "0.05", "--max-seconds", "1"]


def _node_args(name: str, store: Path | None = None) -> dict:
    """A node like scripts/join_cluster.sh makes: its label, one qlab_bench slot and (as another machine would) its own store."""
    args = {"num_cpus": 1, "resources": {"qlab_bench": 1}, "labels": {"qlab-name": name}, "include_dashboard": False}
    if store is not None:
        args["env_vars"] = {"QLAB_CACHE_DIR": str(store)}
    return args


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + saved if saved else "")   # nodes run this checkout
    stores = {"head": Path(os.environ["QLAB_CACHE_DIR"]), "edge": tmp_path_factory.mktemp("edge-store"), "doomed": tmp_path_factory.mktemp("doomed-store")}
    c = Cluster(initialize_head=True, head_node_args=_node_args("head"))
    edge = c.add_node(**_node_args("edge", stores["edge"]))
    c.wait_for_nodes()
    try:
        yield {"cluster": c, "address": c.address, "edge": edge, "stores": stores}
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
        os.environ.pop("QLAB_RAY_ADDRESS", None)   # set by _driver: the modules after this one measure on this machine
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _cli(cluster, *args, timeout=600, extra_env=None):
    env = {"QLAB_RAY_ADDRESS": cluster["address"], **(extra_env or {})}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return run_cli(*args, timeout=timeout)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _driver(cluster):
    if not ray.is_initialized():
        os.environ["QLAB_RAY_ADDRESS"] = cluster["address"]
        from core.execution import ray_cluster

        ray_cluster.connect(cluster["address"])


def test_hardware_lists_every_node_probed_on_itself(cluster):
    from core.execution.hardware import probe

    proc = _cli(cluster, "hardware", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    by_name = {r["name"]: r for r in rows}
    assert {"head", "edge"} <= set(by_name), rows
    node_ids = {r["node_id"] for r in rows}
    assert len(node_ids) == len(rows) and None not in node_ids      # two nodes on one host, two targets
    assert sum(r["this_machine"] for r in rows) == 1
    here = probe()
    for r in rows:
        assert set(r) >= {"id", "name", "node_id", "cpu", "arch", "cores", "isa", "gpu", "alive"}
        assert r["alive"] and r["cpu"] == here["cpu"] and r["isa"] == here["isa"] and r["arch"] == here["arch"]

    table = _cli(cluster, "hardware")
    assert table.returncode == 0 and "edge" in table.stdout and "head" in table.stdout


def test_comparison_across_all_targets(cluster, tiny_embedder_dir, tmp_path):
    out = tmp_path / "report.json"
    proc = _cli(cluster, "evaluate", "--task", "embedding", "--model", str(tiny_embedder_dir), "--variants", "fp32,dynamic-int8",
                "--hardware", "head,edge", "--threads", "1", "--out", str(out), *FAST)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    targets = {t["id"]: t for t in report["hardware"]}
    assert set(targets) == {"head", "edge"} and all(t["status"] == "ok" for t in targets.values())
    rows = {(r["hardware"], r["variant"]) for r in report["results"]}
    assert rows == {(h, v) for h in ("head", "edge") for v in ("fp32", "dynamic-int8")}
    for t in targets.values():   # each target's comparison really ran on its own node, with the threads it was given
        assert t["environment"]["node_id"] == t["node_id"]
        assert t["environment"]["threads"] == 1
        assert t["reference"]["quality"]
    assert set(report["recommended_by_hardware"]) == {"head", "edge"}
    assert all(r is None or r["variant"] in ("fp32", "dynamic-int8") for r in report["recommended_by_hardware"].values())
    assert "edge:" in proc.stderr and "head:" in proc.stderr   # progress per target

    from core.reporting.results import Report

    rep = Report.from_dict(report)
    assert rep.target_ids == ["head", "edge"]
    assert all(t["probe"]["runtimes"] for t in report["hardware"])   # every family's probe, llama.cpp's nested one included
    assert_reads_back(report)   # saved, imported through History, opened on Compare with both targets
    edge_only = rep.for_hardware("edge")
    assert {r.variant for r in edge_only.results} == {"fp32", "dynamic-int8"} and edge_only.environment["node_id"] == targets["edge"]["node_id"]


def test_lost_node_keeps_the_other_targets(cluster, tiny_embedder_dir, tmp_path):
    c = cluster["cluster"]
    doomed = c.add_node(**_node_args("doomed", cluster["stores"]["doomed"]))
    c.wait_for_nodes()
    out = tmp_path / "partial.json"
    env = dict(os.environ, QLAB_RAY_ADDRESS=cluster["address"], PYTHONPATH=os.environ["PYTHONPATH"])
    slow = ["--batch-sizes", "1", "--seq-lengths", "8,16", "--warmup", "1", "--min-iters", "5", "--min-seconds", "1.5", "--max-seconds", "3"]
    proc = subprocess.Popen([sys.executable, "-m", "core", "evaluate", "--task", "embedding", "--model", str(tiny_embedder_dir),
                             "--variants", "fp32", "--hardware", "head,doomed", "--threads", "1", "--out", str(out), *slow],
                            cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.time() + 300
    while time.time() < deadline and not any(ln.startswith("doomed:") and " latency:" in ln for ln in lines):
        assert proc.poll() is None, "".join(lines)[-2000:]
        time.sleep(0.2)
    c.remove_node(doomed)
    proc.wait(timeout=400)
    reader.join(timeout=10)
    stderr = "".join(lines)
    assert proc.returncode == 1, stderr[-2000:]
    report = json.loads(out.read_text())
    status = {t["id"]: t for t in report["hardware"]}
    assert status["head"]["status"] == "ok"
    assert status["doomed"]["status"] == "lost" and status["doomed"]["error"].startswith("node lost during ")
    assert status["doomed"]["error"].endswith(("(latency)", "(done)", "(load)", "(quality)"))
    assert {r["hardware"] for r in report["results"]} == {"head"}                     # no silent retry elsewhere
    assert {r["variant"] for r in report["results"]} == {"fp32"}
    assert "hardware target doomed: node lost during" in stderr


def test_busy_slot_fails_dispatch_clearly(cluster, tiny_embedder_dir):
    _driver(cluster)
    edge_id = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and (n.get("Labels") or {}).get("qlab-name") == "edge")
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0, resources={"qlab_bench": 1})
    class Holder:
        def ok(self):
            return True

    holder = Holder.options(scheduling_strategy=NodeAffinitySchedulingStrategy(edge_id, soft=False)).remote()
    assert ray.get(holder.ok.remote(), timeout=60)
    try:
        started = time.time()
        proc = _cli(cluster, "evaluate", "--task", "embedding", "--model", str(tiny_embedder_dir), "--variants", "fp32", "--hardware", "edge",
                    *FAST, extra_env={"QLAB_RAY_DISPATCH_TIMEOUT_S": "4"})
        assert proc.returncode == 2, proc.stderr[-1000:]   # the only target failed: no report, one line
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "Hardware target edge could not be scheduled within 4 s" in lines[0]
        assert time.time() - started < 120
    finally:
        ray.kill(holder)


def test_cancel_ends_the_remote_worker(cluster, tiny_embedder_dir):
    _driver(cluster)
    from core.engine.evaluate import WORKER, EvalConfig, validate
    from core.execution.events import Cancelled
    from core.execution.targets import choose, list_targets, run_across

    cfg = validate(EvalConfig(task="embedding", model=str(tiny_embedder_dir), variants=["fp32"], batch_sizes=[1],
                              seq_lengths=[8, 16], threads=1, protocol={"warmup": 1, "min_iters": 5, "min_seconds": 3.0, "max_seconds": 4}))
    chosen = choose(["edge"], list_targets())
    seen, stop = [], threading.Event()
    stores = {str(p) for p in cluster["stores"].values()}   # this module's workers only (another lab here has its own store)

    def runners():
        found = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if "core.engine.runner" in " ".join(p.info["cmdline"] or []) and p.environ().get("QLAB_CACHE_DIR") in stores:
                    found.append(p)
            except psutil.Error:
                continue
        return found

    before: list = []

    def progress(event):
        seen.append(event)
        if event.get("phase") == "latency" and not stop.is_set():
            before.extend(runners())   # the measuring worker, found the way the check below looks for it
            stop.set()

    with pytest.raises(Cancelled):
        run_across(cfg, chosen, worker=WORKER, progress=progress, should_stop=stop.is_set)
    assert any(e.get("target") == "edge" and e.get("phase") == "latency" for e in seen)
    assert before, "no measuring worker was found while it measured"
    deadline = time.time() + 20
    while runners() and time.time() < deadline:
        time.sleep(0.2)
    assert not runners(), "a measuring worker outlived its cancelled job"


def test_unreachable_cluster_fails_fast_with_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.time()
    env = dict(os.environ, QLAB_RAY_ADDRESS=f"127.0.0.1:{port}")
    proc = subprocess.run([sys.executable, "-m", "core", "hardware"], cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and time.time() - started < 30
    assert proc.stderr.strip().count("\n") == 0 and "cannot be reached" in proc.stderr and "Traceback" not in proc.stderr


def test_a_port_that_is_not_ray_fails_within_30_s():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        started = time.time()
        env = dict(os.environ, QLAB_RAY_ADDRESS=f"127.0.0.1:{port}")
        proc = subprocess.run([sys.executable, "-m", "core", "hardware"], cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=90)
        assert proc.returncode == 2 and time.time() - started < 30, proc.stderr[-500:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(("error: Could not join the Ray cluster", "error: The Ray cluster at")) and "Traceback" not in proc.stderr
    finally:
        server.close()


def test_models_page_offers_the_cluster_nodes(cluster, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("QLAB_RAY_ADDRESS", cluster["address"])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/models.py").run()
    assert not at.exception, [e.value for e in at.exception]
    picker = at.multiselect(key="hw_targets")
    assert {"head", "edge"} <= {o.split(" · ")[0] for o in picker.options}
    assert len(picker.value) == 1                     # this machine's node, by default
    picker.set_value(["head", "edge"]).run()
    assert not at.exception
    badges = " ".join(str(m.value) for m in at.markdown)
    assert "**head**" in badges and "**edge**" in badges and "badge[" in badges
    at.switch_page("pages/run.py").run()
    assert not at.exception
    assert any("Hardware targets: **head**, **edge**" in str(m.value) for m in at.markdown)

    monkeypatch.setenv("QLAB_HOSTED", "1")           # hosted: only the operator's allow-list is offered
    monkeypatch.setenv("QLAB_HARDWARE_ALLOW", "edge")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/models.py").run()
    assert not at.exception
    assert [o.split(" · ")[0] for o in at.multiselect(key="hw_targets").options] == ["edge"]


@pytest.mark.browser
def test_choices_survive_a_round_trip_between_pages_in_chromium(cluster, tmp_path):
    """Pick two nodes and change the measurement on Models & variants, go to Run and Data and back: every choice is
    still there (the hardware targets used to fall back to this machine alone), and Run measures on both; the
    comparison started from Run then opens on Compare with both targets side by side (issue 26)."""
    import contextlib
    import re

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from playwright.sync_api import expect, sync_playwright

    import load_sessions
    from conftest import chromium_or_skip

    chromium_or_skip("the round-trip test")
    with load_sessions.server(Path(os.environ["QLAB_CACHE_DIR"]), {"QLAB_RAY_ADDRESS": cluster["address"]}) as (url, _, log_path), \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(load_sessions.CHROMIUM), headless=True, args=load_sessions.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(url + "/models")
            page.get_by_role("heading", name="Models & variants", exact=True).wait_for()
            targets = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Hardware targets")
            targets.get_by_role("button", name=re.compile(r"^Remove head")).wait_for()   # this machine's node by default
            options = page.locator('[role="option"]')
            for _ in range(10):   # the first runs list the cluster in a subprocess: a click during a rerun is lost
                targets.locator("input").click()
                with contextlib.suppress(Exception):
                    options.first.wait_for(timeout=3000)
                    break
                page.keyboard.press("Escape")
            assert options.filter(has_text="edge").count() == 1, [o.inner_text() for o in options.all()]
            options.filter(has_text="edge").click()
            page.keyboard.press("Escape")
            sidebar = page.locator('[data-testid="stSidebar"]')
            expect(sidebar).to_contain_text("measuring on head, edge")
            load_sessions.remove_tag(page, "Batch sizes", "8")
            page.locator('[data-testid="stRadio"]').filter(has_text="Measurement").get_by_text("Standard", exact=False).click()
            page.wait_for_timeout(1000)

            load_sessions.goto_page(page, "Run", "Run")
            body = page.locator('[data-testid="stMain"]')
            expect(body).to_contain_text("Hardware targets: head, edge")
            expect(body).to_contain_text("Batch sizes [1] ×")
            expect(body).to_contain_text("Standard")
            load_sessions.goto_page(page, "Data", "Data")
            load_sessions.goto_page(page, "Models & variants", "Models & variants")
            for node in ("head", "edge"):   # both still chosen, after Run and Data
                targets.get_by_role("button", name=re.compile(rf"^Remove {node}")).wait_for()
            expect(sidebar).to_contain_text("measuring on head, edge")
            batches = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Batch sizes")
            assert batches.get_by_role("button", name="Remove 1", exact=True).count() == 1
            assert batches.get_by_role("button", name="Remove 8", exact=True).count() == 0
            expect(page.locator('[data-testid="stRadio"]').filter(has_text="Measurement").locator("input[type=radio]:checked")).to_have_count(1)
            checked = page.locator('[data-testid="stRadio"]').filter(has_text="Measurement").locator("label").filter(
                has=page.locator("input:checked"))
            expect(checked).to_contain_text("Standard")
            load_sessions.goto_page(page, "Run", "Run")
            expect(body).to_contain_text("Hardware targets: head, edge")
            assert "Traceback" not in page.locator("body").inner_text(), log_path

            # the comparison itself (quick, fp32 and onnx-int8), started from Run: it is saved, and Compare opens it with
            # both targets side by side (it used to refuse it as "not a Quantization Lab report" over llama.cpp's probe)
            load_sessions.goto_page(page, "Models & variants", "Models & variants")
            page.locator('[data-testid="stRadio"]').filter(has_text="Measurement").get_by_text("Quick", exact=False).click()
            load_sessions.remove_tag(page, "Variants to compare", "dynamic-int8")
            page.wait_for_timeout(1000)
            load_sessions.goto_page(page, "Run", "Run")
            expect(body).to_contain_text("Hardware targets: head, edge")
            page.get_by_role("button", name="Run comparison").click()
            page.get_by_text(load_sessions.RESULT).first.wait_for(timeout=600_000)
            assert "not a Quantization Lab report" not in body.inner_text()
            load_sessions.goto_page(page, "Compare", "Compare")
            page.get_by_role("heading", name="Across hardware targets").wait_for()
            table = page.locator('[data-testid="stDataFrame"]').first
            table.wait_for()
            expect(body).not_to_contain_text("not a Quantization Lab report")
            page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
            shot = Path(os.environ.get("QLAB_SCREENSHOT_DIR") or tmp_path) / "compare_two_machines.png"
            page.screenshot(path=str(shot), full_page=False)
            expect(body).to_contain_text("Ship ")   # each target's own recommendation, side by side (onnx-int8 is wrong at 64 tokens here)
            for node in ("head", "edge"):   # each target's machine and recommendation, side by side
                expect(body).to_contain_text(f"{node} · ")
            expect(page.get_by_role("combobox", name="Detailed charts for")).to_be_visible()
            assert "Traceback" not in page.locator("body").inner_text(), log_path
        finally:
            browser.close()
