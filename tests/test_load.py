"""Load: 8 visitors use the hosted dashboard at the same time, each in its own session (AppTest, one thread each,
all in this one server process, so they share its job queue as browser sessions of one `streamlit run` do).
AppTest is not thread-safe, so the sessions' script runs take turns (a lock); their jobs run, wait and are refused
concurrently in the queue, which is what is under load.

Each uploads data (through the Data page's uploader), picks a comparison (the bundled MiniLM, fp32, batch 1, 8
tokens, quick protocol) and presses Run. Six of them upload different files; two upload the same file as the first
(the same comparison: they share its job). The queue holds at most 3 waiting jobs (QLAB_MAX_QUEUE=3) and one per
visitor, so some distinct comparisons must be refused.

The jobs go through the real queue (a child process each, events, the machine lock, the saved run), but what runs in
the child is a fast stand-in for the evaluation (tests/slow_runner.py:report_runner, 3 s): the queue and
the sessions are under test here; real evaluations through the same page are covered by tests/test_app.py.

Asserted: every session ends either with a finished, saved run it can open, or with the one-line "queue full, try
again at ..." refusal; every accepted job produced exactly one saved run and none is lost (every run file saved
during the test is a run some session was given, and loads); the sessions that asked the same comparison got the
same run. The figure (sessions finished / refused, jobs, seconds) is printed and quoted in the README.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import history
from core.jobs import get_queue

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
STAND_IN = f"{Path(__file__).resolve().parent / 'slow_runner.py'}:report_runner"
SESSIONS = 8
SAME_AS_FIRST = {6, 7}
TIMEOUT_S = 120
APP_LOCK = threading.Lock()   # one AppTest script run at a time (AppTest shares module state between instances)
WORDS = ["river", "violin", "compiler", "museum", "harvest", "satellite", "glacier", "lantern"]


def data_for(session: int) -> bytes:
    i = 0 if session in SAME_AS_FIRST else session
    lines = [f"The {WORDS[i]} story number {k} is told again today." for k in range(6)]
    return ("text\n" + "\n".join(lines) + "\n").encode()


def visit(session: int, out: dict, barrier: threading.Barrier) -> None:
    """One visitor: upload, choose, wait for everyone, press Run, follow the job to its end."""
    record = out.setdefault(session, {})
    try:
        with APP_LOCK:
            at = AppTest.from_file(APP, default_timeout=120)
            at.run()
            at.file_uploader(key="data_file").upload(f"visitor{session}.csv", data_for(session), "text/csv")
            at.run()
            assert at.session_state["data_source"] == "upload"
            for key, value in (("v_variants", ["fp32"]), ("hw_batches", [1]), ("hw_seqs", [8]), ("hw_measure", "quick")):
                at.session_state[key] = value   # the Models page's choices (its widgets are covered by test_app)
            at.switch_page("pages/run.py").run()
            assert not at.exception and not at.error, [e.value for e in at.error]
        record["ready"] = time.time()
        barrier.wait(timeout=180)   # everyone presses Run together
        with APP_LOCK:
            record["submitted"] = time.time()
            at.button(key="run_start").click().run()
        if at.error:
            record["refused"] = str(at.error[0].value)
            return
        record["job_id"] = at.session_state["job_id"]
        deadline = time.time() + TIMEOUT_S
        while time.time() < deadline:
            time.sleep(0.5)
            with APP_LOCK:
                at.run()
            assert not at.exception, [e.value for e in at.exception]
            done = [s.value for s in at.success if "is saved" in str(s.value)]
            if done or at.error:
                break
        record["finished"] = time.time()
        record["errors"] = [str(e.value) for e in at.error]
        record["run_id"] = at.session_state["current_run"]
        if record["run_id"]:
            with APP_LOCK:
                at.switch_page("pages/compare.py").run()   # the run opens for its visitor
                record["opened"] = not at.exception and [t.value for t in at.title] == ["Compare"] and len(at.get("plotly_chart")) > 0
    except Exception as err:  # noqa: BLE001 - recorded, asserted below
        record["crash"] = repr(err)


def test_eight_concurrent_sessions_finish_or_are_refused_and_no_run_is_lost(monkeypatch, session_store):
    monkeypatch.setenv("QLAB_HOSTED", "1")
    monkeypatch.setenv("QLAB_MAX_QUEUE", "3")
    monkeypatch.setenv("QLAB_JOBS_PER_VISITOR", "1")
    monkeypatch.setitem(get_queue().runners, "evaluate", STAND_IN)
    monkeypatch.setenv("QLAB_STAND_IN_S", "3")   # long enough that the queue is still full while the others press Run
    runs_dir = Path(session_store) / "runs"
    before = {p.name for p in runs_dir.glob("*.json")} if runs_dir.is_dir() else set()
    out: dict = {}
    barrier = threading.Barrier(SESSIONS)
    started = time.time()
    threads = [threading.Thread(target=visit, args=(i, out, barrier), name=f"visitor-{i}") for i in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_S + 180)
    seconds = time.time() - started

    crashes = {i: r["crash"] for i, r in out.items() if "crash" in r}
    assert not crashes, crashes
    finished = {i: r for i, r in out.items() if r.get("run_id")}
    refused = {i: r for i, r in out.items() if "refused" in r}
    assert len(out) == SESSIONS and len(finished) + len(refused) == SESSIONS, out
    for i, r in refused.items():   # refused with a reason, in one line
        text = re.sub(r"\\(.)", r"\1", r["refused"])
        assert "queue is full" in text and re.search(r"try again at \d\d:\d\d UTC", text) and "\n" not in text, text
    for i, r in finished.items():
        assert not r["errors"] and r.get("opened"), (i, r)
    assert refused, "6 distinct comparisons against a queue of 3 waiting: some must be refused"
    assert len(finished) >= 4

    # 0 runs lost: every run saved during the test is one a session was given, each loads, one per distinct comparison
    saved = {p.stem for p in runs_dir.glob("*.json")} - {Path(n).stem for n in before}
    given = {r["run_id"] for r in finished.values()}
    assert saved == given, (saved, given)
    for run_id in saved:
        assert history.load_run(run_id)["results"][0]["variant"] == "fp32"   # saved whole: it passes the report schema
    firsts = {r["run_id"] for i, r in finished.items() if i == 0 or i in SAME_AS_FIRST}
    assert len(firsts) <= 1   # the same comparison asked three times: one job, one run
    distinct = {data_for(i) for i in finished}
    assert len(saved) == len(distinct)
    print(f"\nLOAD: {SESSIONS} concurrent sessions: {len(finished)} finished ({len(saved)} jobs, "
          f"{len(finished) - len(saved)} shared), {len(refused)} refused 'queue full', 0 runs lost, {seconds:.0f} s")
