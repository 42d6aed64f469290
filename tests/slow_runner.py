"""Job runners for queue tests, loaded by the job child from this file (``tests/slow_runner.py:<name>``): they stand in
for an evaluation where only the queue's behaviour is under test (admission, wall time, messages)."""

from __future__ import annotations

import time


def sleep_runner(config, progress, should_stop):
    """Runs for ``config['seconds']`` (stopping early when cancelled), reporting progress once a second."""
    end = time.time() + float(config.get("seconds", 30))
    while time.time() < end:
        if should_stop():
            raise RuntimeError("stopped")
        progress({"message": "sleeping", "fraction": 0.5})
        time.sleep(0.2)
    return {"slept": True}


def path_error_runner(config, progress, should_stop):
    """Fails like a real evaluation that names a server path in its error."""
    from core.errors import QlabError

    raise QlabError(f"Data file '{config['path']}' cannot be read (permission denied).")


def crash_runner(config, progress, should_stop):
    """A bug (not a QlabError) whose message carries a server path."""
    raise FileNotFoundError(f"[Errno 2] No such file or directory: '{config['path']}'")


def report_runner(config, progress, should_stop):
    """A fast stand-in for an evaluation (tests/test_load.py): ``QLAB_STAND_IN_S`` seconds (default 1) of work with
    progress events, then a small valid report for the config it was given, saved by the queue like any other."""
    import os
    import uuid
    from pathlib import Path

    seconds = float(os.environ.get("QLAB_STAND_IN_S", "1"))
    rows = len(Path(config["data"]).read_text(encoding="utf-8").splitlines()) - 1 if config.get("data") else 0
    variants = list(config["variants"])
    for step in range(5):
        if should_stop():
            raise RuntimeError("stopped")
        progress({"variant": variants[0], "index": 0, "total": len(variants), "phase": ["load", "quality", "latency", "latency", "done"][step],
                  "fraction": (step + 1) / 5, "message": f"step {step + 1} of 5"})
        time.sleep(seconds / 5)
    cell = {"batch_size": 1, "seq_len": 8, "p50_ms": 2.0, "p90_ms": 2.2, "p99_ms": 2.4, "mean_ms": 2.1, "std_ms": 0.1,
            "throughput_per_s": 500.0, "forward_p50_ms": 1.9}
    report = {"task": config["task"], "model": config["model"], "run_id": uuid.uuid4().hex, "created": time.time(),
              "environment": {"cpu": "stand-in", "cores": 2, "threads": 2, "device": "cpu"},
              "data": {"name": Path(config.get("data") or "sample").name, "rows": rows},
              "results": [{"variant": v, "size_bytes": 1000, "quality": {"cosine_fidelity": 1.0}, "latency": [cell], "notes": []} for v in variants]}
    return {"report": report}
