"""The latency scenario: one forward pass per batch size x sequence length, plus whole-dataset throughput."""

from __future__ import annotations

import json
from pathlib import Path

from .base import Scenario, SpeedWords


def measure(job: dict, variant, tokenizer, channel) -> dict:
    """Every latency cell, then the whole sample's throughput; nothing when the worker only gives quality."""
    if job.get("quality_only"):
        return {}
    from ..measure import bench

    texts = json.loads(Path(job["dataset"]).read_text(encoding="utf-8"))["texts"]
    protocol = bench.Protocol(**job.get("protocol", {}))
    cells = [(b, s) for b in job["batch_sizes"] for s in job["seq_lengths"]]
    latency = []
    for k, (b, s) in enumerate(cells):
        channel.progress("latency", k / (len(cells) + 2), f"latency batch {b} x seq {s}")
        latency.append(bench.measure_cell(variant, tokenizer, texts, b, s, protocol=protocol).to_dict())
    bs = min(int(job.get("throughput_batch_size") or job["recommend_batch_size"]), len(texts))
    message = f"whole-dataset throughput (sorted and unsorted alternated, batch {bs})"
    channel.progress("latency", len(cells) / (len(cells) + 2), message)
    throughput = bench.dataset_throughput(variant, tokenizer, texts, bs, job["max_length"], protocol=protocol,
                                          progress=lambda n: channel.progress("latency", (len(cells) + 1) / (len(cells) + 2),
                                                                              f"{message}: {n} passes each"))
    return {"latency": latency, "dataset_throughput": throughput}


def plan(config, dataset, *, ints, max_seq, check_positions) -> tuple[dict, int | None]:
    """The sequence lengths (already checked as numbers) must fit the model's positions; generation settings keep
    their defaults, so a latency comparison's saved-run key does not depend on them."""
    from ..measure.generation import DEFAULT_NEW_TOKENS, DEFAULT_PROMPT_LENGTHS

    positions = check_positions(config.seq_lengths)
    return {"prompt_lengths": list(DEFAULT_PROMPT_LENGTHS), "new_tokens": DEFAULT_NEW_TOKENS}, positions


def setup_words(config: dict) -> str:
    return f"Batch sizes {config.get('batch_sizes')} × sequence lengths {config.get('seq_lengths') or []} tokens"


SCENARIO = Scenario(
    name="latency",
    title="Latency: one forward pass per batch × sequence length",
    summary="geometric mean of end-to-end p50 over the seq-length sweep",
    speed=SpeedWords(axis="Median latency per batch (ms, lower is better)", short="ms", what="latency", length="sequence length",
                     lengths="Sequence length (tokens)", suffix=" tokens"),
    sweep="seq_lengths",
    sweep_words="sequence lengths",
    default_batch_sizes="1,8",
    measure=measure,
    plan=plan,
    setup_words=setup_words,
)
