"""Does measuring through Ray change the numbers? The same MiniLM comparison through the local launcher and
through the Ray launcher on this machine, alternated (local, ray, local, ray, ...) so drift hits both alike.

    python benchmarks/ray_vs_local.py [--reps 3] [--variants fp32,onnx-int8] [--batch-sizes 1,32] [--threads 2] [--write-readme]

Prints, per variant and batch size, the median p50 through each launcher and their ratio (ray / local: 1.00 means
the same), and the fixed dispatch overhead: the median extra wall time of a whole comparison through Ray (actor
placement on the node, polling, the report's trip back) with the artifacts already built. The cluster is a one-node
Ray cluster started here (ray.cluster_utils, the head labelled qlab-name=bench) and stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import write_readme_section  # noqa: E402 (benchmarks/ is on sys.path when a script runs)

START, END = "<!-- ray-overhead:start -->", "<!-- ray-overhead:end -->"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--variants", default="fp32,onnx-int8")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--seq-lengths", default="16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()

    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ray.cluster_utils import Cluster

    from core.engine.evaluate import WORKER, EvalConfig, run_evaluation, validate
    from core.execution import ray_cluster
    from core.execution.hardware import describe_machine
    from core.execution.launcher import LocalLauncher, RayLauncher
    from core.execution.targets import choose, list_targets

    cfg = validate(EvalConfig(task="embedding", model="minilm", variants=args.variants.split(","),
                              batch_sizes=[int(b) for b in args.batch_sizes.split(",")], seq_lengths=[int(s) for s in args.seq_lengths.split(",")],
                              threads=args.threads, protocol={"min_seconds": args.min_seconds, "min_iters": 30}))
    print(f"machine: {describe_machine()}", file=sys.stderr)
    print("warming the store (builds, if any, are not timed)...", file=sys.stderr)
    run_evaluation(cfg)

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": os.cpu_count() or 1, "resources": {"qlab_bench": 1},
                                                            "labels": {"qlab-name": "bench"}, "include_dashboard": False})
    try:
        os.environ["QLAB_RAY_ADDRESS"] = cluster.address
        ray_cluster.connect(cluster.address)
        target = choose(["bench"], list_targets())[0]
        runs = {"local": [], "ray": []}
        for rep in range(args.reps):
            for mode in ("local", "ray"):
                started = time.perf_counter()
                launcher = LocalLauncher() if mode == "local" else RayLauncher()
                report = launcher.run(target if mode == "ray" else {"id": "local"}, cfg, None, worker=WORKER)
                wall = time.perf_counter() - started
                runs[mode].append((wall, report))
                print(f"rep {rep + 1}/{args.reps} {mode}: {wall:.1f} s", file=sys.stderr)
    finally:
        ray_cluster.disconnect()
        cluster.shutdown()

    def p50(report: dict, variant: str, batch: int) -> float:
        row = next(r for r in report["results"] if r["variant"] == variant)
        cells = [c["p50_ms"] for c in row["latency"] if c["batch_size"] == batch]
        return statistics.geometric_mean(cells)

    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {describe_machine()}; {args.reps} alternated repetitions of each launcher, "
             f"MiniLM, {args.threads} threads, {args.seq_lengths} tokens per text, at least {args.min_seconds:g} s per cell.", "",
             "| variant | batch | local p50 ms | Ray p50 ms | Ray / local |", "|---|---|---|---|---|"]
    ratios = []
    for variant in cfg.variants:
        for batch in cfg.batch_sizes:
            loc = statistics.median(p50(r, variant, batch) for _, r in runs["local"])
            ray_ = statistics.median(p50(r, variant, batch) for _, r in runs["ray"])
            ratios.append(ray_ / loc)
            lines.append(f"| `{variant}` | {batch} | {loc:.2f} | {ray_:.2f} | {ray_ / loc:.2f} |")
    overhead = statistics.median(w for w, _ in runs["ray"]) - statistics.median(w for w, _ in runs["local"])
    lines += ["", f"- p50 ratio Ray / local: median {statistics.median(ratios):.2f} (range {min(ratios):.2f} to {max(ratios):.2f})",
              f"- fixed dispatch overhead of a comparison through Ray: {overhead:+.1f} s (median whole-comparison wall time "
              f"{statistics.median(w for w, _ in runs['ray']):.1f} s through Ray vs {statistics.median(w for w, _ in runs['local']):.1f} s locally)"]
    text = "\n".join(lines)
    print(text)
    if args.write_readme:
        readme = ROOT / "docs" / "cluster.md"   # the marked section moved there from README.md
        if write_readme_section(readme, START, END, text):
            print(f"{readme} updated", file=sys.stderr)
        else:
            print(f"{readme} has no {START} ... {END} section; not written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
