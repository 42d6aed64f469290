"""Build the default demo-gpt into a temporary folder and print how good it is.

    python benchmarks/build_demo_gpt.py [--seed 0] [--budget 240] [--max-steps N] [--keep DIR]

Prints the held-out perplexity, the add-one unigram baseline on the same tokens, their ratio, the steps run,
the parameter count and the build time, then a generated sample. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=240.0, help="seconds from the start of the build to the end of training")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="save the model folder here instead of a temp dir")
    args = parser.parse_args(argv)

    import torch
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.bundled.demo_gpt import build_demo_gpt

    bar = tqdm(total=1000, bar_format="{l_bar}{bar}| {elapsed} elapsed {postfix}", dynamic_ncols=True)
    bar.set_description("demo-gpt")

    def progress(fraction: float, message: str) -> None:
        bar.n = int(round(1000 * fraction))
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    with tempfile.TemporaryDirectory(prefix="demo-gpt-") as tmp:
        out = args.keep or Path(tmp) / "demo-gpt"
        t0 = time.perf_counter()
        metrics = build_demo_gpt(out, seed=args.seed, budget_s=args.budget, max_steps=args.max_steps, progress=progress)
        bar.close()
        wall = time.perf_counter() - t0

        ratio = metrics["unigram_perplexity"] / metrics["heldout_perplexity"]
        print()
        print(f"held-out perplexity     {metrics['heldout_perplexity']:10.1f}   ({metrics['heldout_tokens_scored']:,} held-out tokens, "
              f"non-overlapping {metrics['config']['n_positions']}-token windows)")
        print(f"unigram perplexity      {metrics['unigram_perplexity']:10.1f}   (add-one smoothed, from {metrics['train_tokens']:,} training tokens)")
        print(f"unigram / model         {ratio:10.2f}x")
        print(f"steps                   {metrics['steps']:10d}   (planned {metrics['planned_steps']}, stopped by {metrics['stopped_by']}, "
              f"{metrics['tokens_seen']:,} tokens seen)")
        print(f"parameters              {metrics['params']:10,d}   ({metrics['config']})")
        print(f"build time              {metrics['build_s']:10.1f} s (training {metrics['train_s']:.1f} s; with saving {wall:.1f} s)")

        model = AutoModelForCausalLM.from_pretrained(out)
        tokenizer = AutoTokenizer.from_pretrained(out)
        prompt = "Return the number of"
        enc = tokenizer(prompt, return_tensors="pt")
        torch.manual_seed(args.seed)
        with torch.inference_mode():
            greedy = model.generate(**enc, max_new_tokens=40, do_sample=False, no_repeat_ngram_size=3, pad_token_id=tokenizer.eos_token_id)
            sampled = model.generate(**enc, max_new_tokens=60, do_sample=True, top_k=40, temperature=0.8, pad_token_id=tokenizer.eos_token_id)
        print("\ngreedy sample (no repeated 3-grams):\n" + tokenizer.decode(greedy[0], skip_special_tokens=True))
        print("\nsampled (top-k 40, temperature 0.8):\n" + tokenizer.decode(sampled[0], skip_special_tokens=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
