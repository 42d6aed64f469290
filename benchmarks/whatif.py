"""Responsiveness of a what-if (issue 19, part 5): where the wall time of a warm repeat of the dashboard's default
comparison goes, and of the same comparison with one variant added.

    python benchmarks/whatif.py [--repeats 3] [--store DIR] [--added onnx-fp32] [--pool-ab] [--json OUT]

The comparison is the dashboard's default: model ``minilm`` (embedding), variants fp32, dynamic-int8, onnx-int8 on the
bundled sample, batch sizes 1,8, sequence lengths 16,64, the Quick protocol (``core.measure.bench.QUICK``, as
``ui/shared.current_config`` sends it). Every variant is built first, untimed, into a temporary model store
(``QLAB_CACHE_DIR``), so each timed run is a warm repeat
("Run again": ``force=True``, no saved-run answer). Runs go through the dashboard's own path: ``core.serving.jobs.JobQueue``
starts ``python -m core.serving.jobs <dir>``, whose ``evaluate_runner`` calls ``run_evaluation(validate(EvalConfig(...)))``, and
that starts one ``python -m core.engine.runner`` per variant (``core.engine.evaluate.run_worker`` through ``core.execution.local``).

The breakdown comes from the progress events as they reach the queue (timestamped on arrival, wall clock):

* job start: submit to the job child's first event (the child's start, its imports, the plan);
* worker start + imports: per worker, the job's "loading X" (just before the spawn) to the worker's own first event
  (sent once torch and the lab's modules are imported; with a pool: once the pre-started worker has the job);
* load: to "quality of X" (transformers' modeling imports, tokenizer, the variant from the store; the variant's own
  ``load_s`` from the report is shown on its own line, already counted in load);
* quality, latency cells, whole-dataset throughput: to the next phase's first event;
* worker exit: the worker's last event to the job's "X done" (result written, interpreter teardown, result read);
* rest: the job's last variant to the job's end (report, save), and anything in between.

``--pool-ab`` runs the default comparison alternately without and with ``QLAB_WORKER_POOL`` (A, B, A, B, ...; the pool
of pre-started workers of ``core.execution.pool``) and prints both breakdowns and the p50s of every latency cell side
by side. Before every run, untimed (a visitor's think time), the pool is filled and no pooled worker is still
importing. With a pool, "worker start+imports" is the hand-over of the job to a ready worker.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_VARIANTS = ["fp32", "dynamic-int8", "onnx-int8"]
QUICK_PROTOCOL = {"warmup": 1, "min_iters": 3, "min_seconds": 0.0, "max_iters": 20, "max_seconds": 2.0}   # core.measure.bench.QUICK
IMPORTS = "import torch, onnxruntime, transformers, sentence_transformers"
PARTS = ["job start", "worker start+imports", "load", "  of which the variant (load_s)", "quality", "latency cells", "throughput", "worker exit", "rest"]


def config(variants: list[str]) -> dict:
    """What ui/shared.current_config submits for the default comparison (sample data, Quick protocol)."""
    return {"task": "embedding", "model": "minilm", "variants": list(variants), "batch_sizes": [1, 8], "seq_lengths": [16, 64],
            "threads": None, "device": "cpu", "max_length": 128, "allow_local": True, "protocol": dict(QUICK_PROTOCOL)}


def run_job(queue, variants: list[str], pool_size: int = 0) -> tuple[dict, list[tuple[float, dict]], dict]:
    """One forced run through the queue: (job snapshot, [(arrival time, event)], report). With ``pool_size`` the job
    takes pre-started workers (``QLAB_WORKER_POOL``); before it is submitted, untimed (the visitor's think time), the
    pool is filled and every pooled worker has finished importing, so no import overlaps a measurement of either kind."""
    from core.engine.evaluate import fill_pool
    from core.execution import pool
    from core.storage import history

    if pool_size:
        os.environ["QLAB_WORKER_POOL"] = str(pool_size)
        fill_pool(queue.root, pool_size)
    else:
        os.environ.pop("QLAB_WORKER_POOL", None)
    pool.wait_ready(queue.root)

    events: list[tuple[float, dict]] = []
    original = queue._on_event

    def on_event(job, event):
        events.append((time.time(), dict(event)))
        original(job, event)

    queue._on_event = on_event
    try:
        submitted = time.time()
        job = queue.submit(config(variants), force=True)
        snap = queue.wait(job.id, timeout=1800)
    finally:
        queue._on_event = original
    if snap["state"] != "done":
        raise SystemExit(f"the job {snap['state']}: {snap.get('error') or snap.get('message')}")
    snap["submitted"] = submitted
    return snap, events, history.load_run(snap["run_id"], queue.root)


def breakdown(snap: dict, events: list[tuple[float, dict]], variants: list[str], report: dict | None = None) -> dict:
    """Seconds per part (summed over workers) and per worker start, from the events' arrival times."""
    parts = dict.fromkeys(PARTS, 0.0)
    starts = []
    first = events[0][0]
    parts["job start"] = first - snap["submitted"]
    slots = ["fp32"] + [v for v in variants if v != "fp32"]
    last_done = first
    for label in slots:
        mine = [(t, e) for t, e in events if e.get("variant") == label]
        loads = [t for t, e in mine if e.get("phase") == "load"]
        spawn, ready = loads[0], loads[1]   # the job's "loading X" just before the spawn, then the worker's first event

        def at(pred, default):
            return next((t for t, e in mine if pred(e)), default)

        done = at(lambda e: e.get("phase") == "done", mine[-1][0])
        measured = at(lambda e: e.get("phase") == "latency" and str(e.get("message", "")).endswith(" done"), done)
        quality = at(lambda e: e.get("phase") == "quality", measured)
        latency = at(lambda e: str(e.get("message", "")).startswith("latency batch"), measured)
        throughput = at(lambda e: str(e.get("message", "")).startswith("whole-dataset throughput"), measured)
        starts.append(ready - spawn)
        parts["worker start+imports"] += ready - spawn
        parts["load"] += quality - ready
        parts["quality"] += latency - quality
        parts["latency cells"] += throughput - latency
        parts["throughput"] += measured - throughput
        parts["worker exit"] += done - measured
        parts["rest"] += spawn - last_done if label != slots[0] else 0.0
        last_done = done
    parts["rest"] += snap["finished"] - last_done
    # the rest of "load" is transformers' modeling imports, the config and the tokenizer (core.engine.runner._preimport, load_tokenizer)
    parts["  of which the variant (load_s)"] = sum(r.get("load_s") or 0.0 for r in (report or {}).get("results", []))
    wall = snap["finished"] - snap["submitted"]
    return {"wall": wall, "parts": parts, "worker_starts": starts}


def p50s(report: dict) -> dict:
    return {(r["variant"], c["batch_size"], c["seq_len"]): c["p50_ms"] for r in report["results"] if not r.get("error") for c in r.get("latency", [])}


def import_time(repeats: int) -> list[float]:
    from core.engine.evaluate import _worker_env

    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORTS], env=_worker_env(None), cwd=str(ROOT), check=True, capture_output=True)
        out.append(time.perf_counter() - t)
    return out


