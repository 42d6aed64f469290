"""The machine-wide job queue (core/serving/jobs.py): shared jobs, the result cache, one-at-a-time, cancel, errors.

The queue runs each job in a child process that loads a runner by "file.py:function"; the runners below are
fakes (no models), so these tests check the queue itself in a few seconds.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest

from core.serving.jobs import JobQueue
from core.storage import history

HERE = Path(__file__).resolve()


# -- fake runners (run inside the child process) --------------------------------------------------
def fake_runner(config, progress, should_stop):
    from core.errors import QlabError

    log = config.get("log")
    started = time.time()
    seen_data = Path(config["data"]).read_text() if config.get("data") else None
    variants = config["variants"]
    for i, v in enumerate(variants):
        for step in range(config.get("steps", 3)):
            if should_stop():
                raise QlabError("cancelled")  # what the engine does: a QlabError (its Cancelled) after should_stop()
            progress({"variant": v, "index": i, "total": len(variants), "phase": ["build", "quality", "latency"][step % 3],
                      "fraction": (i + (step + 1) / config.get("steps", 3)) / len(variants), "message": f"{v} step {step}"})
            time.sleep(config.get("sleep", 0.05))
    if config.get("fail") == "user":
        raise QlabError("Your data has no text column; rename it to text.")
    if config.get("fail") == "crash":
        raise ZeroDivisionError("division by zero deep inside")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps({"pid": os.getpid(), "start": started, "end": time.time(), "model": config["model"]}) + "\n")
    report = {"task": "embedding", "model": config["model"], "run_id": "", "created": time.time(),
              "environment": {"cpu": "fake"}, "data": {"name": "x", "seen": seen_data},
              "results": [{"variant": v, "size_bytes": 1, "latency": [], "quality": {}} for v in variants]}
    return {"report": report}


def c_write_runner(config, progress, should_stop):
    """Writes to file descriptor 1 below Python (as a C library printing does) between its progress events."""
    os.write(1, b"a C library printed this, with no newline")
    progress({"variant": "fp32", "index": 0, "total": 2, "phase": "quality", "fraction": 0.25, "message": "after a C write"})
    os.write(1, b"garbage\n@@qlab {not json\n")
    progress({"variant": "onnx-int8", "index": 1, "total": 2, "phase": "latency", "fraction": 0.75, "message": "after garbage"})
    os.write(1, b"no newline again")
    return {"fd1_is_stderr": os.path.samestat(os.fstat(1), os.fstat(2))}


def stop_requested_runner(config, progress, should_stop):
    """Raises a subclass of Cancelled (whose class name is not "Cancelled") without the queue asking it to stop."""
    from core.execution.wire import Cancelled

    class StopRequested(Cancelled):
        pass

    raise StopRequested("stopped by the runner itself")


RUNNERS = {"evaluate": f"{HERE}:fake_runner", "build": f"{HERE}:fake_runner", "cwrite": f"{HERE}:c_write_runner",
           "stopsub": f"{HERE}:stop_requested_runner"}


@pytest.fixture()
def queue(tmp_path):
    q = JobQueue(tmp_path, runners=RUNNERS, poll_s=0.05)
    yield q
    q.close()


def cfg(model="m", **extra):
    return {"task": "embedding", "model": model, "variants": ["fp32", "onnx-int8"], **extra}


def test_runs_and_saves_a_report(queue, tmp_path):
    job = queue.submit(cfg(), data_bytes=b"text\nhello\n", data_name="../../evil name.csv")
    snap = queue.wait(job.id, 60)
    assert snap["state"] == "done", snap
    report = history.load_run(snap["run_id"], root=tmp_path)
    assert report["data"]["seen"] == "text\nhello\n"           # the child read the upload...
    assert not any((tmp_path / "uploads").iterdir())          # ...which is gone once the job ended
    assert set(snap["variants"]) == {"fp32", "onnx-int8"}
    assert snap["variants"]["onnx-int8"]["phases"] == ["build", "quality", "latency"]
    assert snap["fraction"] == 1.0


def test_identical_requests_share_one_job_and_finished_ones_are_instant(queue):
    first = queue.submit(cfg(sleep=0.1))
    second = queue.submit(cfg(sleep=0.1))
    assert second is first and first.subscribers == 2
    done = queue.wait(first.id, 60)
    again = queue.submit(cfg(sleep=0.1))
    assert again.state == "done" and again.cached and again.run_id == done["run_id"]   # no second measurement
    forced = queue.submit(cfg(sleep=0.1), force=True)
    assert forced.id != first.id and not forced.cached
    assert queue.wait(forced.id, 60)["run_id"] != done["run_id"]
    other_data = queue.submit(cfg(sleep=0.1), data_bytes=b"text\nother\n", data_name="o.csv")
    assert not other_data.cached  # same config, different data: a different comparison


def test_one_at_a_time_with_queue_positions(queue, tmp_path):
    log = tmp_path / "log.jsonl"
    a = queue.submit(cfg("a", sleep=0.15, log=str(log)))
    b = queue.submit(cfg("b", sleep=0.05, log=str(log)))
    c = queue.submit(cfg("c", sleep=0.05, log=str(log)))
    deadline = time.time() + 20
    while queue.status(a.id)["state"] != "running" and time.time() < deadline:
        time.sleep(0.02)
    assert queue.status(b.id)["position"] == 1 and queue.status(c.id)["position"] == 2
    assert queue.status(c.id)["ahead"] == 2  # the running one plus b
    for job in (a, b, c):
        assert queue.wait(job.id, 60)["state"] == "done"
    spans = [json.loads(line) for line in log.read_text().splitlines()]
    assert [s["model"] for s in spans] == ["a", "b", "c"]
    for x, y in zip(spans, spans[1:]):
        assert x["end"] <= y["start"], "jobs overlapped"


def test_two_processes_serialize_on_the_machine_lock(tmp_path):
    """Two queues on one store stand for two Streamlit processes: flock locks are per open file, so they exclude
    each other exactly as separate processes do."""
    log = tmp_path / "log.jsonl"
    q1, q2 = JobQueue(tmp_path, runners=RUNNERS, poll_s=0.05), JobQueue(tmp_path, runners=RUNNERS, poll_s=0.05)
    try:
        a = q1.submit(cfg("a", sleep=0.15, log=str(log)))
        deadline = time.time() + 20
        while q1.status(a.id)["state"] != "running" and time.time() < deadline:
            time.sleep(0.02)
        b = q2.submit(cfg("b", sleep=0.02, log=str(log)))
        waited = False
        while q2.status(b.id)["state"] not in ("done", "failed") and time.time() < deadline + 40:
            s = q2.status(b.id)
            if s["state"] == "waiting":
                waited = True
                assert "another" in s["message"] or "a)" in s["message"], s["message"]
            time.sleep(0.02)
        assert waited, "the second process never waited for the first"
        assert q1.wait(a.id, 60)["state"] == "done" and q2.status(b.id)["state"] == "done"
        spans = [json.loads(line) for line in log.read_text().splitlines()]
        assert [s["model"] for s in spans] == ["a", "b"] and spans[0]["end"] <= spans[1]["start"]
    finally:
        q1.close()
        q2.close()


def test_cancel_queued_and_running(queue):
    running = queue.submit(cfg("long", sleep=0.5, steps=30))
    queued = queue.submit(cfg("next"))
    deadline = time.time() + 20
    while queue.status(running.id)["state"] != "running" and time.time() < deadline:
        time.sleep(0.02)
    assert queue.cancel(queued.id)
    assert queue.status(queued.id)["state"] == "cancelled"
    time.sleep(0.5)
    pid = running.pid
    assert pid is not None and psutil.pid_exists(pid)
    t0 = time.time()
    assert queue.cancel(running.id)
    snap = queue.wait(running.id, 20)
    assert snap["state"] == "cancelled" and snap["run_id"] is None
    assert time.time() - t0 < 10 and not psutil.pid_exists(pid)   # the child process is gone


def test_cancelling_a_shared_job_only_drops_one_subscriber(queue):
    a = queue.submit(cfg("shared", sleep=0.1))
    b = queue.submit(cfg("shared", sleep=0.1))
    assert a is b
    queue.cancel(a.id)
    assert queue.wait(a.id, 60)["state"] == "done"  # the other tab still gets its result


def test_user_errors_are_one_line_and_crashes_name_the_log(queue):
    bad = queue.submit(cfg("u", fail="user"))
    snap = queue.wait(bad.id, 60)
    assert snap["state"] == "failed" and snap["error"] == "Your data has no text column; rename it to text."
    crash = queue.submit(cfg("c", fail="crash"))
    snap = queue.wait(crash.id, 60)
    assert snap["state"] == "failed"
    assert "ZeroDivisionError: division by zero deep inside" in snap["error"] and f"server log (job {crash.id[:8]})" in snap["error"]
    assert "\n" not in snap["error"] and "Traceback" not in snap["error"] and str(queue.root) not in snap["error"]  # no server path
    assert "Traceback" in (queue.root / "jobs" / crash.id / "stderr.log").read_text()  # the traceback went to the job's log


def test_a_c_level_write_to_fd_1_in_the_child_does_not_corrupt_the_event_stream(queue):
    job = queue.submit({"model": "m", "task": "embedding", "variants": ["fp32", "onnx-int8"]}, kind="cwrite")
    snap = queue.wait(job.id, 60)
    assert snap["state"] == "done", snap
    assert snap["result"] == {"fd1_is_stderr": True}                 # the child's fd 1 is its log, not the event pipe
    assert snap["variants"]["fp32"]["phases"] == ["quality"]          # both events arrived whole, around the garbage
    assert snap["variants"]["onnx-int8"]["phases"] == ["latency"] and snap["fraction"] == 1.0


def test_a_cancelled_subclass_raised_in_the_child_cancels_the_job(queue):
    job = queue.submit({"model": "m", "task": "embedding", "variants": ["fp32"]}, kind="stopsub")
    snap = queue.wait(job.id, 60)
    assert snap["state"] == "cancelled" and snap["error"] is None


def test_build_jobs_share_the_queue(queue):
    job = queue.submit({"model": "m", "task": "embedding", "variants": ["fp32"]}, kind="build")
    snap = queue.wait(job.id, 60)
    assert snap["state"] == "done" and snap["run_id"] is None and snap["result"]["report"]["model"] == "m"


def test_the_machine_holder_is_visible_while_a_job_runs(queue):
    job = queue.submit(cfg("held", sleep=0.2))
    deadline = time.time() + 20
    while queue.status(job.id)["state"] != "running" and time.time() < deadline:
        time.sleep(0.02)
    holder = queue.machine_holder()
    assert holder and holder["pid"] == os.getpid() and holder["model"] == "held"
    queue.wait(job.id, 60)
    deadline = time.time() + 5   # the job reports done just before the worker lets go of the lock
    while queue.machine_holder() is not None and time.time() < deadline:
        time.sleep(0.02)
    assert queue.machine_holder() is None


@pytest.mark.slow
def test_a_family_library_upgrade_is_a_new_comparison_and_rebuilds_its_variants(tmp_path, tiny_embedder_dir, monkeypatch):
    """The saved-report key and the store keys carry every library the run's families declare (Family.versions): when
    onnxscript (the ONNX Runtime family's exporter, a library the old hand-kept list did not name) reports another
    version, the saved report is not reused, the onnx variant is rebuilt, fp32 is not, and the report names it."""
    import importlib

    from core.recipes.registry import declared_libraries

    assert "onnxscript" in declared_libraries(["onnx-fp32"]) and "onnxscript" not in declared_libraries(["fp32"])
    q = JobQueue(tmp_path, poll_s=0.05)   # the real evaluate runner, in worker processes
    config = {"task": "embedding", "model": str(tiny_embedder_dir), "variants": ["fp32", "onnx-fp32"], "batch_sizes": [1], "seq_lengths": [8],
              "protocol": {"warmup": 1, "min_iters": 3, "min_seconds": 0.02, "max_seconds": 0.5}}
    try:
        first = q.wait(q.submit(dict(config)).id, 300)
        assert first["state"] == "done", first
        again = q.submit(dict(config))
        assert again.cached and again.run_id == first["run_id"]   # nothing changed: the saved report answers

        fake = tmp_path / "upgraded"   # another onnxscript version, as pip would record it, first on the path
        (fake / "onnxscript-99.0.dist-info").mkdir(parents=True)
        (fake / "onnxscript-99.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: onnxscript\nVersion: 99.0\n")
        monkeypatch.syspath_prepend(str(fake))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")])))
        importlib.invalidate_caches()

        upgraded = q.submit(dict(config))
        assert not upgraded.cached
        done = q.wait(upgraded.id, 300)
        assert done["state"] == "done" and done["run_id"] != first["run_id"], done
        report = history.load_run(done["run_id"], root=tmp_path)
        assert report["environment"]["versions"]["onnxscript"] == "99.0"
        hits = {r["variant"]: r["cache_hit"] for r in report["results"]}
        assert hits == {"fp32": True, "onnx-fp32": False}, hits   # rebuilt under the new key; fp32 does not depend on it
    finally:
        q.close()
