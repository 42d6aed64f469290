"""The pool of pre-started measuring workers (core.execution.pool, QLAB_WORKER_POOL): a pooled worker measures what a
fresh one does, is used once, and is ended by a cancel."""

from __future__ import annotations

import time

import pytest

from core.engine.evaluate import Cancelled, EvalConfig, fill_pool, run_evaluation
from core.execution import pool

QUICK = {"warmup": 1, "min_iters": 3, "min_seconds": 0.0, "max_seconds": 2.0}


@pytest.fixture
def worker_pool(monkeypatch):
    monkeypatch.setenv("QLAB_WORKER_POOL", "2")
    yield pool.pool_dir()
    pool.close()


def _config(model_dir, **extra):
    return EvalConfig(task="embedding", model=str(model_dir), variants=["fp32", "dynamic-int8"], batch_sizes=[2], seq_lengths=[8],
                      protocol=QUICK, **extra)


@pytest.mark.slow
def test_pooled_workers_measure_what_fresh_ones_do_and_are_used_once(tiny_embedder_dir, worker_pool, monkeypatch):
    monkeypatch.setenv("QLAB_WORKER_POOL", "0")
    fresh = run_evaluation(_config(tiny_embedder_dir))
    monkeypatch.setenv("QLAB_WORKER_POOL", "2")
    assert fill_pool() == 2
    pool.wait_ready()
    started = {p.pid for p in pool._live(worker_pool)}
    assert pool.ready_count() == 2
    pooled = run_evaluation(_config(tiny_embedder_dir))
    assert not list(worker_pool.glob("*.ready")) and not list(worker_pool.glob("*.claimed"))   # both taken, none reused
    deadline = time.monotonic() + 10   # a zombie leader may outlive the result briefly while its other threads end
    while started & {p.pid for p in pool._live(worker_pool)} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not started & {p.pid for p in pool._live(worker_pool)}   # and both have exited
    for a, b in zip(fresh["results"], pooled["results"]):
        assert a["variant"] == b["variant"] and not b.get("error")
        assert b["quality"]["cosine_fidelity"] == pytest.approx(a["quality"]["cosine_fidelity"], abs=1e-6)
        assert [c["batch_size"] for c in b["latency"]] == [2]


@pytest.mark.slow
def test_cancel_ends_a_pooled_worker(tiny_embedder_dir, worker_pool):
    import psutil

    fill_pool(n=1)
    pool.wait_ready()
    pids = {p.pid for p in pool._live(worker_pool)}
    seen = []
    with pytest.raises(Cancelled):
        run_evaluation(EvalConfig(task="embedding", model=str(tiny_embedder_dir), variants=["fp32"], protocol={**QUICK, "min_seconds": 30.0}),
                       progress=seen.append, should_stop=lambda: any(e["phase"] in ("quality", "latency") for e in seen))
    assert pids and all(not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE for pid in pids)
