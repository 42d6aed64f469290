"""The Generation tables of docs/findings.md: causal-LM variants decoding greedily with their KV cache, on smollm2 and demo-gpt.

    python benchmarks/generation.py [--models smollm2,demo-gpt] [--threads 2] [--prompt-lengths 32,128] [--new-tokens 32] [--write-readme]

Each model goes through ``core.engine.evaluate.run_evaluation`` with ``scenario="generate"`` (each variant in a fresh worker
process, batch 1): time to first token, decode milliseconds per token (p50), generated tokens per second, perplexity
on the causal-LM sample, size on disk, and the share of greedy tokens equal to fp32's. All variants of a model are
measured in one run, one after the other, so ratios between them are what to read on a busy machine.

The CPU reference people know is llama.cpp: it is measured in the same run as the lab's own ``gguf`` variant, which is
llama.cpp (the prebuilt ``xllamacpp`` wheel) running the model's shipped GGUF with its own KV cache.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import progress_bar, write_readme_section  # noqa: E402 (benchmarks/ is on sys.path when a script runs)

VARIANTS = ["fp32", "dynamic-int8", "onnx-fp32", "onnx-int8", "onnx-int4", "onnx-int4:algorithm=hqq", "onnx-genai", "onnx-genai:precision=int8",
            "absmax-int8:granularity=tensor", "zeropoint-int8:granularity=tensor", "absmax-int4", "zeropoint-int4",
            "openvino-int8-wo", "openvino-int4", "gguf", "gguf:type=q8_0"]
LLAMA_CPP = "gguf"   # llama.cpp on the shipped GGUF (smollm2's Q4_1)
SECTIONS = {"generation": ("<!-- generation:start -->", "<!-- generation:end -->", "Generation"),   # the whole table
            # the runtimes people deploy a small LLM on, beside the lab's best: a shorter run written under the table
            "runtimes": ("<!-- generation-runtimes:start -->", "<!-- generation-runtimes:end -->", "Generation: the runtimes people deploy on")}


def table(report: dict, prompts: list[int]) -> str:
    results = [r for r in report["results"]]
    fp32 = next(r for r in results if r["variant"] == "fp32")
    head = (["variant", "size MB", "perplexity", "Δ ppl"] + [f"TTFT ms p={p}" for p in prompts] + [f"ms/token p={p}" for p in prompts]
            + [f"tokens/s p={p}" for p in prompts] + ["decode vs fp32", "agree", "KV cache"])
    rows = []
    rec = (report.get("recommended") or {}).get("variant")
    for r in results:
        if r.get("error"):
            rows.append([f"`{r['variant']}`", "failed: " + r["error"][:80]] + [""] * (len(head) - 2))
            continue
        cells = {c["prompt_len"]: c for c in r["generation"] if c["batch_size"] == 1}
        fp32_cells = {c["prompt_len"]: c for c in fp32["generation"] if c["batch_size"] == 1}
        ratio = [fp32_cells[p]["decode_ms_per_token_p50"] / cells[p]["decode_ms_per_token_p50"] for p in prompts if p in cells and p in fp32_cells]
        q = r["quality"]
        rows.append([f"`{r['variant']}`" + (" **(recommended)**" if r["variant"] == rec else ""), f"{r['size_bytes'] / 1e6:.1f}",
                     f"{q['perplexity']:.2f}", f"{q.get('perplexity_increase_pct', 0.0):+.1f}%"]
                    + [f"{cells[p]['ttft_ms']:.0f}" for p in prompts] + [f"{cells[p]['decode_ms_per_token_p50']:.1f}" for p in prompts]
                    + [f"{cells[p]['tokens_per_s']:.1f}" for p in prompts]
                    + [f"{sorted(ratio)[len(ratio) // 2]:.2f}x" if ratio else "-", f"{(r.get('generation_agreement') or 0) * 100:.0f}%",
                       "yes" if all(c["kv_cache"] for c in cells.values()) else "no"])
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(row) + " |" for row in rows])


def run(model: str, args) -> dict:
    from core.engine.evaluate import EvalConfig, run_evaluation

    protocol = {"warmup": 1, "min_iters": args.min_iters, "min_seconds": args.min_seconds, "max_iters": 200, "max_seconds": args.max_seconds}
    from core.inputs.sources import resolve
    from core.recipes.genai.recipes import ARCHITECTURES

    arch = (json.loads((Path(resolve(model, "causal-lm").path) / "config.json").read_text()).get("architectures") or ["?"])[0]
    variants = [v for v in args.variants.split(",") if arch in ARCHITECTURES or not v.startswith("onnx-genai")]   # the builder covers Llama-family models only
    config = EvalConfig(task="causal-lm", model=model, variants=variants, batch_sizes=[1], threads=args.threads, protocol=protocol,
                        scenario="generate", prompt_lengths=[int(p) for p in args.prompt_lengths.split(",")], new_tokens=args.new_tokens)
    bar, on_event = progress_bar()
    try:
        return run_evaluation(config, progress=on_event)
    finally:
        bar.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="smollm2,demo-gpt")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-lengths", default="32,128")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--min-iters", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--max-seconds", type=float, default=20.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generation.json"))
    ap.add_argument("--write-readme", action="store_true")
    ap.add_argument("--section", choices=list(SECTIONS), default="generation", help="which block of docs/findings.md --write-readme fills")
    args = ap.parse_args()
    prompts = [int(p) for p in args.prompt_lengths.split(",")]

    blocks, reports = [], {}
    for model in args.models.split(","):
        report = run(model, args)
        reports[model] = report
        env = report["environment"]
        machine = (f"{env['cpu']}, {env['cores']} cores, {args.threads} threads, instruction sets: {', '.join(env['instruction_sets'])}; "
                   f"torch {env['versions'].get('torch')}, onnxruntime {env['versions'].get('onnxruntime')}; "
                   f"load average {report['settings']['load_average']['start']} at start")
        lines = [f"**{model}**, measured {report['created']} on {machine}.", "", table(report, prompts), ""]
        rec = report.get("recommended")
        if rec:
            lines.append(f"- Recommended (perplexity budget +2%): `{rec['variant']}`: {rec['reason']}.")
        ok = {r["variant"]: r for r in report["results"] if not r.get("error")}
        budget = [r for r in ok.values() if (r["quality"].get("perplexity_increase_pct") or 0) <= 2.0 and r["generation"]]
        if LLAMA_CPP in ok and ok[LLAMA_CPP]["generation"] and budget:
            def decode(r, p):
                return next(c["decode_ms_per_token_p50"] for c in r["generation"] if c["prompt_len"] == p)

            others = [r for r in budget if r["variant"] != LLAMA_CPP] or budget
            fastest = min(others, key=lambda r: sum(decode(r, p) for p in prompts))
            lines.append(f"- Fastest of the lab's own paths within the +2% perplexity budget: `{fastest['variant']}`; against llama.cpp on the "
                         "shipped GGUF (`gguf`), same run: " + "; ".join(
                             f"prompt {p}: {decode(fastest, p):.1f} vs {decode(ok[LLAMA_CPP], p):.1f} ms/token" for p in prompts) + ".")
        blocks.append("\n".join(lines))
    block = "\n\n".join([f"Batch 1, prompts of {', '.join(map(str, prompts))} tokens of real text, {args.new_tokens} new tokens, greedy. "
                         "TTFT = prompt tokenized and prefilled, first token chosen; ms/token = p50 of every further token; tokens/s = generated "
                         "tokens / whole generation (first token included); decode vs fp32 = fp32's ms/token / the variant's; agree = share of "
                         "greedy tokens equal to fp32's. Perplexity on the causal-LM sample (context 128, stride 64).", *blocks])
    print("\n" + block)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(reports, indent=2, default=str))
    if args.write_readme:
        readme = ROOT / "docs" / "findings.md"   # the marked sections moved there from README.md
        start, end, heading = SECTIONS[args.section]
        write_readme_section(readme, start, end, block, heading=heading)
        print(f"wrote the {heading} section of {readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