def median_table(rows: dict[str, list[dict]]) -> str:
    """Markdown table: one column per case, the median seconds of each part over its repetitions."""
    names = list(rows)
    lines = ["| part | " + " | ".join(f"{n} (s)" for n in names) + " |", "|---|" + "---:|" * len(names)]
    for part in ["wall"] + PARTS:   # the load_s line is a part of "load", not added to the wall
        cells = []
        for n in names:
            values = [r["wall"] if part == "wall" else r["parts"][part] for r in rows[n]]
            share = "" if part == "wall" else f" ({100 * statistics.median(values) / statistics.median([r['wall'] for r in rows[n]]):.0f}%)"
            cells.append(f"{statistics.median(values):.2f}{share}")
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    cells = []
    for n in names:
        per = [s for r in rows[n] for s in r["worker_starts"]]
        cells.append(f"{statistics.median(per):.2f} x {len(rows[n][0]['worker_starts'])}")
    lines.append("| (one worker start, median) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "unknown CPU")
    return f"{cpu}, {os.cpu_count()} logical cores, load average {os.getloadavg()[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (medians are printed)")
    parser.add_argument("--store", help="model store and run history to use (default: a new temporary folder)")
    parser.add_argument("--added", default="onnx-fp32", help="the variant added in case (b)")
    parser.add_argument("--pool-ab", action="store_true", help="alternate runs without and with QLAB_WORKER_POOL (case (a) only)")
    parser.add_argument("--pool-size", type=int, default=3, help="QLAB_WORKER_POOL for the pool runs of --pool-ab")
    parser.add_argument("--pool", type=int, default=0, help="QLAB_WORKER_POOL for cases (a) and (b) (default 0: no pool)")
    parser.add_argument("--json", help="write every run's breakdown and p50s here")
    args = parser.parse_args()

    store = Path(args.store or tempfile.mkdtemp(prefix="qlab-whatif-"))
    os.environ["QLAB_CACHE_DIR"] = str(store)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.pop("QLAB_WORKER_POOL", None)
    from core.serving.jobs import JobQueue

    queue = JobQueue(root=store, poll_s=0.05)
    default, added = DEFAULT_VARIANTS, DEFAULT_VARIANTS + [args.added]
    print(f"machine: {machine()}", file=sys.stderr)
    t = time.perf_counter()
    run_job(queue, added)   # untimed: builds every artifact into the store and warms the page cache
    print(f"prebuilt {', '.join(added)} into {store} in {time.perf_counter() - t:.0f} s", file=sys.stderr)

    imports = import_time(args.repeats)
    rows: dict[str, list[dict]] = {}
    cells: dict[str, list[dict]] = {}
    if args.pool_ab:
        cases = [("(a) fresh workers", default, 0), (f"(a) pool of {args.pool_size}", default, args.pool_size)]
    else:
        cases = [("(a) default", default, args.pool), (f"(b) + {args.added}", added, args.pool)]
    for k in range(args.repeats):
        for name, variants, pool_size in cases:
            snap, events, report = run_job(queue, variants, pool_size)
            row = breakdown(snap, events, variants, report)
            row["load_average"] = report.get("settings", {}).get("load_average")
            rows.setdefault(name, []).append(row)
            cells.setdefault(name, []).append(p50s(report))
            print(f"run {k + 1}/{args.repeats} {name}: {row['wall']:.1f} s (load average {row['load_average']})", file=sys.stderr)
    os.environ.pop("QLAB_WORKER_POOL", None)

    print(f"\n{machine()}")
    print(f"`python -c \"{IMPORTS}\"` alone: median {statistics.median(imports):.2f} s over {len(imports)} runs "
          f"({', '.join(f'{x:.2f}' for x in imports)})\n")
    print(median_table(rows))
    if args.pool_ab:
        print("\n| variant | batch | seq | " + " | ".join(f"{n} p50 ms (median of runs)" for n in cells) + " | ratio |")
        print("|---|---:|---:|" + "---:|" * (len(cells) + 1))
        names = list(cells)
        ratios, within = [], []
        for key in sorted(cells[names[0]][0]):
            meds = [statistics.median(run[key] for run in cells[n] if key in run) for n in names]
            print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(f"{m:.2f}" for m in meds) + f" | {meds[1] / meds[0]:.2f} |")
            ratios.append(meds[1] / meds[0])
            spread = [run[key] / statistics.median(r[key] for r in cells[names[0]]) for run in cells[names[0]] if key in run]
            within.append(min(spread) <= meds[1] / meds[0] <= max(spread))
        print(f"\ngeometric mean of the p50 ratios (pool / fresh) over {len(ratios)} cells: {statistics.geometric_mean(ratios):.3f}; "
              f"{sum(within)} of {len(within)} pool medians lie within the spread of the fresh runs")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "imports_s": imports, "rows": rows,
                                               "p50s": {n: [{"|".join(map(str, k)): v for k, v in run.items()} for run in runs] for n, runs in cells.items()}},
                                              indent=1), encoding="utf-8")
    queue.close()


if __name__ == "__main__":
    main()
