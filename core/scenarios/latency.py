"""The latency scenario: one forward pass per batch size x sequence length, plus whole-dataset throughput."""

from __future__ import annotations

import json
from pathlib import Path

from .base import Scenario, SpeedWords


def measure(job: dict, variant, tokenizer, channel) -> dict:
    """Every latency cell, each with its outputs checked against fp32's for the same inputs (core.measure.cell_check),
    the kernels its matmuls ran with on the last cell's inputs (core.measure.kernels, untimed), then the whole sample's
    throughput; an fp32 that only gives quality computes each cell's reference outputs once."""
    from ..measure import bench, cell_check, kernels
    from ..tasks import get_task

    task = get_task(job["source"]["task"])
    texts = json.loads(Path(job["dataset"]).read_text(encoding="utf-8"))["texts"]
    cells = [(b, s) for b in job["batch_sizes"] for s in job["seq_lengths"]]
    if job.get("quality_only"):
        for k, (b, s) in enumerate(cells):
            channel.progress("latency", k / len(cells), f"fp32's outputs at batch {b} x seq {s} (the reference of every cell)")
            (_, mask), output = bench.cell_output(variant, tokenizer, texts, b, s)
            cell_check.check_cell(task, job, b, s, output, mask)
        return {}
    protocol = bench.Protocol(**job.get("protocol", {}))
    latency = []
    for k, (b, s) in enumerate(cells):
        channel.progress("latency", k / (len(cells) + 2), f"latency batch {b} x seq {s}")
        kept: list = []
        cell = bench.measure_cell(variant, tokenizer, texts, b, s, protocol=protocol, keep=kept).to_dict()
        (ids, mask), output = kept[0]
        cell.update(cell_check.check_cell(task, job, b, s, output, mask))
        del kept, output
        latency.append(cell)
    kernel_line = kernels.read(variant, ids, mask) if cells else None
    bs = min(int(job.get("throughput_batch_size") or job["recommend_batch_size"]), len(texts))
    message = f"whole-dataset throughput (sorted and unsorted alternated, batch {bs})"
    channel.progress("latency", len(cells) / (len(cells) + 2), message)
    throughput = bench.dataset_throughput(variant, tokenizer, texts, bs, job["max_length"], protocol=protocol,
                                          progress=lambda n: channel.progress("latency", (len(cells) + 1) / (len(cells) + 2),
                                                                              f"{message}: {n} passes each"))
    return {"latency": latency, "dataset_throughput": throughput, "kernels": kernel_line}


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
