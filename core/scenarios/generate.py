"""The generate scenario (causal LMs): greedy decoding with a KV cache at every batch size x prompt length, timed
(TTFT and ms per token), with the share of generated tokens equal to fp32's."""

from __future__ import annotations

import json
from pathlib import Path

from .base import Scenario, SpeedWords


def measure(job: dict, variant, tokenizer, channel) -> dict:
    """Every generation cell (only the reference tokens for an fp32 that was not asked for), each with its next-token
    distributions checked against fp32's at the steps whose inputs are fp32's (core.measure.cell_check), and the
    agreement with fp32's tokens, which the reference saves as .npy files beside the job."""
    import numpy as np

    from ..measure import bench, cell_check, generation

    data = json.loads(Path(job["dataset"]).read_text(encoding="utf-8"))
    texts = [t for t in data["texts"] if t.strip()] or [data.get("raw_text") or ""]
    protocol = bench.Protocol(**job.get("protocol", {}))
    new_tokens = int(job["new_tokens"])
    cells = [(b, p) for b in job["batch_sizes"] for p in job["prompt_lengths"]]
    ref_dir, is_ref = Path(job["ref_dir"]), job["reference"]
    out, same, compared = [], 0, 0
    decoder = variant.new_decoder()
    for k, (b, p) in enumerate(cells):
        what = f"generating {new_tokens} tokens after {b} x {p}-token prompts"
        channel.progress("latency", k / len(cells), what + (" (reference tokens)" if job.get("quality_only") else ""))
        kept: list = []
        if job.get("quality_only"):   # fp32 only gives the reference tokens and distributions here
            tokens = generation.greedy_tokens(variant, generation.prompt_ids(tokenizer, texts, b, p), new_tokens, keep=kept)
            cell_check.check_generation(job, b, p, kept, tokens)
        else:
            cell, tokens = generation.measure_generation(variant, tokenizer, texts, b, p, new_tokens, protocol=protocol, keep=kept)
            out.append(dict(cell.to_dict(), **cell_check.check_generation(job, b, p, kept, tokens)))
        del kept
        ref_path = ref_dir / f"generated_b{b}_p{p}.npy"
        if is_ref:
            np.save(ref_path, tokens, allow_pickle=False)
        equal, n = generation.agreement(tokens, np.load(ref_path, allow_pickle=False))
        same, compared = same + equal, compared + n
    note = generation.no_cache_note(decoder)
    return {"generation": out, "generation_agreement": same / compared if compared else None, "notes": list(variant.notes) + ([note] if note else [])}


def plan(config, dataset, *, ints, max_seq, check_positions) -> tuple[dict, int | None]:
    """Prompt lengths and new tokens as numbers in range, texts to take prompts from, and prompt + new tokens within
    the model's positions."""
    from ..errors import DataError
    from ..measure.generation import MAX_NEW_TOKENS

    prompt_lengths = ints(config.prompt_lengths, "prompt lengths", 1, max_seq)
    new_tokens = ints([config.new_tokens], "new tokens", 1, MAX_NEW_TOKENS)[0]
    if not dataset.texts:
        raise DataError(f"'{dataset.name}' has no texts to take prompts from.")
    positions = check_positions([p + new_tokens for p in prompt_lengths], what="Prompt length + new tokens",
                                fix="shorten --prompt-lengths or --new-tokens to a total")
    return {"prompt_lengths": prompt_lengths, "new_tokens": new_tokens}, positions


def setup_words(config: dict) -> str:
    return (f"Generation: batch sizes {config.get('batch_sizes')} × prompts of {config.get('prompt_lengths') or []} tokens, "
            f"{config.get('new_tokens')} new tokens (greedy, KV cache)")


def report_settings(cfg) -> dict:
    return {"prompt_lengths": cfg.prompt_lengths, "new_tokens": cfg.new_tokens, "seq_lengths": []}


SCENARIO = Scenario(
    name="generate",
    title="Generation: greedy decoding with a KV cache (TTFT, ms per token)",
    summary="decode ms per token (p50 over every generated token), geometric mean over the prompt lengths",
    speed=SpeedWords(axis="Decode time per token (ms, p50, lower is better)", short="ms/token", what="decode time per token",
                     length="prompt length", lengths="Prompt length (tokens)", suffix="-token prompts"),
    sweep="prompt_lengths",
    sweep_words="prompt lengths",
    default_batch_sizes="1",
    measure=measure,
    plan=plan,
    setup_words=setup_words,
    report_settings=report_settings,
    needs_generating_task=True,
)
