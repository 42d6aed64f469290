"""What the per-cell output check (core/measure/cell_check.py) costs next to the timing it rides on.

    python benchmarks/check_overhead.py [--variants fp32,onnx-int8] [--iters 10] [--threads 2]

A latency cell keeps the outputs of its last timed call (no extra forward pass) and then reduces them to what the
task compares and compares them with fp32's. This times, in one process and alternating, for MiniLM (embedding) and
the bundled demo-gpt (causal LM) at batch 1 and 32 x 16 and 128 tokens:

* one timed call of the variant (median of ``--iters``), and
* the check of that call's outputs (reduce + compare with fp32's saved reference; median of ``--iters``),

and prints the check as a share of one call and of a whole cell (``--iters`` timed calls, the lab's minimum). A causal
LM's check grows with its vocabulary (``MAX_LM_POSITIONS`` next-token distributions), so it is also timed on random
logits of SmolLM2's 49152-token vocabulary. The CPU is named beside the figures; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def median_ms(fn, iters: int) -> float:
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="fp32,onnx-int8")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from core.engine.variants import get_variant
    from core.env import isa_words
    from core.inputs.sources import load_tokenizer, resolve
    from core.measure import bench, cell_check
    from core.tasks import get_task

    torch.set_num_threads(args.threads)
    print(f"CPU: {isa_words()}, {args.threads} threads")
    print(f"{'model':10} {'variant':12} {'cell':12} {'call ms':>9} {'check ms':>9} {'of a call':>10} {'of a cell':>10}")
    texts = [line.split(",", 1)[0] for line in (ROOT / "data" / "samples" / "embedding_sentences.csv").read_text().splitlines()[1:] if line]
    ratios = []
    for model, task_name in (("minilm", "embedding"), ("demo-gpt", "causal-lm")):
        task = get_task(task_name)
        source = resolve(model, task_name)
        tokenizer = load_tokenizer(source)
        variants = {v: get_variant(source, v, threads=args.threads).variant for v in args.variants.split(",")}
        with tempfile.TemporaryDirectory() as ref_dir:
            for b in (1, 32):
                for s in (16, 128):
                    inputs = bench.make_tokenize(tokenizer, bench.cell_texts(tokenizer, texts, b, s), s)()
                    ref_out = variants["fp32"](*inputs)
                    cell_check.check_cell(task, {"ref_dir": ref_dir, "reference": True}, b, s, ref_out, inputs[1])
                    for name, variant in variants.items():
                        if name == "fp32":
                            continue
                        out = variant(*inputs)
                        call, check = [], []
                        for _ in range(3):   # alternate the two, so a noisy moment hits both
                            call.append(median_ms(lambda: variant(*inputs), max(1, args.iters // 3)))
                            check.append(median_ms(lambda: cell_check.check_cell(task, {"ref_dir": ref_dir}, b, s, out, inputs[1]),
                                                   max(1, args.iters // 3)))
                        c, k = statistics.median(call), statistics.median(check)
                        ratios.append(k / c)
                        print(f"{model:10} {name:12} {f'b={b} s={s}':12} {c:9.2f} {k:9.3f} {100 * k / c:9.1f}% {100 * k / (c * args.iters):9.2f}%")
    vocab = 49152
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 128, vocab)).astype(np.float32)
    mask = np.ones((1, 128), dtype=np.int64)
    lm = get_task("causal-lm")
    with tempfile.TemporaryDirectory() as ref_dir:
        cell_check.check_cell(lm, {"ref_dir": ref_dir, "reference": True}, 1, 128, logits, mask)
        k = median_ms(lambda: cell_check.check_cell(lm, {"ref_dir": ref_dir}, 1, 128, logits + 0.01, mask), args.iters)
    print(f"check of a causal-LM cell with SmolLM2's {vocab}-token vocabulary ({cell_check.MAX_LM_POSITIONS} positions, random logits): {k:.1f} ms")
    print(f"median check / call over the cells above: {100 * statistics.median(ratios):.1f}% of one call, "
          f"{100 * statistics.median(ratios) / args.iters:.2f}% of a cell of {args.iters} timed calls")


if __name__ == "__main__":
    main()
