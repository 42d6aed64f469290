"""Load: real Chromium sessions against a real `streamlit run app.py`, running real Quick evaluations of MiniLM.

The driver is benchmarks/load_sessions.py (the benchmark prints the same figures and the README quotes them):

* phase 1: 8 sessions open Run and press "Measure again" on the default comparison (fp32, dynamic-int8, onnx-int8)
  at the same moment: one evaluation, shared by all 8;
* phase 2: 4 of them change the comparison on Models & variants (one batch size or sequence length less), come back
  to Run (the change survives the round trip) and press it again: 4 distinct evaluations, queued;
* then 30 s with every session still open and nothing running.

Fails if any session does not see its own result, a run is lost or duplicated, or the idle server keeps using CPU (it
used most of a core while 8 pages polled a job before gc.collect(2) stopped running after every script run).
The variants are built into the session's store first, so the sessions wait on measurements, not builds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import chromium_or_skip
from core.storage import history

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import load_sessions  # noqa: E402 (benchmarks/ is not a package)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SESSIONS, DISTINCT = 8, 4
IDLE_CORES = 0.05   # the server's own CPU over 30 s with every session open and no job


def test_eight_chromium_sessions_see_their_results_and_the_idle_server_stays_idle(session_store):
    chromium_or_skip("the load test")
    store = Path(session_store)
    load_sessions.prebuild(store)
    with load_sessions.server(store) as (url, pid, log_path):
        figures = load_sessions.run_load(url, pid, store, sessions=SESSIONS, distinct=DISTINCT, idle_s=30)
    print("\n" + load_sessions.summary(figures))

    # phase 1: every session saw the one shared run, and exactly one evaluation ran
    assert not figures["phase1_missing"] and not figures["phase1_errors"], (figures["phase1_missing"], figures["phase1_errors"], log_path)
    assert len(figures["phase1_seconds"]) == SESSIONS
    assert figures["phase1_runs_saved"] == 1, figures["runs"]
    (shared,) = figures["runs"]["phase1"]
    assert set(figures["phase1_run_ids"].values()) == {shared[:8]}

    # phase 2: the changes survived Models -> Run, each session saw its own run, one evaluation each, none lost
    setups = figures["phase2_setups"]
    assert len(set(setups)) == DISTINCT and "sequence lengths [16] tokens" in setups[0] and setups[2].startswith("Batch sizes [1] ×"), setups
    assert not figures["phase2_missing"] and not figures["phase2_errors"], (figures["phase2_missing"], figures["phase2_errors"], log_path)
    assert figures["phase2_runs_saved"] == DISTINCT, figures["runs"]
    saved = {run_id[:8]: run_id for run_id in figures["runs"]["phase2"]}
    assert sorted(figures["phase2_run_ids"].values()) == sorted(saved), (figures["phase2_run_ids"], saved)
    for run_id in [shared, *saved.values()]:
        report = history.load_run(run_id, store)   # saved whole: it passes the report schema
        assert [r["variant"] for r in report["results"]][:3] == ["fp32", "dynamic-int8", "onnx-int8"]

    # the dashboard's pool of pre-started workers served the measurements (one per variant, refilled between jobs)
    assert figures["pooled_workers"] >= 3, figures

    # the server is idle when nothing runs: no page keeps polling, no pooled worker spins while it waits for a job
    assert figures["idle_after_cores"] < IDLE_CORES, figures
    assert figures["idle_tree_cores"] < IDLE_CORES, figures
